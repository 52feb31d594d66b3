"""The f2D sweep of the shape prior (models.sweep)."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from conftest import make_sphere
from SliceAndConquerLib.classic import ShapePrior3D
from SliceAndConquerLib.metrics import dice
from SliceAndConquerLib.models.f2d import F2D
from SliceAndConquerLib.models.predictor2d import Network2D, load_f2d
from SliceAndConquerLib.models.sweep import SweptPrior3D, interior_clicks
from SliceAndConquerLib.models.weights import shipped
from SliceAndConquerLib.models.window import first_window, window_for
from SliceAndConquerLib.session import AcceptedSlice, Plane


def _accept(truth, axis, index):
    plane = Plane(axis, index)
    return AcceptedSlice(plane, (), plane.of(truth).copy())


def _network(bias=None):
    torch.manual_seed(0)
    model = F2D(width=8)
    if bias is not None:  # a network that answers "background" (or "foreground") everywhere
        with torch.no_grad():
            model.head.weight.zero_()
            model.head.bias.fill_(bias)
    return Network2D(model, "cpu")


def test_interior_clicks_one_per_component_at_its_deepest_point():
    mask = np.zeros((30, 30), bool)
    mask[2:11, 4:13] = True   # 9 x 9 square, centre (6, 8)
    mask[20:25, 0:5] = True   # 5 x 5 square on the image border: the border counts as edge
    mask[28, 28:30] = True    # a 2-pixel speck: no click of its own
    clicks = interior_clicks(mask)
    assert [(c.row, c.col, c.positive) for c in clicks] == [(6, 8, True), (22, 2, True)]
    assert interior_clicks(np.zeros((5, 5), bool)) == []


def test_batched_probabilities_equal_one_at_a_time():
    network = _network()
    rng = np.random.default_rng(0)
    image = rng.random((60, 50)).astype(np.float32)
    previous = np.zeros((60, 50), bool)
    previous[20:30, 10:25] = True
    clicks = interior_clicks(previous)
    items = [(window_for(previous, clicks, (1.0, 1.5)), image, previous, clicks),
             (first_window(40, 40, image.shape, (1.0, 1.0)), image, np.zeros_like(previous), [])]
    together = network.probabilities_batch(items)
    for item, batched in zip(items, together):
        np.testing.assert_allclose(batched, network.probabilities(*item), atol=1e-5)


def test_a_network_that_sees_nothing_leaves_exactly_the_accepted_planes():
    ball = make_sphere((40, 40, 40), radius=9)
    image = ball.astype(np.float32)
    accepted = [_accept(ball, 0, 17), _accept(ball, 0, 23), _accept(ball, 1, 20)]
    previous = np.zeros_like(ball)
    previous[0:2, 0:2, 0:2] = True  # an earlier result outside the planes' region of interest
    prior = ShapePrior3D().predict(image, (1, 1, 1), previous, accepted).mask
    assert dice(prior, ball) > 0.8
    swept = SweptPrior3D(_network(bias=-30.0)).predict(image, (1, 1, 1), previous, accepted).mask
    expected = previous.copy()
    for entry in accepted:
        expected[entry.plane.where] = entry.mask
    np.testing.assert_array_equal(swept, expected)


def test_a_slice_budget_caps_the_network_runs():
    class Counting(Network2D):
        runs = 0

        def probabilities_batch(self, items):
            Counting.runs += len(items)
            return super().probabilities_batch(items)

    ball = make_sphere((40, 40, 40), radius=9)
    accepted = [_accept(ball, 0, 20)]
    network = Counting(_network(bias=-30.0).model, "cpu")
    image, empty = ball.astype(np.float32), np.zeros_like(ball)
    uncapped = SweptPrior3D(network).predict(image, (1, 1, 1), empty, accepted)
    all_slices, Counting.runs = Counting.runs, 0
    capped = SweptPrior3D(network, max_slices=10).predict(image, (1, 1, 1), empty, accepted)
    assert all_slices > 40 and Counting.runs <= 10 + 3  # every n-th slice of each axis, and the last
    # the slices in between take the majority of their swept neighbours (here empty) and their prior
    np.testing.assert_array_equal(capped.mask, uncapped.mask)


@pytest.mark.skipif(shipped("f2d") is None, reason="no shipped f2D weights")
def test_the_shipped_network_follows_the_image_where_the_prior_guesses():
    # A bright ellipsoid twice as long along axis 0 as it is wide: from one axial plane the prior rounds
    # it off 1.5 radii deep; the sweep's sagittal and coronal slices see how far it really goes.
    truth = make_sphere((80, 48, 48), radius=18, spacing=(0.5, 1.0, 1.0))
    rng = np.random.default_rng(0)
    image = (0.2 + 0.6 * truth + rng.normal(0, 0.03, truth.shape)).astype(np.float32)
    accepted = [_accept(truth, 0, 40)]
    prior = ShapePrior3D().predict(image, (1, 1, 1), np.zeros_like(truth), accepted).mask
    swept = SweptPrior3D(load_f2d(shipped("f2d"), "cpu")).predict(image, (1, 1, 1), np.zeros_like(truth),
                                                                 accepted)
    assert dice(swept.mask, truth) > dice(prior, truth) + 0.03
    assert dice(swept.mask, truth) > 0.9
    for entry in accepted:
        np.testing.assert_array_equal(entry.plane.of(swept.mask), entry.mask)
        assert (entry.plane.of(swept.confidence) == 1).all()
    # where the axes split (confidence 2/3) is the ellipsoid's border, never its core or far outside
    split = swept.confidence < 1
    assert split.any() and np.isin(np.unique(swept.confidence), [np.float16(2 / 3), 1]).all()
    near_border = ndimage.binary_dilation(truth, iterations=3) & ~ndimage.binary_erosion(truth, iterations=3)
    assert (split <= near_border).mean() > 0.99


def test_on_a_thick_scan_only_the_slice_axis_is_swept():
    """Planes through the thick axis (strips f2D cannot read) are never swept; the one swept axis
    decides alone, so its result is the swept slices and nothing is left split."""
    swept_axes = []

    class Recording(SweptPrior3D):
        def _segment(self, image, prior, planes, spacing):
            swept_axes.extend(p.axis for p in planes)
            return [np.ones_like(p.of(prior)) for p in planes]   # "everything" on every swept slice

    spacing = (5.0, 1.0, 1.0)
    ball = make_sphere((12, 40, 40), radius=14.0, spacing=spacing)
    result = Recording(_network()).predict(ball.astype(np.float32), spacing, np.zeros_like(ball),
                                           [_accept(ball, 0, 6)])
    assert swept_axes and set(swept_axes) == {0}
    assert np.array_equal(result.mask[6], ball[6]) and (result.confidence == 1).all()
    crossed = [i for i in range(12) if i != 6 and result.mask[i].any()]
    assert crossed and all(result.mask[i][ball.any(axis=0)].all() for i in crossed)
