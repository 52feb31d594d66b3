"""Reading volumes and masks with their geometry, and writing results in that same geometry.

Arrays are numpy [k, j, i] (SimpleITK order); `Volume.spacing` is given in that array order too,
so `spacing[axis]` is the voxel size along numpy axis `axis`.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError


@dataclass
class Volume:
    array: np.ndarray          # [k, j, i]
    spacing: tuple             # (sk, sj, si) in mm, array order
    origin: tuple              # SimpleITK order (x, y, z) of voxel (0, 0, 0)
    direction: tuple           # SimpleITK 3x3 direction, row-major

    @property
    def shape(self):
        return self.array.shape

    def like(self, array: np.ndarray) -> "Volume":
        """The same geometry around another array (a mask, a probability map)."""
        return Volume(array, self.spacing, self.origin, self.direction)

    def to_sitk(self, array: np.ndarray | None = None) -> sitk.Image:
        image = sitk.GetImageFromArray(self.array if array is None else array)
        image.SetSpacing(tuple(float(s) for s in self.spacing[::-1]))
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image


def _read_sitk(path) -> sitk.Image:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        if path.is_dir():  # a DICOM series
            reader = sitk.ImageSeriesReader()
            names = reader.GetGDCMSeriesFileNames(str(path))
            if not names:
                raise InputError(f"{path}: folder holds no DICOM series")
            reader.SetFileNames(names)
            return reader.Execute()
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise InputError(f"{path}: cannot read image ({first})") from None


def read_volume(path, dtype=np.float32) -> Volume:
    """Read a 3D scalar image; refuse 2D, 4D/vector, empty and NaN-only input with a clear message."""
    image = _read_sitk(path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path}: has {image.GetNumberOfComponentsPerPixel()} components per voxel; "
                         "a scalar 3D image is needed")
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() != 3:
        raise InputError(f"{path}: is a {image.GetDimension()}D image; a 3D volume is needed")
    size = image.GetSize()
    if min(size) < 2:
        raise InputError(f"{path}: has size {size}, a single slice; a 3D volume is needed")
    array = sitk.GetArrayFromImage(image)
    if array.size == 0:
        raise InputError(f"{path}: is empty")
    array = array.astype(dtype, copy=False)
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array)
        if bad.all():
            raise InputError(f"{path}: holds no finite values")
        if bad.any():
            raise InputError(f"{path}: holds {int(bad.sum())} NaN or infinite voxels")
    return Volume(array, tuple(image.GetSpacing()[::-1]), image.GetOrigin(), image.GetDirection())


def read_label(path, value: int, reference: Volume | None = None) -> np.ndarray:
    """The binary target `label == value`, checked against the image's grid."""
    label = read_volume(path, dtype=np.int32)
    if reference is not None:
        if label.shape != reference.shape:
            raise InputError(f"{path}: label grid {label.shape} differs from the image grid {reference.shape}")
        if not np.allclose(label.spacing, reference.spacing, rtol=1e-3, atol=1e-4) or \
                not np.allclose(label.origin, reference.origin, atol=1e-2 * max(reference.spacing)):
            raise InputError(f"{path}: label geometry (spacing/origin) differs from the image")
    mask = label.array == value
    if not mask.any():
        raise InputError(f"{path}: label value {value} is absent")
    return mask


def write_mask(mask: np.ndarray, reference: Volume, path) -> Path:
    """Write a binary mask in the reference geometry. Written to a temporary file first and renamed,
    so that an interrupted write never leaves half a file behind."""
    path = Path(path)
    if mask.shape != reference.shape:
        raise InputError(f"{path}: mask shape {mask.shape} differs from image shape {reference.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".nrrd"
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        sitk.WriteImage(reference.to_sitk(mask.astype(np.uint8)), tmp, useCompression=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
