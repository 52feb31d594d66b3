import numpy as np

from conftest import make_sphere
from SliceAndConquerLib.align import GAMMA, align_to_accepted
from SliceAndConquerLib.metrics import dice
from SliceAndConquerLib.session import AcceptedSlice, Plane


def test_alignment_moves_the_neighbourhood_towards_the_accepted_mask_only():
    shape = (30, 64, 64)
    predicted = make_sphere(shape, centre=(15, 30, 30), radius=12)
    truth = make_sphere(shape, centre=(15, 34, 35), radius=12)   # the 3D result is shifted
    entry = AcceptedSlice(Plane(0, 15), (), truth[15])
    aligned = align_to_accepted(predicted, [entry])
    assert dice(aligned[15], truth[15]) > dice(predicted[15], truth[15]) + 0.1
    assert dice(aligned[14], truth[14]) > dice(predicted[14], truth[14])
    reach = int(np.ceil(1 / GAMMA)) - 1
    far = [z for z in range(shape[0]) if abs(z - 15) > reach]
    assert np.array_equal(aligned[far], predicted[far])


def test_masks_not_marked_for_alignment_are_ignored():
    mask = make_sphere((10, 32, 32), radius=6)
    entry = AcceptedSlice(Plane(1, 16), (), np.zeros((10, 32), bool), align=False)
    assert np.array_equal(align_to_accepted(mask, [entry]), mask)
