"""Classical (non-learned) stand-ins for f2D, f3D and the recommendation, used until trained networks
exist and as named baselines: OpenCV GrabCut on the slice, Slicer's Fill between slices over the
accepted planes, and a recommendation that bisects the largest unannotated gap."""
from __future__ import annotations

import numpy as np
import cv2

from .geometry import bounding_box, drawable_axes, drawable_slices, drawing_axis
from .session import Plane, Prediction3D
from .shape_prior import MM_PER_NAT, beyond_support, image_prior, plane_distance_mm


class GrabCut2D:
    """OpenCV GrabCut seeded by the clicks (hard labels) and the previous mask (probable foreground),
    inside a window around them; everything outside the window is background."""
    name = "grabcut"

    def __init__(self, window_mm: float = 60.0, seed_radius: int = 2, iterations: int = 5):
        self.window_mm = window_mm
        self.seed_radius = seed_radius
        self.iterations = iterations

    def predict(self, image2d, previous, clicks, spacing2d):
        positive = [c for c in clicks if c.positive]
        support = previous.copy()
        for c in positive:
            support[c.row, c.col] = True
        if not support.any():
            return np.zeros_like(previous)
        margin = [max(4, int(self.window_mm / 2 / s)) for s in spacing2d]
        box = bounding_box(support, margin=margin)
        labels = np.full(previous.shape, cv2.GC_BGD, np.uint8)
        labels[box] = cv2.GC_PR_BGD
        labels[previous] = cv2.GC_PR_FGD
        for c in clicks:
            cv2.circle(labels, (c.col, c.row), self.seed_radius, int(cv2.GC_FGD if c.positive else cv2.GC_BGD), -1)
        if not (labels == cv2.GC_FGD).any() and not (labels == cv2.GC_PR_FGD).any():
            return np.zeros_like(previous)
        rgb = np.repeat((np.clip(image2d, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
        background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(rgb, labels, None, background, foreground, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:  # one class has too few samples to fit its colour model
            pass
        return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


class FillBetweenSlices3D:
    """Slicer's Fill between slices (morphological contour interpolation) over the accepted planes."""
    name = "fill-between-slices"

    def predict(self, image, spacing, previous, accepted):
        from .evaluation.slicer_filters import fill_between_slices

        labelmap = np.zeros(image.shape, np.uint8)
        axes = {entry.plane.axis for entry in accepted}
        for entry in accepted:
            labelmap[entry.plane.where] = entry.mask
        if not labelmap.any():
            return Prediction3D(np.zeros(image.shape, bool))
        axis = axes.pop() if len(axes) == 1 else None
        return Prediction3D(fill_between_slices(labelmap, spacing, axis=axis))


class ShapePrior3D:
    """The shape prior of the accepted planes (signed distances interpolated between planes and
    rounded off beyond them, `shape_prior`), moved by the intensity evidence of the accepted planes
    (`image_prior`; mm_per_nat=0 for the shape alone), where it has support; the previous mask
    elsewhere. Works with planes on any mix of axes. Only the accepted masks' region of interest
    (f3D's ROI rule) is computed: the prior is never positive outside it."""
    name = "shape-prior"

    def __init__(self, mm_per_nat: float = MM_PER_NAT):
        self.mm_per_nat = mm_per_nat

    def predict(self, image, spacing, previous, accepted):
        from .models.roi import roi_for

        roi = roi_for(image.shape, spacing, None, accepted)
        mask = np.array(previous, bool)
        if roi is not None:
            prior, support = image_prior(image, accepted, spacing, roi.box, self.mm_per_nat)
            mask[roi.box] = np.where(support, prior, beyond_support(prior, mask[roi.box]))
        return Prediction3D(mask)


class GapRecommender:
    """Without a confidence map: bisect the largest unannotated stretch along `axis`.

    The stretch runs between the outermost accepted planes that hold target, extended on each side by
    the expected depth of the target (half its largest in-plane width, the ROI rule of f3D), but never
    past an accepted plane that holds no target (the user said the target ends there). So the planes
    binary-search the target's extent, then fill the largest gaps."""

    def __init__(self, axis: int | None = None):
        """axis: the axis to bisect; by default the one a user draws on (`geometry.drawing_axis`)."""
        self.axis = axis

    def recommend(self, session):
        axis = drawing_axis(session.spacing, session.mask3d.shape) if self.axis is None else self.axis
        on_axis = [a for a in session.accepted if a.plane.axis == axis]
        holding = sorted(a.plane.index for a in on_axis if a.mask.any())
        if not holding:
            return None
        spacing = session.spacing
        widths_mm = [max((np.ptp(np.nonzero(a.mask)[d]) + 1) * s
                         for d, s in enumerate(a.plane.spacing2d(spacing))) for a in on_axis if a.mask.any()]
        reach = int(np.ceil(0.5 * max(widths_mm) / spacing[axis]))
        empty = [a.plane.index for a in on_axis if not a.mask.any()]
        lo = max([0, holding[0] - reach] + [i for i in empty if i < holding[0]])
        hi = min([session.image.shape[axis] - 1, holding[-1] + reach] + [i for i in empty if i > holding[-1]])
        size, a, b = max(((b - a, a, b) for a, b in _stretches(lo, hi, [a.plane.index for a in on_axis])),
                         default=(0, 0, 0))  # a single-slice volume has no stretch left
        if size < 2:
            return None
        return Plane(axis, int((a + b) // 2))


class CrossRecommender:
    """Without a confidence map, on all three axes: first the planes orthogonal to the first accepted
    one, through its mask's centre (each shows the target's extent along the first plane's normal),
    then the slice, on any axis, whose voxels of the current 3D mask lie farthest from every accepted
    plane: the most sum of squared millimetres to the nearest accepted plane (of any axis). Far from
    all planes the prior is a guess; DSC is counted in voxels, so a slice through much of the mask wins
    over a long stretch near a tip. Chosen on the TRAINING manifest with perfect slices and the image
    prior (DSC after six slices, its two halves): 0.844 / 0.838 when bisecting the unannotated
    stretch that holds most mask voxels, 0.860 / 0.859 with this rule (distances not squared: 0.847 /
    0.846; keeping 2 slices clear of accepted planes: 0.851 / 0.852); equal up to the third slice.

    On a thick-slice scan only its slice axis is drawn on (`geometry.drawable_axes`): no cross, and the
    extent is searched with the gap rule when the farthest-slice rule finds nothing."""

    def __init__(self, unsure_first: bool = False, unsure_below: float = 1.0):
        """unsure_first: after the cross, weigh the voxels the 3D step is unsure of (confidence below
        `unsure_below`: 1 where the f2D sweep's axes disagree, f3D's TAU for its max-softmax) instead of
        every mask voxel, skipping slices next to accepted planes (`recommend.allowed_slices`); the
        mask rule when none is unsure."""
        self.unsure_first, self.unsure_below = unsure_first, unsure_below

    def recommend(self, session):
        holding = [a for a in session.accepted if a.mask.any()]
        if not holding:
            return None
        first = holding[0]
        drawable = drawable_axes(session.spacing, session.mask3d.shape)  # thick scan: its slice axis
        axes_done = {a.plane.axis for a in session.accepted}
        in_plane = [a for a in range(3) if a != first.plane.axis]
        cross = [a for a in in_plane if a in drawable and a not in axes_done]
        if cross:
            centre = dict(zip(in_plane, (float(np.mean(c)) for c in np.nonzero(first.mask))))
            return Plane(cross[0], int(round(centre[cross[0]])))
        if self.unsure_first and session.confidence is not None:
            from .recommend import allowed_slices

            plane = self._farthest(session, session.confidence < self.unsure_below, allowed_slices(session))
            if plane is not None:
                return plane
        on_drawable = drawable_slices(session.mask3d.shape, session.spacing)
        plane = self._farthest(session, session.mask3d, on_drawable)
        if plane is None and len(drawable) < 3:
            # A thick-slice scan has no cross to show the target's extent, and a prior that did not
            # reach past the accepted slices leaves nothing to score: search the extent along the slice
            # axis instead (the gap rule: beyond the outermost accepted slices, then the largest gap).
            plane = GapRecommender(axis=drawable[0]).recommend(session)
        return plane

    @staticmethod
    def _farthest(session, voxels, allowed=None):
        """The slice whose `voxels` lie farthest from every accepted plane (sum of squared mm), among
        the `allowed` slices of each axis (all when None); None when no slice scores."""
        box = bounding_box(voxels)
        if box is None:
            return None
        squared_mm = np.full([b.stop - b.start for b in box], np.inf, np.float32)
        for axis, span in enumerate(box):
            planes = [a.plane.index for a in session.accepted if a.plane.axis == axis]
            if planes:
                nearest = plane_distance_mm(np.arange(span.start, span.stop), planes, session.spacing[axis])
                np.minimum(squared_mm, np.expand_dims(nearest ** 2, tuple(b for b in range(3) if b != axis))
                           .astype(np.float32), out=squared_mm)  # in place: the box may be 10^7 voxels
        np.copyto(squared_mm, 0, where=~voxels[box])
        scores = [squared_mm.sum(axis=tuple(b for b in range(3) if b != axis)) for axis in range(3)]
        if allowed is not None:
            for axis in range(3):
                scores[axis][~allowed[axis][box[axis]]] = -1
        axis = int(np.argmax([s.max() for s in scores]))
        if scores[axis].max() <= 0:
            return None
        return Plane(axis, box[axis].start + int(np.argmax(scores[axis])))


def _stretches(lo, hi, planes):
    """Consecutive (a, b) pairs of the accepted `planes` within [lo, hi] and the outside edges
    lo - 1 and hi + 1 (unless a plane sits there): the unannotated stretches lie strictly between."""
    taken = sorted({i for i in planes if lo <= i <= hi})
    edges = ([lo - 1] if lo not in taken else []) + taken + ([hi + 1] if hi not in taken else [])
    return list(zip(edges[:-1], edges[1:]))
