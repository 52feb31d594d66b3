"""The region of interest f3D works on, and its fixed working grid.

ROI rule: the box around every accepted 2D mask (placed in 3D) and the previous 3D mask, grown on
each axis by ROI_MARGIN of the support's largest physical extent (at least MIN_MARGIN_MM), and at least
MIN_ROI_MM wide (tiny lesions). An accepted plane says nothing about how far the target reaches along
its normal, so along that axis the box reaches half the mask's in-plane extent (organs are roughly as
deep as they are wide) on both sides.

Working grid: the ROI resampled isotropically so that its longest side has GRID voxels (thick-slice CT
becomes near-isotropic); the other sides keep their physical proportion, rounded up to a multiple of
GRID_MULTIPLE so every stride-2 level halves cleanly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID = 64
GRID_MULTIPLE = 16
ROI_MARGIN = 0.2
MIN_MARGIN_MM = 8.0
MIN_ROI_MM = 32.0


@dataclass(frozen=True)
class ROI:
    box: tuple          # slices of the full volume [k, j, i]
    grid: tuple         # working grid shape

    @property
    def shape(self):
        return tuple(b.stop - b.start for b in self.box)


def _extent(lo, hi, spacing):
    return (np.asarray(hi) - np.asarray(lo)) * np.asarray(spacing)


def roi_for(shape, spacing, previous: np.ndarray | None, accepted, grid_size: int = GRID) -> ROI | None:
    """The ROI for an f3D prediction (of the accepted masks alone when `previous` is None); None when
    there is nothing to predict from."""
    spacing = np.asarray(spacing, float)
    lows, highs = [], []
    if previous is not None and previous.any():
        where = [np.flatnonzero(previous.any(axis=tuple(b for b in range(3) if b != a))) for a in range(3)]
        lows.append([w[0] for w in where])
        highs.append([w[-1] + 1 for w in where])
    for entry in accepted:
        if not entry.mask.any():
            continue
        rows, cols = np.nonzero(entry.mask)
        in_plane = [a for a in range(3) if a != entry.plane.axis]
        lo, hi = np.zeros(3), np.zeros(3)
        lo[in_plane] = rows.min(), cols.min()
        hi[in_plane] = rows.max() + 1, cols.max() + 1
        depth_mm = 0.5 * _extent(lo[in_plane], hi[in_plane], spacing[in_plane]).max()
        reach = depth_mm / spacing[entry.plane.axis]
        lo[entry.plane.axis] = entry.plane.index - reach
        hi[entry.plane.axis] = entry.plane.index + 1 + reach
        lows.append(lo)
        highs.append(hi)
    if not lows:
        return None
    lo, hi = np.min(lows, axis=0), np.max(highs, axis=0)
    extent_mm = _extent(lo, hi, spacing)
    margin_mm = max(MIN_MARGIN_MM, ROI_MARGIN * extent_mm.max())
    grow_mm = np.maximum(margin_mm, (MIN_ROI_MM - extent_mm) / 2)
    lo = np.floor(lo - grow_mm / spacing).astype(int)
    hi = np.ceil(hi + grow_mm / spacing).astype(int)
    box = tuple(slice(max(0, int(a)), min(n, int(b))) for a, b, n in zip(lo, hi, shape))
    extent_mm = np.array([b.stop - b.start for b in box]) * spacing
    voxel_mm = extent_mm.max() / grid_size
    grid = tuple(int(min(grid_size, GRID_MULTIPLE * np.ceil(e / voxel_mm / GRID_MULTIPLE))) for e in extent_mm)
    return ROI(box, grid)
