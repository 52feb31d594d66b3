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


# ---- Slicer segmentation files (.seg.nrrd), through slicerio ------------------------------------------------
DEFAULT_SEGMENT_NAME = "Segment_1"
DEFAULT_SEGMENT_COLOR = (0.501961, 0.682353, 0.501961)  # Slicer's colour for a first new segment ("tissue")


def is_segmentation_file(path) -> bool:
    return str(path).lower().endswith(".seg.nrrd")


def _ijk_to_lps(volume: Volume) -> np.ndarray:
    """4x4 matrix from voxel (i, j, k) to LPS millimetres (SimpleITK's physical space)."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(volume.direction, float).reshape(3, 3) @ np.diag(np.asarray(volume.spacing,
                                                                                             float)[::-1])
    matrix[:3, 3] = volume.origin
    return matrix


def _reference_image_geometry(volume: Volume) -> str:
    """Slicer's "Reference image geometry" conversion parameter: the image-to-world (RAS) matrix, row by row,
    then the extent, each number followed by ';'."""
    ijk_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ _ijk_to_lps(volume)
    extent = [v for n in volume.shape[::-1] for v in (0, n - 1)]
    return "".join(f"{float(v):.17g};" for v in ijk_to_ras.ravel()) + "".join(f"{v};" for v in extent)


def write_segmentation(mask: np.ndarray, reference: Volume, path, name: str = DEFAULT_SEGMENT_NAME,
                       color=DEFAULT_SEGMENT_COLOR) -> Path:
    """Write `mask` as a Slicer segmentation (.seg.nrrd) with one segment `name` of `color` (RGB in 0..1),
    on the reference image's full grid, with that grid as the segmentation's reference geometry."""
    import slicerio

    path = Path(path)
    if mask.shape != reference.shape:
        raise InputError(f"{path}: mask shape {mask.shape} differs from image shape {reference.shape}")
    color = [float(c) for c in color]
    if len(color) != 3 or not all(0.0 <= c <= 1.0 for c in color):
        raise InputError(f"segment colour {color}: three numbers between 0 and 1 are needed")
    segmentation = slicerio.create_segmentation(reference.shape[::-1], _ijk_to_lps(reference))
    segmentation["containedRepresentationNames"] = ["Binary labelmap"]
    # Slicer's serialization, "name|value|description&" per parameter: the '&' ends each one, the last
    # included (slicerio's "conversionParameters" joins them without the final '&', which Slicer drops).
    segmentation["Segmentation_ConversionParameters"] = (
        f"Reference image geometry|{_reference_image_geometry(reference)}|Image geometry description string "
        "determining the geometry of the labelmap that is created in course of conversion.&")
    slicerio.add_segment(segmentation, np.asarray(mask, bool).transpose(2, 1, 0),  # [k, j, i] -> (i, j, k)
                         {"id": "Segment_1", "name": name, "color": color, "nameAutoGenerated": False,
                          "colorAutoGenerated": False})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".seg.nrrd", dir=path.parent)
    os.close(fd)
    try:
        slicerio.write_segmentation(tmp, segmentation)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_segment(path, name: str | None, reference: Volume):
    """The segment `name` of a Slicer segmentation file, on the reference image's grid (nearest neighbour:
    Slicer often stores a segmentation cropped to its segments' extent). Returns (mask, segment dict)."""
    import slicerio

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        segmentation = slicerio.read_segmentation(str(path))
    except Exception as exc:  # pynrrd / slicerio errors: not a readable segmentation
        raise InputError(f"{path}: cannot read the segmentation ({type(exc).__name__}: {exc})") from None
    names = [segment.get("name", segment.get("id", "")) for segment in segmentation.get("segments", [])]
    if not names:
        raise InputError(f"{path}: holds no segments")
    if name is None:
        if len(names) > 1:
            raise InputError(f"{path}: holds {len(names)} segments ({', '.join(map(repr, names))}); choose "
                             "one with --init-segment NAME")
        name = names[0]
    matches = [s for s in segmentation["segments"] if s.get("name") == name]
    if not matches:
        raise InputError(f"{path}: no segment named {name!r}; its segments are {', '.join(map(repr, names))}")
    if len(matches) > 1:
        raise InputError(f"{path}: {len(matches)} segments are named {name!r}")
    segment = matches[0]
    mask_ijk = slicerio.segment_mask(segmentation, segment)  # (i, j, k)
    ijk_to_lps = np.asarray(segmentation["ijkToLPS"], float)
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(mask_ijk.transpose(2, 1, 0).astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(v) for v in ijk_to_lps[:3, 3]))
    image.SetDirection(tuple(float(v) for v in (ijk_to_lps[:3, :3] / spacing).ravel()))
    on_grid = sitk.Resample(image, reference.to_sitk(np.zeros(reference.shape, np.uint8)), sitk.Transform(),
                            sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    mask = sitk.GetArrayFromImage(on_grid) > 0
    if not mask.any():
        raise InputError(f"{path}: segment {name!r} has no voxels on the image's grid")
    return mask, segment
