"""Slicer's own Segment Editor algorithms, run on numpy arrays (needs the `slicer` extra: slicer-core).

- fill_between_slices: "Fill between slices" (vtkITKMorphologicalContourInterpolator, the morphological
  contour interpolation of Zukic et al.), with the effect's default settings.
- grow_from_seeds: "Grow from seeds" (vtkImageGrowCutSegment, the fast grow-cut of Zhu et al.).

Arrays are indexed [k, j, i] (SimpleITK / Slicer array order) and `spacing` is given in the same
order; vtkImageData wants (i, j, k). A C-ordered [k, j, i] array already stores its voxels with i
fastest, which is vtk's point order, so only the dimensions and the spacing are reversed.

Memory: inputs are deep-copied into vtk arrays and results are fresh numpy arrays, so no numpy array
ever shares memory with a vtk object (nothing to keep alive, nothing dangling).

Exit-time crash workaround: ITK's MorphologicalContourInterpolator keeps ITK filters in
`thread_local` variables. slicer-core's ITK runs that filter's loop over slice pairs on TBB worker
threads, which live until the process exits; their thread-local ITK filters are then destroyed after
ITK's own globals (TimeStamp::Modified on a freed global -> SIGSEGV, exit code 139, in most processes
that interpolated more than one pair of slices). ITK's "Platform" threader instead starts and joins
its threads on every call, so those thread-local filters die while ITK is alive. The threader is read
once, from ITK_GLOBAL_DEFAULT_THREADER, when Slicer's ITK creates its first filter:
_use_platform_itk_threader() sets it for that moment only (unless the user already set it). It cannot
help if Slicer's ITK made a filter before this module was imported (e.g. inside the Slicer app).
"""
from __future__ import annotations

import os

import numpy as np
import slicer
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonDataModel import vtkImageData

_ITK_THREADER_VARIABLE = "ITK_GLOBAL_DEFAULT_THREADER"


def _to_vtk_image(array: np.ndarray, spacing) -> vtkImageData:
    """A vtkImageData holding a copy of the [k, j, i] `array`, with (k, j, i) `spacing`."""
    array = np.ascontiguousarray(array)
    image = vtkImageData()
    image.SetDimensions(*array.shape[::-1])             # vtk wants (i, j, k)
    image.SetSpacing(*(float(s) for s in spacing[::-1]))
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True))
    return image


def _to_numpy(image: vtkImageData, shape) -> np.ndarray:
    """The scalars of a filter's output as a [k, j, i] numpy view (valid while `image` lives)."""
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(shape)


def fill_between_slices(labelmap: np.ndarray, spacing=(1.0, 1.0, 1.0), axis: int | None = None) -> np.ndarray:
    """Slicer's "Fill between slices": interpolate the foreground of annotated slices.

    labelmap: [k, j, i] array, nonzero on the foreground of the annotated slices, 0 elsewhere (an
        annotated slice is recognised by empty neighbours on both sides along its axis).
    spacing: voxel size in (k, j, i) order.
    axis: numpy axis the annotated slices are perpendicular to (0: slices labelmap[k]);
        None lets the filter detect the slices on every axis.
    Returns a bool array of labelmap's shape; nothing is added outside the annotated slice range.
    """
    labelmap = np.asarray(labelmap)
    interpolator = slicer.vtkITKMorphologicalContourInterpolator()
    interpolator.SetInputData(_to_vtk_image((labelmap != 0).astype(np.uint8), spacing))
    interpolator.SetAxis(-1 if axis is None else 2 - axis)     # numpy axis -> vtk axis (i, j, k)
    # Everything else keeps the effect's defaults: all labels, heuristic alignment, repeated
    # cross-shaped dilations (no distance transform, no ball structuring element).
    interpolator.Update()
    return _to_numpy(interpolator.GetOutput(), labelmap.shape) != 0


def grow_from_seeds(image: np.ndarray, seeds: np.ndarray, spacing=(1.0, 1.0, 1.0),
                    distance_penalty: float = 0.0) -> np.ndarray:
    """Slicer's "Grow from seeds" (grow-cut): each voxel takes the label of the seed with the
    cheapest path to it, a path costing the sum of intensity differences between neighbours.

    image: [k, j, i] intensities (any int or float type); a 2D image is a (1, H, W) array.
    seeds: same shape; 0 unlabelled, 1 foreground, 2 background (other labels also compete).
    spacing: voxel size in (k, j, i) order; only matters with a distance_penalty.
    distance_penalty: the effect's "Seed locality" (intensity cost added per mm); 0 is its default.
    Returns a bool array: the voxels labelled 1.
    """
    image, seeds = np.asarray(image), np.asarray(seeds)
    if image.shape != seeds.shape:
        raise ValueError(f"image {image.shape} and seeds {seeds.shape} differ in shape")
    if image.dtype == bool or image.dtype == np.float16:       # types vtk has no array for
        image = image.astype(np.float32)
    # The filter never grows from voxels on the image's border (they have no neighbours), so a
    # (1, H, W) image would not grow at all: pad one unseeded voxel on every side, crop afterwards.
    image = np.pad(image, 1, mode="edge")
    seeds = np.pad(seeds.astype(np.int16), 1)
    grow_cut = slicer.vtkImageGrowCutSegment()
    grow_cut.SetIntensityVolume(_to_vtk_image(image, spacing))   # input 0
    grow_cut.SetSeedLabelVolume(_to_vtk_image(seeds, spacing))   # input 1 (input 2: optional mask)
    grow_cut.SetDistancePenalty(distance_penalty)
    grow_cut.Update()
    return (_to_numpy(grow_cut.GetOutput(), seeds.shape) == 1)[1:-1, 1:-1, 1:-1].copy()


def _use_platform_itk_threader() -> None:
    """Make Slicer's ITK use its "Platform" threader (see the module docstring for why)."""
    if _ITK_THREADER_VARIABLE in os.environ:   # an explicit choice wins
        return
    os.environ[_ITK_THREADER_VARIABLE] = "Platform"
    try:
        fill_between_slices(np.zeros((1, 1, 1), np.uint8))   # ITK's first filter reads the variable
    finally:
        del os.environ[_ITK_THREADER_VARIABLE]


_use_platform_itk_threader()
