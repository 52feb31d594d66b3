import numpy as np

from SliceAndConquerLib.classic import ShapePrior3D
from SliceAndConquerLib.metrics import dice
from SliceAndConquerLib.session import AcceptedSlice, Plane
from SliceAndConquerLib.shape_prior import (image_prior, intensity_log_ratio, prior_mask, prior_or_previous,
                                           shape_prior)

from conftest import make_sphere


def _accept(truth, axis, index):
    plane = Plane(axis, index)
    return AcceptedSlice(plane, (), plane.of(truth).copy())


def _radius_mm(mask2d):
    return np.sqrt(mask2d.sum() / np.pi)


def test_one_plane_becomes_a_rounded_body_about_one_and_a_half_radii_deep():
    ball = make_sphere((40, 40, 40), radius=10)
    prior = prior_mask([_accept(ball, 0, 20)], ball.shape, (1, 1, 1))
    assert (prior >= ball).mean() > 0.99           # the ball is inside ...
    extent = np.flatnonzero(prior.any(axis=(1, 2)))
    assert 13 <= 20 - extent[0] <= 16 and 13 <= extent[-1] - 20 <= 16   # ... closing ~1.5 radii away
    assert prior[extent[0]].sum() < prior[20].sum() / 4                 # round, not a cylinder


def test_interpolates_between_planes_of_different_size():
    shape = (21, 40, 40)
    yy, xx = np.ogrid[:40, :40]
    truth = np.zeros(shape, bool)
    for z in range(21):  # a cone: radius 6 at z=0 growing to 16 at z=20
        truth[z] = (yy - 20) ** 2 + (xx - 20) ** 2 <= (6 + z / 2) ** 2
    prior = prior_mask([_accept(truth, 0, 0), _accept(truth, 0, 20)], shape, (1, 1, 1))
    assert abs(_radius_mm(prior[10]) - 11) < 1
    assert dice(prior[1:20], truth[1:20]) > 0.95


def test_empty_plane_closes_the_shape():
    ball = make_sphere((40, 40, 40), radius=12)
    accepted = [_accept(ball, 0, 20), AcceptedSlice(Plane(0, 26), (), np.zeros((40, 40), bool))]
    prior = prior_mask(accepted, ball.shape, (1, 1, 1))
    assert prior[20].sum() == ball[20].sum()
    assert not prior[26:].any()
    assert 0 < prior[22].sum() < prior[20].sum()


def test_spacing_is_respected_along_the_normal():
    ball = make_sphere((20, 40, 40), radius=10, spacing=(2.0, 1.0, 1.0))
    prior = prior_mask([_accept(ball, 0, 10)], ball.shape, (2.0, 1.0, 1.0))
    extent = np.flatnonzero(prior.any(axis=(1, 2)))  # ~15 mm each side: 7-8 slices of 2 mm
    assert 6 <= 10 - extent[0] <= 8 and 6 <= extent[-1] - 10 <= 8


def test_planes_on_two_axes_and_support():
    ball = make_sphere((40, 40, 40), radius=10)
    accepted = [_accept(ball, 0, 20), _accept(ball, 2, 20)]
    distance, support = shape_prior(accepted, ball.shape, (1, 1, 1))
    assert ((distance > 0) >= ball).mean() > 0.99  # both planes' shapes are inside
    assert support[20].all() and support[:, :, 20].all()
    assert not support[0, 0, 0]  # farther than one radius from both planes


def test_box_equals_the_cropped_volume():
    ball = make_sphere((30, 36, 32), radius=9)
    accepted = [_accept(ball, 0, 12), _accept(ball, 0, 18), _accept(ball, 1, 18)]
    box = (slice(5, 25), slice(8, 30), slice(3, 29))
    full, full_support = shape_prior(accepted, ball.shape, (1.0, 1.5, 1.0))
    part, part_support = shape_prior(accepted, ball.shape, (1.0, 1.5, 1.0), box)
    np.testing.assert_allclose(part, full[box], atol=1e-4)
    np.testing.assert_array_equal(part_support, full_support[box])


def test_previous_mask_is_kept_outside_the_support():
    ball = make_sphere((40, 40, 40), radius=10)
    existing = np.zeros(ball.shape, bool)
    existing[0:3, 2:5, 2:5] = True  # far from the accepted plane: not the prior's business
    existing[20, 2:5, 2:5] = True   # on the accepted plane: the plane decides
    given = prior_or_previous([_accept(ball, 0, 20)], (1, 1, 1), existing)
    assert given[0:3, 2:5, 2:5].all()
    assert not given[20, 2:5, 2:5].any()
    np.testing.assert_array_equal(given[20], ball[20])


def test_shape_prior_predictor_on_three_planes():
    ball = make_sphere((40, 40, 40), radius=12)
    accepted = [_accept(ball, 0, 14), _accept(ball, 0, 26), _accept(ball, 1, 20)]
    result = ShapePrior3D().predict(ball.astype(np.float32), (1, 1, 1), np.zeros_like(ball), accepted)
    assert dice(result.mask, ball) > 0.85  # the off-centre planes overshoot a little beyond 14 and 26


def test_beyond_the_inscribed_radius_an_existing_mask_stays_and_an_empty_one_takes_the_guess():
    ball = make_sphere((40, 40, 40), radius=10)
    accepted = [_accept(ball, 0, 20)]
    existing = np.zeros(ball.shape, bool)
    existing[7:9, 2:5, 2:5] = True  # 11-13 mm from the plane, beyond r = 10, where the prior says "outside"
    given = prior_or_previous(accepted, (1, 1, 1), existing)
    assert given[7:9, 2:5, 2:5].all() and not given[8, 20, 20]   # kept as it was
    fresh = prior_or_previous(accepted, (1, 1, 1), np.zeros_like(ball))
    assert fresh[8, 20, 20] and not fresh[8, 2, 2]                # the deeper guess (to ~15 mm)
    inside = prior_or_previous(accepted, (1, 1, 1), ~ball)
    assert inside[20, 20, 20] and not inside[14, 2, 2]            # within r (6 mm) the prior replaces


def test_cross_recommender_visits_all_axes_then_slices_far_from_them(toy_predictors):
    from SliceAndConquerLib.classic import CrossRecommender
    from SliceAndConquerLib.session import Session

    ball = make_sphere((40, 40, 40), centre=(20, 18, 22), radius=12)
    session = Session(ball.astype(np.float32), (1, 1, 1), toy_predictors[0], ShapePrior3D(), CrossRecommender())
    planes = [Plane(0, 20)]
    for _ in range(4):
        session.begin_slice(planes[-1])
        session.accept_slice(planes[-1].of(ball))
        planes.append(session.recommend())
    assert planes[1:3] == [Plane(1, 18), Plane(2, 22)]
    # then slices away from the centre planes, on both sides (the ball is symmetric about them)
    centre = (20, 18, 22)
    offsets = [p.index - centre[p.axis] for p in planes[3:5]]
    assert all(4 <= abs(o) <= 8 for o in offsets) and offsets[0] * offsets[1] < 0


def test_cross_recommender_prefers_mask_far_from_every_plane():
    from types import SimpleNamespace

    from SliceAndConquerLib.classic import CrossRecommender

    shape = (40, 40, 40)
    full = np.ones((40, 40), bool)
    accepted = [AcceptedSlice(Plane(axis, 20), (), full) for axis in range(3)]
    mask3d = np.zeros(shape, bool)
    mask3d[21:23, 5:15, 5:15] = True          # 200 voxels, 1-2 mm from the axial plane
    mask3d[28:36, 30:34, 31:34] = True        # 96 voxels, 8-15 mm from every plane
    state = SimpleNamespace(accepted=accepted, mask3d=mask3d, spacing=(1.0, 1.0, 1.0))
    # the far block; of its slices, the one on axis 2 holds the most of it (8 x 4 voxels)
    assert CrossRecommender().recommend(state) == Plane(2, 33)
    mask3d[28:36, 30:34, 31:34] = False
    assert CrossRecommender().recommend(state) == Plane(0, 22)


def test_cross_recommender_can_ask_where_the_3d_step_is_unsure():
    from types import SimpleNamespace

    from SliceAndConquerLib.classic import CrossRecommender

    full = np.ones((40, 40), bool)
    accepted = [AcceptedSlice(Plane(axis, 20), (), full) for axis in range(3)]
    mask3d = np.zeros((40, 40, 40), bool)
    mask3d[28:36, 30:34, 31:34] = True        # the mask rule's choice: Plane(2, 33), as above
    confidence = np.ones(mask3d.shape, np.float16)
    confidence[10:14, 30:34, 5:9] = 2 / 3     # unsure, 7-10 mm from the axial plane, farther from the others
    state = SimpleNamespace(accepted=accepted, mask3d=mask3d, spacing=(1.0, 1.0, 1.0),
                            confidence=confidence)
    assert CrossRecommender(unsure_first=True).recommend(state) == Plane(0, 10)
    assert CrossRecommender().recommend(state) == Plane(2, 33)
    confidence[:] = 1                          # sure everywhere: the mask rule
    assert CrossRecommender(unsure_first=True).recommend(state) == Plane(2, 33)


def _ellipsoid(shape, radii):
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - n // 2) / r) ** 2 for g, n, r in zip(grid, shape, radii)) <= 1


def test_intensity_evidence_follows_a_target_the_ball_underestimates():
    # A bright cigar along axis 0 (half-length 16) seen on one axial plane (radius 8): the shape
    # alone closes a ball of radius 8; the intensity evidence carries it further along the bright voxels.
    truth = _ellipsoid((48, 40, 40), (16, 8, 8))
    rng = np.random.default_rng(0)
    image = np.clip(0.3 + 0.4 * truth + rng.normal(0, 0.05, truth.shape), 0, 1).astype(np.float32)
    lookalike = _ellipsoid((48, 40, 40), (3, 3, 3))
    image[np.roll(lookalike, (0, 14, 14), axis=(0, 1, 2))] = 0.7  # bright, but apart from the target
    accepted = [_accept(truth, 0, 24)]
    shape_only = image_prior(image, accepted, (1, 1, 1), mm_per_nat=0)[0]
    with_image = image_prior(image, accepted, (1, 1, 1))[0]
    assert dice(with_image, truth) > dice(shape_only, truth) + 0.03
    assert np.array_equal(with_image[24], truth[24])  # the accepted plane is kept
    assert not with_image[np.roll(lookalike, (0, 14, 14), axis=(0, 1, 2))].any()


def test_uninformative_image_leaves_the_shape_prior_almost_unchanged():
    ball = make_sphere((40, 40, 40), radius=10)
    flat = np.full(ball.shape, 0.5, np.float32)
    accepted = [_accept(ball, 0, 20), _accept(ball, 1, 20)]
    # Only the add-one smoothing of the two histograms differs: a fraction of a millimetre.
    assert dice(image_prior(flat, accepted, (1, 1, 1))[0], prior_mask(accepted, ball.shape, (1, 1, 1))) > 0.99
    # And with no target on any accepted plane there is no evidence to use.
    assert intensity_log_ratio(flat, [AcceptedSlice(Plane(0, 3), (), np.zeros((40, 40), bool))]) is None
