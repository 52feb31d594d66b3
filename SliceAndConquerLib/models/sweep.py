"""f2D sweeps the shape prior: the prior (ShapePrior3D) is re-segmented slice by slice by f2D, which
sees the image where the prior only interpolates.

Rule: on each of the three axes, every slice of the accepted masks' region of interest that the prior
crosses (except the accepted planes) goes through f2D once, whole (its window may reach past the
region), with the prior's slice as the previous mask and a positive click at the most interior point of
each of its components of at least MIN_COMPONENT_PX pixels (where the robot's first click would go). A
voxel of the region is foreground when at least two of the three axes' results say so; outside the
region the prior's result stays (an existing mask is not rewritten far from the edited slices), and
accepted planes keep their masks exactly. No window growing: the prior's slice sets the window, CONTEXT
wide on each side (models.window).

Measured on the validation manifest (README, Benchmarks): ahead of the prior alone at every iteration.
Costs one f2D forward (about 11 ms on 2 CPU threads) per slice the prior crosses, on three axes.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..classic import ShapePrior3D
from ..clicks import Click
from ..session import Plane, Prediction3D
from .predictor2d import Network2D
from .roi import roi_for
from .window import window_for

MIN_COMPONENT_PX = 4  # smaller specks of the prior's slice get no click of their own
BATCH = 16            # slices per forward pass


def interior_clicks(mask2d: np.ndarray) -> list:
    """A positive click at the most interior point of each component of at least MIN_COMPONENT_PX."""
    labels, count = ndimage.label(mask2d)
    if count == 0:
        return []
    sizes = np.bincount(labels.ravel())[1:]
    keep = [i + 1 for i in np.flatnonzero(sizes >= MIN_COMPONENT_PX)]
    if not keep:
        return []
    depth = ndimage.distance_transform_edt(np.pad(mask2d, 1))[1:-1, 1:-1]
    return [Click(int(r), int(c), True) for r, c in ndimage.maximum_position(depth, labels, keep)]


class SweptPrior3D:
    """Predictor3D: ShapePrior3D, then the f2D sweep of the module docstring."""
    name = "swept-prior"

    def __init__(self, network: Network2D, prior: ShapePrior3D | None = None, batch: int = BATCH):
        self.network = network
        self.prior = prior or ShapePrior3D()
        self.batch = batch

    def predict(self, image, spacing, previous, accepted) -> Prediction3D:
        prior = self.prior.predict(image, spacing, previous, accepted).mask
        roi = roi_for(image.shape, spacing, None, accepted)
        if roi is None:
            return Prediction3D(prior)
        # Whole slices, not the ROI's part of them: f2D's window reaches past the ROI, and a crop
        # would show it a black border there.
        votes = 3 * prior.astype(np.int8)
        for axis, span in enumerate(roi.box):
            done = {a.plane.index for a in accepted if a.plane.axis == axis}
            crossed = span.start + np.flatnonzero(
                prior[roi.box].any(axis=tuple(a for a in range(3) if a != axis)))
            jobs = [Plane(axis, int(i)) for i in crossed if i not in done]
            for first in range(0, len(jobs), self.batch):
                self._segment(image, prior, votes, jobs[first:first + self.batch], spacing)
        mask = prior.copy()
        mask[roi.box] = votes[roi.box] >= 2  # nothing changes outside the region of interest
        for entry in accepted:
            mask[entry.plane.where] = entry.mask
        return Prediction3D(mask)

    def _segment(self, image, prior, votes, planes, spacing):
        """f2D on `planes` in one forward pass; each changed pixel moves its vote."""
        items = []
        for plane in planes:
            previous = plane.of(prior)
            clicks = interior_clicks(previous)
            if clicks:
                window = window_for(previous, clicks, plane.spacing2d(spacing))
                items.append((plane, window, plane.of(image), previous, clicks))
        if not items:
            return
        probabilities = self.network.probabilities_batch([item[1:] for item in items])
        for (plane, window, _, previous, _), probability in zip(items, probabilities):
            swept = window.paste(probability, previous.shape, previous.astype(np.float32)) > 0.5
            votes[plane.where] += swept.astype(np.int8) - previous
