import numpy as np

from SliceAndConquerLib.classic import GapRecommender
from SliceAndConquerLib.evaluation.robot import first_plane, run_robot
from SliceAndConquerLib.session import Plane, Session


def test_first_plane_is_next_to_the_largest_slice_and_first_click_is_interior(sphere):
    rng = np.random.default_rng(0)
    planes = {first_plane(sphere, rng) for _ in range(20)}
    assert planes == {Plane(0, 11), Plane(0, 13)}  # the sphere's largest slice is 12
    from SliceAndConquerLib.clicks import next_click

    click = next_click(np.zeros(sphere.shape[1:], bool), sphere[13])
    assert click.positive and (click.row, click.col) == (16, 14)


def test_robot_is_seeded_and_improves(sphere_image, sphere, toy_predictors):
    runs = []
    for _ in range(2):
        session = Session(sphere_image, (1, 1, 1), *toy_predictors, recommender=GapRecommender())
        runs.append(run_robot(session, sphere, iterations=3, seed=3))
    assert runs[0].dice == runs[1].dice and runs[0].planes == runs[1].planes
    run = runs[0]
    assert len(run.dice) == 3 and run.clicks == sorted(run.clicks) and run.clicks[0] >= 1
    assert run.planes[0] in (Plane(0, 11), Plane(0, 13))
    assert 0 < run.dice[0] and len(set(run.planes)) == 3


def test_robot_sees_thin_targets_without_neighbours():
    truth = np.zeros((5, 20, 20), bool)
    truth[2, 5:15, 5:15] = True
    assert first_plane(truth, np.random.default_rng(0)) == Plane(0, 2)


def test_gap_recommender_searches_the_extent_then_fills_gaps(sphere_image, toy_predictors):
    from SliceAndConquerLib.classic import GapRecommender

    session = Session(sphere_image, (1, 1, 1), *toy_predictors, recommender=GapRecommender())
    session.begin_slice(Plane(0, 12))
    session.click(16, 14, True)
    session.accept_slice()
    first = session.recommend()
    assert first.axis == 0 and abs(first.index - 12) >= 3      # beyond the neighbours
    session.begin_slice(first)
    session.accept_slice(np.zeros(sphere_image.shape[1:], bool))  # the user says: no target here
    second = session.recommend()
    assert second is not None and (second.index - 12) * (first.index - 12) <= 0 or \
        abs(second.index - 12) < abs(first.index - 12)


def test_growcut_baseline_takes_each_annotated_slice_as_seeds(sphere):
    """Grow from seeds gets the robot's slice results as seeds: inside is foreground, outside (beyond a
    2-pixel band) background, so a touching bright slab is kept out on those slices."""
    from SliceAndConquerLib.evaluation.baselines import bin_centres, growcut_3d
    from SliceAndConquerLib.metrics import dice

    rng = np.random.default_rng(0)
    slab = np.zeros_like(sphere)
    slab[:, :, :6] = True  # as bright as the sphere, adjacent to it at its equator
    image = ((sphere | slab) * 100.0 + rng.normal(0, 5, sphere.shape)).astype(np.float32)
    slices = {z: ([], sphere[z]) for z in bin_centres(sphere, 3)}
    result = growcut_3d(image, (1.0, 1.0, 1.0), slices)
    assert dice(result, sphere) > 0.85
    for z in slices:
        assert not result[z][:, :3].any()
