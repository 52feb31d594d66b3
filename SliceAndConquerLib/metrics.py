"""Overlap and surface metrics of binary masks."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .geometry import bounding_box

NSD_TOLERANCE_MM = 2.0  # the CVPR 2025 interactive 3D segmentation challenge's tolerance


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice similarity coefficient (Eq. 4); 1.0 when both are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def _border(mask: np.ndarray) -> np.ndarray:
    """Voxels of the mask with a face neighbour outside it (the array border counts as outside)."""
    inner = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1),
                                   border_value=0)
    return mask & ~inner


def normalized_surface_dice(a: np.ndarray, b: np.ndarray, spacing, tolerance_mm: float = NSD_TOLERANCE_MM
                            ) -> float:
    """Normalised surface Dice: the share of both surfaces that lies within `tolerance_mm` of the other
    surface, distances in millimetres with the voxel `spacing` (array order). Surfaces are the masks'
    border voxels, as MONAI's `compute_surface_dice` takes them by default. 1.0 when both masks are
    empty, 0.0 when exactly one is."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if not a.any() and not b.any():
        return 1.0
    if not a.any() or not b.any():
        return 0.0
    # Work in the box around both masks, grown by the tolerance: distances farther away do not count.
    margin = [int(np.ceil(tolerance_mm / s)) + 1 for s in spacing]
    box = bounding_box(a | b, margin=margin)
    a, b = a[box], b[box]
    border_a, border_b = _border(a), _border(b)
    to_a = ndimage.distance_transform_edt(~border_a, sampling=spacing)
    to_b = ndimage.distance_transform_edt(~border_b, sampling=spacing)
    close = int((to_b[border_a] <= tolerance_mm).sum()) + int((to_a[border_b] <= tolerance_mm).sum())
    return close / int(border_a.sum() + border_b.sum())


def curve_auc(values) -> float:
    """Area under a per-iteration curve (trapezoids over iterations 1..n), divided by its length n-1 so
    that a curve at 1 everywhere scores 1; a single value is its own area."""
    values = np.asarray(values, float)
    if values.size == 1:
        return float(values[0])
    return float((values.sum() - (values[0] + values[-1]) / 2) / (values.size - 1))
