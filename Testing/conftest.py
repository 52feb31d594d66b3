import numpy as np
import pytest

from SliceAndConquerLib.session import Prediction3D


def make_sphere(shape=(24, 32, 28), centre=None, radius=8.0, spacing=(1.0, 1.0, 1.0)):
    """Boolean ball of `radius` mm on a grid of `spacing` mm."""
    centre = np.asarray(shape) / 2.0 if centre is None else np.asarray(centre, float)
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    distance2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing))
    return distance2 <= radius ** 2


@pytest.fixture
def sphere():
    return make_sphere()


@pytest.fixture
def sphere_image(sphere):
    rng = np.random.default_rng(0)
    return (sphere * 100.0 + rng.normal(0, 10, sphere.shape)).astype(np.float32)


class ThresholdPredictor2D:
    """Toy f2D: pixels brighter than 0.5 that are connected to a positive click, minus negative disks."""
    name = "toy2d"

    def __init__(self):
        self.calls = 0

    def predict(self, image2d, previous, clicks, spacing2d):
        from scipy import ndimage

        self.calls += 1
        labels, _ = ndimage.label(image2d > 0.5)
        mask = np.zeros(image2d.shape, bool)
        for c in clicks:
            if c.positive and labels[c.row, c.col]:
                mask |= labels == labels[c.row, c.col]
        for c in clicks:
            if not c.positive:
                mask[max(0, c.row - 2): c.row + 3, max(0, c.col - 2): c.col + 3] = False
        return mask


class StackPredictor3D:
    """Toy f3D: the previous mask, plus each accepted 2D mask repeated along its axis (deterministic)."""
    name = "toy3d"

    def predict(self, image, spacing, previous, accepted):
        mask = previous.copy()
        for entry in accepted:
            mask |= np.expand_dims(entry.mask, entry.plane.axis)
        confidence = np.where(mask, 0.9, 0.6).astype(np.float32)
        return Prediction3D(mask, confidence)


@pytest.fixture
def toy_predictors():
    return ThresholdPredictor2D(), StackPredictor3D()


@pytest.fixture(scope="session")
def manifests():
    """The real data (fetched once into the user's cache; instant afterwards)."""
    from SliceAndConquerLib.data.fetch import fetch

    return fetch(quiet=True)
