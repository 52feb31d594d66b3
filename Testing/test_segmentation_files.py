"""Slicer segmentation files (.seg.nrrd): `snc segment --out X.seg.nrrd` and `--init-mask X.seg.nrrd`.

Written with slicerio and read back with slicerio and with Slicer's own reader (slicer-core's
vtkMRMLSegmentationStorageNode): segment name, colour, geometry (origin, spacing, direction) and voxels.
"""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from SliceAndConquerLib.errors import InputError
from SliceAndConquerLib.imageio import Volume, read_segment, write_segmentation

slicerio = pytest.importorskip("slicerio")

SHAPE = (12, 20, 16)                      # [k, j, i]
SPACING = (2.5, 0.8, 0.6)                 # array order (sk, sj, si)
ORIGIN = (-30.0, 12.5, 101.0)             # LPS of voxel (0, 0, 0)
ANGLE = np.deg2rad(20)
DIRECTION = tuple(np.array([[np.cos(ANGLE), -np.sin(ANGLE), 0.0],
                            [np.sin(ANGLE), np.cos(ANGLE), 0.0],
                            [0.0, 0.0, -1.0]]).ravel())


@pytest.fixture
def volume():
    rng = np.random.default_rng(1)
    return Volume(rng.normal(size=SHAPE).astype(np.float32), SPACING, ORIGIN, DIRECTION)


@pytest.fixture
def mask():
    mask = np.zeros(SHAPE, bool)
    mask[3:9, 4:15, 2:7] = True
    mask[5, 10, 12] = True  # an isolated voxel: checks the axis order exactly
    return mask


def ijk_to_lps(volume):
    matrix = np.eye(4)
    matrix[:3, :3] = np.reshape(volume.direction, (3, 3)) @ np.diag(volume.spacing[::-1])
    matrix[:3, 3] = volume.origin
    return matrix


def test_written_segmentation_reads_back_with_slicerio(tmp_path, volume, mask):
    path = write_segmentation(mask, volume, tmp_path / "result.seg.nrrd", name="kidney", color=(0.9, 0.3, 0.2))
    segmentation = slicerio.read_segmentation(str(path))
    (segment,) = segmentation["segments"]
    assert segment["name"] == "kidney"
    assert np.allclose(segment["color"], (0.9, 0.3, 0.2))
    assert np.allclose(segmentation["ijkToLPS"], ijk_to_lps(volume))
    assert segmentation["voxels"].shape == SHAPE[::-1]  # (i, j, k): the full reference grid
    assert np.array_equal(slicerio.segment_mask(segmentation, "kidney").transpose(2, 1, 0), mask)
    assert segmentation["masterRepresentation"] == "Binary labelmap"
    geometry = {p["name"]: p["value"] for p in segmentation["conversionParameters"]}["Reference image geometry"]
    numbers = [float(v) for v in geometry.strip(";").split(";")]
    ijk_to_ras = np.diag([-1, -1, 1, 1]) @ ijk_to_lps(volume)
    assert np.allclose(np.reshape(numbers[:16], (4, 4)), ijk_to_ras)
    assert numbers[16:] == [0, SHAPE[2] - 1, 0, SHAPE[1] - 1, 0, SHAPE[0] - 1]


def test_written_segmentation_reads_back_with_slicers_own_reader(tmp_path, volume, mask):
    slicer = pytest.importorskip("slicer")
    if not hasattr(slicer, "vtkMRMLSegmentationStorageNode"):
        pytest.skip("needs slicer-core")
    from vtk.util.numpy_support import vtk_to_numpy

    path = write_segmentation(mask, volume, tmp_path / "result.seg.nrrd", name="kidney", color=(0.9, 0.3, 0.2))
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1
    segment = segmentation.GetNthSegment(0)
    assert segment.GetName() == "kidney"
    assert np.allclose(segment.GetColor(), (0.9, 0.3, 0.2), atol=1e-6)

    labelmap = slicer.vtkOrientedImageData()
    assert node.GetBinaryLabelmapRepresentation(segmentation.GetNthSegmentID(0), labelmap)
    image_to_world = slicer.vtkMatrix4x4() if hasattr(slicer, "vtkMatrix4x4") else __import__("vtk").vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(image_to_world)
    ras = np.array([[image_to_world.GetElement(r, c) for c in range(4)] for r in range(4)])
    assert np.allclose(ras, np.diag([-1, -1, 1, 1]) @ ijk_to_lps(volume), atol=1e-5)  # Slicer works in RAS
    extent = labelmap.GetExtent()
    dims = [extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1]
    voxels = vtk_to_numpy(labelmap.GetPointData().GetScalars()).reshape(dims[::-1]) > 0  # [k, j, i] of the extent
    full = np.zeros(SHAPE, bool)
    full[extent[4]:extent[5] + 1, extent[2]:extent[3] + 1, extent[0]:extent[1] + 1] = voxels
    assert np.array_equal(full, mask)
    reference = segmentation.GetConversionParameter("Reference image geometry")
    assert reference and reference.strip(";").split(";")[16:] == ["0", str(SHAPE[2] - 1), "0",
                                                                   str(SHAPE[1] - 1), "0", str(SHAPE[0] - 1)]


def _write_two_segments(path, volume, liver, kidney, crop=None):
    """A file as Slicer writes it: two overlapping segments (two layers), optionally cropped to a sub-box."""
    matrix = ijk_to_lps(volume)
    k0, j0, i0 = (0, 0, 0) if crop is None else (crop[0].start, crop[1].start, crop[2].start)
    if crop is not None:
        matrix[:3, 3] = matrix[:3, :3] @ np.array([i0, j0, k0], float) + matrix[:3, 3]
        liver, kidney = liver[crop], kidney[crop]
    segmentation = slicerio.create_segmentation(liver.shape[::-1], matrix)
    slicerio.add_segment(segmentation, liver.transpose(2, 1, 0), {"id": "Segment_1", "name": "liver",
                                                                  "color": [0.8, 0.4, 0.3]})
    slicerio.add_segment(segmentation, kidney.transpose(2, 1, 0), {"id": "Segment_2", "name": "kidney",
                                                                   "color": [0.2, 0.6, 0.9]})
    slicerio.write_segmentation(str(path), segmentation)


@pytest.mark.parametrize("crop", [None, (slice(2, 10), slice(3, 17), slice(1, 14))])
def test_init_mask_reads_the_segment_chosen_by_name(tmp_path, volume, mask, crop):
    liver = np.zeros(SHAPE, bool)
    liver[4:8, 6:12, 3:12] = True  # overlaps the kidney: Slicer (and slicerio) put it on a second layer
    path = tmp_path / "two.seg.nrrd"
    _write_two_segments(path, volume, liver, mask, crop)
    if crop is not None:  # outside the stored box nothing can be read back
        mask, liver = mask & _box(crop), liver & _box(crop)
    read, segment = read_segment(path, "kidney", volume)
    assert segment["name"] == "kidney" and np.allclose(segment["color"], (0.2, 0.6, 0.9))
    assert np.array_equal(read, mask)
    assert np.array_equal(read_segment(path, "liver", volume)[0], liver)


def _box(crop):
    box = np.zeros(SHAPE, bool)
    box[crop] = True
    return box


def test_an_unknown_segment_name_lists_the_segments_there_are(tmp_path, volume, mask):
    path = tmp_path / "two.seg.nrrd"
    _write_two_segments(path, volume, mask, mask)
    with pytest.raises(InputError, match=r"no segment named 'spleen'; its segments are 'liver', 'kidney'"):
        read_segment(path, "spleen", volume)
    with pytest.raises(InputError, match=r"holds 2 segments .*--init-segment"):
        read_segment(path, None, volume)
    single = write_segmentation(mask, volume, tmp_path / "one.seg.nrrd", name="only")
    assert read_segment(single, None, volume)[1]["name"] == "only"  # one segment: no name needed


def test_snc_segment_writes_and_refines_a_slicer_segmentation(tmp_path, volume, capsys):
    """The command line end to end: --out X.seg.nrrd, then --init-mask X.seg.nrrd --init-segment NAME."""
    from SliceAndConquerLib.cli import main

    shape = (16, 40, 40)
    grid = np.indices(shape)
    ball = sum((g - c) ** 2 for g, c in zip(grid, (8, 20, 20))) <= 7 ** 2
    image = (ball * 200.0 + np.random.default_rng(0).normal(0, 5, shape)).astype(np.float32)
    sitk_image = sitk.GetImageFromArray(image)
    sitk_image.SetSpacing((0.9, 0.9, 2.0))
    sitk_image.SetOrigin((10.0, -5.0, 3.0))
    image_path = tmp_path / "image.nrrd"
    sitk.WriteImage(sitk_image, str(image_path))
    clicks = tmp_path / "clicks.json"
    clicks.write_text(json.dumps({"slices": [{"plane": [0, 8], "clicks": [[20, 20, True]]}]}))

    out = tmp_path / "result.seg.nrrd"
    assert main(["segment", str(image_path), "--clicks", str(clicks), "--out", str(out),
                 "--segment-name", "ball", "--segment-color", "0.1,0.8,0.3"]) == 0
    written = slicerio.read_segmentation(str(out))
    (segment,) = written["segments"]
    assert segment["name"] == "ball" and np.allclose(segment["color"], (0.1, 0.8, 0.3))
    assert np.allclose(written["ijkToLPS"], [[0.9, 0, 0, 10.0], [0, 0.9, 0, -5.0], [0, 0, 2.0, 3.0], [0, 0, 0, 1]])
    first = slicerio.segment_mask(written, "ball").transpose(2, 1, 0)
    assert first.shape == shape and first[8, 20, 20]

    refined = tmp_path / "refined.seg.nrrd"  # name and colour carried over from the --init-segment
    assert main(["segment", str(image_path), "--clicks", str(clicks), "--out", str(refined),
                 "--init-mask", str(out), "--init-segment", "ball"]) == 0
    (segment,) = slicerio.read_segmentation(str(refined))["segments"]
    assert segment["name"] == "ball" and np.allclose(segment["color"], (0.1, 0.8, 0.3))

    capsys.readouterr()
    assert main(["segment", str(image_path), "--clicks", str(clicks), "--out", str(tmp_path / "x.seg.nrrd"),
                 "--init-mask", str(out), "--init-segment", "cube"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "no segment named 'cube'" in error[0] and "'ball'" in error[0]
    assert not (tmp_path / "x.seg.nrrd").exists()
    assert main(["segment", str(image_path), "--clicks", str(clicks), "--out", str(tmp_path / "y.nii.gz"),
                 "--init-mask", str(image_path), "--init-segment", "ball"]) == 2
    assert "only a Slicer segmentation" in capsys.readouterr().err
    assert main(["segment", str(image_path), "--clicks", str(clicks), "--out", str(tmp_path / "z.seg.nrrd"),
                 "--init-segment", "ball"]) == 2
    assert "needs --init-mask" in capsys.readouterr().err
    assert not (tmp_path / "z.seg.nrrd").exists()
