import numpy as np

from SliceAndConquerLib.recommend import ConfidenceRecommender, slice_scores
from SliceAndConquerLib.session import Plane, Prediction3D, Session


class Uncertain3D:
    """Toy f3D: confident everywhere except one deliberately uncertain block."""
    name = "uncertain"

    def __init__(self, block):
        self.block = block

    def predict(self, image, spacing, previous, accepted):
        mask = np.zeros(image.shape, bool)
        mask[8:16, 8:24, 8:20] = True
        confidence = np.full(image.shape, 0.99, np.float32)
        confidence[self.block] = 0.55
        return Prediction3D(mask, confidence)


def _session(sphere_image, toy_predictors, block):
    return Session(sphere_image, (1, 1, 1), toy_predictors[0], Uncertain3D(block), ConfidenceRecommender())


def test_recommends_a_slice_through_the_uncertain_region(sphere_image, toy_predictors):
    block = (slice(3, 6), slice(20, 30), slice(2, 26))    # thin along axis 0: best seen on axis 0
    session = _session(sphere_image, toy_predictors, block)
    session.begin_slice(Plane(0, 12))
    session.click(16, 14, True)
    session.accept_slice()
    plane = session.recommend()
    assert plane.axis == 0 and 3 <= plane.index < 6


def test_never_recommends_next_to_an_accepted_plane(sphere_image, toy_predictors):
    block = (slice(10, 15), slice(2, 30), slice(2, 26))
    session = _session(sphere_image, toy_predictors, block)
    session.begin_slice(Plane(0, 12))
    session.click(16, 14, True)
    session.accept_slice()
    plane = session.recommend()
    assert plane is not None
    assert not (plane.axis == 0 and abs(plane.index - 12) <= 2)


def test_edge_band_counts_as_confident():
    confidence = np.full((10, 10, 10), 0.5, np.float32)
    mask = np.zeros((10, 10, 10), bool)
    mask[3:7, 3:7, 3:7] = True
    plain = slice_scores(confidence, mask, edge_band=0)
    enhanced = slice_scores(confidence, mask, edge_band=1)
    assert plain[0][5] == 100 and enhanced[0][5] < plain[0][5]


def test_nothing_uncertain_means_no_recommendation(sphere_image, toy_predictors):
    session = _session(sphere_image, toy_predictors, (slice(0, 0),) * 3)
    session.begin_slice(Plane(0, 12))
    session.click(16, 14, True)
    session.accept_slice()
    assert session.recommend() is None


def test_random_recommender_is_seeded_and_valid(sphere_image, toy_predictors):
    from SliceAndConquerLib.recommend import RandomRecommender

    planes = []
    for _ in range(2):
        session = Session(sphere_image, (1, 1, 1), toy_predictors[0],
                          Uncertain3D((slice(3, 6), slice(20, 30), slice(2, 26))), RandomRecommender(seed=4))
        session.begin_slice(Plane(0, 12))
        session.click(16, 14, True)
        session.accept_slice()
        planes.append([session.recommend() for _ in range(20)])
    assert planes[0] == planes[1]
    assert all(not (p.axis == 0 and abs(p.index - 12) <= 2) for p in planes[0])


def test_skip_distance_grows_with_the_target():
    from SliceAndConquerLib.recommend import skip_distances

    mask = np.zeros((100, 40, 40), bool)
    mask[10:90, 15:25, 15:25] = True
    assert skip_distances(mask) == [8, 2, 2]
    assert skip_distances(np.zeros((5, 5, 5), bool)) == [2, 2, 2]


def test_recommendations_stay_on_the_slice_axis_of_a_thick_scan(toy_predictors):
    """On a 5 mm x 1 mm x 1 mm volume, planes of axes 1 and 2 are strips five times coarser one way:
    no recommender asks for them, while on an isotropic volume the cross asks for them first."""
    from conftest import make_sphere
    from SliceAndConquerLib.classic import CrossRecommender, GapRecommender, ShapePrior3D
    from SliceAndConquerLib.geometry import drawable_axes
    from SliceAndConquerLib.recommend import RandomRecommender

    assert drawable_axes((5.0, 1.0, 1.0)) == [0] and drawable_axes((1.0, 5.0, 1.0)) == [1]
    assert drawable_axes((1.0, 1.0, 1.0)) == [0, 1, 2]
    spacing = (5.0, 1.0, 1.0)
    ball = make_sphere((16, 48, 48), radius=16.0, spacing=spacing)
    image = ball.astype(np.float32)
    block = (slice(2, 14), slice(10, 40), slice(10, 40))
    for recommender, predictor3d in ((CrossRecommender(), ShapePrior3D()),
                                     (CrossRecommender(unsure_first=True), Uncertain3D(block)),
                                     (ConfidenceRecommender(), Uncertain3D(block)),
                                     (RandomRecommender(seed=1), Uncertain3D(block)),
                                     (GapRecommender(), ShapePrior3D())):
        session = Session(image, spacing, toy_predictors[0], predictor3d, recommender)
        plane = Plane(0, 8)
        for _ in range(4):
            session.begin_slice(plane)
            session.accept_slice(mask=plane.of(ball))
            plane = session.recommend()
            if plane is None:
                break
            assert plane.axis == 0, type(recommender).__name__
    isotropic = Session(image, (1.0, 1.0, 1.0), toy_predictors[0], ShapePrior3D(), CrossRecommender())
    isotropic.begin_slice(Plane(0, 8))
    isotropic.accept_slice(mask=ball[8])
    assert isotropic.recommend().axis == 1


def test_on_a_thick_scan_a_prior_stuck_on_its_slice_searches_the_extent(toy_predictors):
    """When the 3D result lies only on the accepted slice (nothing for the farthest-slice rule), a thick
    scan's next slice is the gap rule's: a neighbour along the slice axis, never the end of the loop."""
    from SliceAndConquerLib.classic import CrossRecommender
    from SliceAndConquerLib.session import Prediction3D

    class OnlyAccepted:
        name = "only-accepted"

        def predict(self, image, spacing, previous, accepted):
            mask = np.zeros(image.shape, bool)
            for entry in accepted:
                mask[entry.plane.where] = entry.mask
            return Prediction3D(mask)

    from conftest import make_sphere

    spacing = (5.0, 1.0, 1.0)
    ball = make_sphere((16, 48, 48), radius=16.0, spacing=spacing)
    session = Session(ball.astype(np.float32), spacing, toy_predictors[0], OnlyAccepted(), CrossRecommender())
    session.begin_slice(Plane(0, 8))
    session.accept_slice(mask=ball[8])
    plane = session.recommend()
    assert plane is not None and plane.axis == 0 and plane.index != 8 and abs(plane.index - 8) <= 4
