import json

import numpy as np
import pytest
import SimpleITK as sitk

from SliceAndConquerLib.data.manifest import read_manifest, write_manifest
from SliceAndConquerLib.errors import InputError
from SliceAndConquerLib.imageio import read_label, read_volume, write_mask


def _write(array, path, spacing=None):
    image = sitk.GetImageFromArray(array)
    if spacing:
        image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture
def oriented_image(tmp_path):
    array = np.random.default_rng(0).normal(size=(6, 7, 8)).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.5, 0.8, 3.0))
    image.SetOrigin((10.0, -20.0, 5.0))
    image.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
    path = tmp_path / "image.nrrd"
    sitk.WriteImage(image, str(path))
    return path, array


def test_geometry_is_preserved_end_to_end(oriented_image, tmp_path):
    path, array = oriented_image
    volume = read_volume(path)
    assert volume.spacing == (3.0, 0.8, 0.5)  # array order (k, j, i)
    assert np.array_equal(volume.array, array)
    mask = volume.array > 0
    out = write_mask(mask, volume, tmp_path / "out" / "mask.nii.gz")
    written = sitk.ReadImage(str(out))
    assert np.allclose(written.GetSpacing(), (0.5, 0.8, 3.0))
    assert np.allclose(written.GetOrigin(), (10.0, -20.0, 5.0))
    assert np.allclose(written.GetDirection(), (0, 1, 0, -1, 0, 0, 0, 0, 1))
    assert np.array_equal(sitk.GetArrayFromImage(written) > 0, mask)
    assert [p.name for p in out.parent.iterdir()] == ["mask.nii.gz"]  # no temporary left behind


@pytest.mark.parametrize("shape, message", [((10, 12), "2D"), ((1, 10, 12), "single slice")])
def test_2d_input_is_refused(tmp_path, shape, message):
    path = _write(np.zeros(shape, np.float32), tmp_path / "flat.nrrd")
    with pytest.raises(InputError, match=message):
        read_volume(path)


def test_4d_and_vector_input_is_refused(tmp_path):
    four_d = sitk.JoinSeries([sitk.Image([4, 4, 4], sitk.sitkFloat32)] * 3)
    sitk.WriteImage(four_d, str(tmp_path / "4d.nii.gz"))
    with pytest.raises(InputError, match="4D"):
        read_volume(tmp_path / "4d.nii.gz")
    vector = sitk.GetImageFromArray(np.zeros((4, 4, 4, 3), np.float32), isVector=True)
    sitk.WriteImage(vector, str(tmp_path / "rgb.nrrd"))
    with pytest.raises(InputError, match="components"):
        read_volume(tmp_path / "rgb.nrrd")


def test_nan_missing_and_corrupt_files(tmp_path):
    array = np.ones((4, 4, 4), np.float32)
    array[1, 2, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        read_volume(_write(array, tmp_path / "nan.nrrd"))
    with pytest.raises(InputError, match="not found"):
        read_volume(tmp_path / "absent.nrrd")
    (tmp_path / "corrupt.nii.gz").write_bytes(b"not an image")
    with pytest.raises(InputError, match="corrupt.nii.gz: cannot read"):
        read_volume(tmp_path / "corrupt.nii.gz")


def test_label_value_absent_and_grid_mismatch(tmp_path):
    image = read_volume(_write(np.zeros((4, 5, 6), np.float32), tmp_path / "i.nrrd"))
    label = _write(np.ones((4, 5, 6), np.uint8), tmp_path / "l.nrrd")
    assert read_label(label, 1, image).all()
    with pytest.raises(InputError, match="value 7 is absent"):
        read_label(label, 7, image)
    other = _write(np.ones((4, 5, 7), np.uint8), tmp_path / "o.nrrd")
    with pytest.raises(InputError, match="differs"):
        read_label(other, 1, image)


def test_manifest_paths_are_relative_to_the_manifest(tmp_path):
    (tmp_path / "data").mkdir()
    image = _write(np.zeros((4, 5, 6), np.float32), tmp_path / "data" / "i.nrrd")
    label = _write(np.ones((4, 5, 6), np.uint8), tmp_path / "data" / "l.nrrd")
    path = write_manifest(tmp_path / "m.json", [{"name": "a", "image": image, "label": label, "value": 1}])
    assert json.loads(path.read_text())["cases"][0]["image"] == "data/i.nrrd"
    case = read_manifest(path)[0]
    assert case.image == image.resolve() and case.value == 1
    volume, target = case.load()
    assert target.all() and volume.shape == (4, 5, 6)
    (tmp_path / "bad.json").write_text('{"cases": [{"name": "x"}]}')
    with pytest.raises(InputError, match="not a valid manifest"):
        read_manifest(tmp_path / "bad.json")
