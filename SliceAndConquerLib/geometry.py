"""Regions of interest and resampling on numpy volumes [k, j, i] with spacing in the same order."""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def punch_holes(mask: np.ndarray, holes) -> np.ndarray:
    """`mask` with a ball of voxels removed (in place) for each (centre, radius in voxels) of `holes`."""
    grid = np.ogrid[tuple(slice(0, n) for n in mask.shape)]
    for centre, radius in holes:
        mask &= sum((g - c) ** 2 for g, c in zip(grid, centre)) > radius ** 2
    return mask


def bounding_box(mask: np.ndarray, margin=0, min_size=1):
    """Tuple of slices around the True voxels of `mask`, grown by `margin` voxels per axis (int or
    per-axis) and to at least `min_size` voxels per axis, clipped to the array. None if empty."""
    if not mask.any():
        return None
    shape = mask.shape
    margins = np.broadcast_to(np.asarray(margin, dtype=int), (mask.ndim,))
    sizes = np.broadcast_to(np.asarray(min_size, dtype=int), (mask.ndim,))
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        lo = max(0, int(present[0]) - int(margins[axis]))
        hi = min(shape[axis], int(present[-1]) + 1 + int(margins[axis]))
        size = min(int(sizes[axis]), shape[axis])
        if hi - lo < size:  # grow around the centre, then slide back inside the array
            lo = (lo + hi - size) // 2
            lo = min(max(0, lo), shape[axis] - size)
            hi = lo + size
        box.append(slice(lo, hi))
    return tuple(box)


def union_box(*boxes) -> tuple:
    """The smallest box (tuple of slices) holding all of `boxes`."""
    return tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(len(boxes[0])))


def crop(volume: np.ndarray, box) -> np.ndarray:
    """A copy of the box's voxels (a copy, so later edits of either never leak into the other)."""
    return volume[box].copy()


def paste(volume: np.ndarray, box, patch: np.ndarray) -> np.ndarray:
    """A new volume equal to `volume` except inside `box`, which holds `patch`."""
    out = volume.copy()
    out[box] = patch
    return out


def resample(array: np.ndarray, spacing, new_spacing=None, new_shape=None, order=1) -> np.ndarray:
    """Resample so that the physical extent (shape * spacing) is kept. Give either the target spacing
    or the target shape. order=0 for labels, 1 for images."""
    spacing = np.asarray(spacing, dtype=float)
    if new_shape is None:
        extent = np.asarray(array.shape) * spacing
        new_shape = np.maximum(1, np.round(extent / np.asarray(new_spacing, dtype=float))).astype(int)
    new_shape = tuple(int(s) for s in new_shape)
    if new_shape == array.shape:
        return array.copy()
    zoom = np.asarray(new_shape) / np.asarray(array.shape)
    if array.dtype == bool:
        return ndimage.zoom(array.astype(np.float32), zoom, order=order, mode="nearest", grid_mode=True) >= 0.5
    return ndimage.zoom(array, zoom, order=order, mode="nearest", grid_mode=True)


def resampled_spacing(shape, spacing, new_shape):
    """Spacing of a resampled array that keeps the physical extent."""
    return tuple(float(s * n / m) for s, n, m in zip(spacing, shape, new_shape))


THICK_RATIO = 2.0  # an axis this many times coarser than the finest one is a scan's slice direction


def usable_axes(shape) -> list[int]:
    """The axes whose planes are images, not lines: at least 2 voxels along both in-plane axes (a
    volume of one slice along an axis has planes of the other two axes one voxel tall)."""
    return [axis for axis in range(3) if min(np.delete(np.asarray(shape), axis)) >= 2]


def drawing_axis(spacing, shape=None) -> int:
    """The axis whose planes a user draws on (array order): on a thick-slice scan, the axis of coarsest
    spacing, whose planes are the scan's native images; otherwise axis 0. With `shape`, an axis whose
    planes are lines (`usable_axes`) is never chosen."""
    spacing = np.asarray(spacing, float)
    coarse = int(np.argmax(spacing))
    axis = coarse if spacing[coarse] >= THICK_RATIO * spacing.min() else 0
    if shape is not None and axis not in usable_axes(shape):
        axis = drawable_axes(spacing, shape)[0]
    return axis


def drawable_axes(spacing, shape=None) -> list[int]:
    """The axes whose planes have pixels a user can draw on: less than THICK_RATIO times longer one way
    than the other (all three on a near-isotropic volume; only the slice axis of a thick-slice scan,
    whose other planes are strips a few voxels tall), and with `shape` not lines (`usable_axes`).
    Never empty while `usable_axes` is not: the least elongated otherwise."""
    in_plane = [np.delete(np.asarray(spacing, float), axis) for axis in range(3)]  # each plane's pixel
    aspect = [pixel.max() / pixel.min() for pixel in in_plane]
    candidates = list(range(3)) if shape is None else usable_axes(shape)
    axes = [axis for axis in candidates if aspect[axis] < THICK_RATIO]
    return axes or [min(candidates, key=lambda axis: aspect[axis])]


def drawable_slices(shape, spacing) -> list:
    """Per axis, a boolean array over its slices: True on the axes of `drawable_axes`."""
    drawable = drawable_axes(spacing, shape)
    return [np.full(n, axis in drawable) for axis, n in enumerate(shape)]
