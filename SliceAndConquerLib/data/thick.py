"""Thick-slice reconstruction: what a scanner gives when it reconstructs slabs of several millimetres.

Each output slice is the mean of the input over its slab (partial volume, not subsampling): the input is
integrated along the axis as a piecewise-constant signal and the integral is differenced at the slab
borders, so a constant volume stays constant and a label keeps its volume in mm^3 up to the slabs'
partial-volume rounding. The physical extent along the axis is kept exactly; the slab thickness is the
requested one rounded so that a whole number of slabs fills that extent.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def slab_grid(size: int, spacing: float, thickness: float) -> tuple[int, float]:
    """(number of slabs, slab thickness) that cover `size` voxels of `spacing` mm exactly."""
    length = size * spacing
    count = max(1, int(round(length / thickness)))
    return count, length / count


def slab_mean(array: np.ndarray, axis: int, spacing: float, thickness: float) -> np.ndarray:
    """The slab averages of `array` along `axis` (float32), slabs of about `thickness` mm."""
    values = np.moveaxis(np.asarray(array, np.float64), axis, 0)
    count, slab = slab_grid(values.shape[0], spacing, thickness)
    # integral[m]: the integral (in voxels) of the signal from the first voxel's border to border m.
    integral = np.concatenate([np.zeros((1,) + values.shape[1:]), np.cumsum(values, axis=0)])
    borders = np.arange(count + 1) * (slab / spacing)        # slab borders in input voxels
    low = np.clip(np.floor(borders).astype(int), 0, values.shape[0] - 1)
    frac = (borders - low).reshape((-1,) + (1,) * (values.ndim - 1))
    at_borders = integral[low] + frac * (integral[low + 1] - integral[low])
    means = np.diff(at_borders, axis=0) / (slab / spacing)
    return np.moveaxis(means, 0, axis).astype(np.float32)


def slab_labels(labels: np.ndarray, axis: int, spacing: float, thickness: float) -> np.ndarray:
    """The label map on the slab grid: each slab voxel takes the label covering most of it (background
    included), as a label map resampled with partial volume and then thresholded would."""
    values = [v for v in np.unique(labels) if v != 0]
    best = slab_mean(labels == 0, axis, spacing, thickness)
    out = np.zeros(best.shape, labels.dtype)
    for value in values:
        share = slab_mean(labels == value, axis, spacing, thickness)
        better = share > best
        out[better] = value
        best = np.where(better, share, best)
    return out


def thick_image(image: sitk.Image, axis: int, thickness: float, labels: bool = False) -> sitk.Image:
    """`image` reconstructed in slabs of about `thickness` mm along numpy `axis` ([k, j, i] order);
    the origin moves to the first slab's centre, the direction is unchanged."""
    array = sitk.GetArrayFromImage(image)
    dim = 2 - axis                                          # SimpleITK's index of that axis
    spacing = image.GetSpacing()[dim]
    count, slab = slab_grid(array.shape[axis], spacing, thickness)
    out = (slab_labels(array, axis, spacing, thickness) if labels
           else slab_mean(array, axis, spacing, thickness))
    result = sitk.GetImageFromArray(out)
    new_spacing = list(image.GetSpacing())
    new_spacing[dim] = slab
    result.SetSpacing(new_spacing)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    shift = (slab - spacing) / 2.0                           # first voxel centre -> first slab centre
    result.SetOrigin(tuple(np.asarray(image.GetOrigin()) + direction[:, dim] * shift))
    result.SetDirection(image.GetDirection())
    return result
