import numpy as np
import pytest

from SliceAndConquerLib.geometry import bounding_box, crop, paste, resample
from SliceAndConquerLib.intensity import normalize


def test_bounding_box_margin_and_clipping():
    mask = np.zeros((10, 12, 14), bool)
    mask[2:4, 5:7, 0:3] = True
    box = bounding_box(mask, margin=2)
    assert box == (slice(0, 6), slice(3, 9), slice(0, 5))
    assert bounding_box(np.zeros((3, 3, 3), bool)) is None


def test_bounding_box_minimum_size_stays_inside():
    mask = np.zeros((20, 20, 20), bool)
    mask[19, 0, 10] = True
    box = bounding_box(mask, min_size=8)
    assert [b.stop - b.start for b in box] == [8, 8, 8]
    assert box[0].stop == 20 and box[1].start == 0


def test_crop_paste_round_trip_leaves_outside_untouched():
    rng = np.random.default_rng(1)
    volume = rng.random((16, 18, 20))
    box = (slice(3, 9), slice(4, 15), slice(0, 7))
    patch = crop(volume, box)
    patch[:] = -1
    assert (volume[box] != -1).all(), "crop must be a copy"
    out = paste(volume, box, patch)
    assert (out[box] == -1).all()
    outside = np.ones(volume.shape, bool)
    outside[box] = False
    assert np.array_equal(out[outside], volume[outside])
    assert np.array_equal(paste(volume, box, crop(volume, box)), volume)


def test_resample_keeps_physical_extent():
    array = np.zeros((10, 40, 40), np.float32)
    spacing = (5.0, 1.0, 1.0)
    out = resample(array, spacing, new_spacing=(2.0, 2.0, 2.0))
    assert out.shape == (25, 20, 20)
    assert np.allclose(np.asarray(out.shape) * 2.0, np.asarray(array.shape) * spacing)


def test_resample_mask_and_back_is_close():
    from conftest import make_sphere

    mask = make_sphere((20, 40, 40), radius=12, spacing=(3.0, 1.0, 1.0))
    down = resample(mask, (3.0, 1.0, 1.0), new_spacing=(2.0, 2.0, 2.0), order=0)
    up = resample(down, (2.0, 2.0, 2.0), new_shape=mask.shape, order=0)
    assert up.dtype == bool and up.shape == mask.shape
    assert (up & mask).sum() / mask.sum() > 0.85


@pytest.mark.parametrize("modality", ["ct", "mr"])
def test_normalize_range(modality):
    rng = np.random.default_rng(0)
    image = rng.normal(0, 300, (8, 8, 8)).astype(np.float32) - (1000 if modality == "ct" else -1000)
    out = normalize(image)
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    assert out.max() > out.min()
