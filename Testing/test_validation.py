"""The grouped validation: thick-slice reconstruction, synthetic lesions, NSD, per-group and macro scores."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import make_sphere
from SliceAndConquerLib.data.lesions import VALIDATION_LESIONS, body_mask, insert_lesions
from SliceAndConquerLib.data.manifest import read_manifest, select_groups, write_manifest
from SliceAndConquerLib.data.thick import slab_labels, slab_mean, thick_image
from SliceAndConquerLib.errors import InputError
from SliceAndConquerLib.evaluation.harness import resolve_methods, summarize
from SliceAndConquerLib.geometry import drawing_axis
from SliceAndConquerLib.metrics import curve_auc, normalized_surface_dice


# Thick-slice reconstruction
def test_thick_slices_keep_a_constant_volume_constant_and_the_extent():
    image = sitk.GetImageFromArray(np.full((40, 12, 10), 7.0, np.float32))
    image.SetSpacing((0.8, 0.9, 1.0))       # x, y, z: numpy axis 0 has 1.0 mm
    image.SetOrigin((5.0, -3.0, 10.0))
    thick = thick_image(image, axis=0, thickness=6.5)
    array = sitk.GetArrayFromImage(thick)
    assert np.allclose(array, 7.0, atol=1e-5)
    assert array.shape[0] * thick.GetSpacing()[2] == pytest.approx(40 * 1.0)   # same physical extent
    assert thick.GetSpacing()[:2] == image.GetSpacing()[:2]
    # The first slab's centre: half a slab in from the first input voxel's border (at 9.5 mm).
    assert thick.GetOrigin()[2] == pytest.approx(9.5 + thick.GetSpacing()[2] / 2)


def test_thick_slices_average_partial_volume_and_keep_a_label_volume():
    ramp = np.arange(12, dtype=np.float32)[:, None, None] * np.ones((12, 3, 3), np.float32)
    means = slab_mean(ramp, axis=0, spacing=1.0, thickness=3.0)
    assert means[:, 0, 0] == pytest.approx([1.0, 4.0, 7.0, 10.0])          # averages, not samples
    ball = make_sphere((60, 40, 40), radius=12.0)
    labels = ball.astype(np.uint8) * 3
    thick = slab_labels(labels, axis=1, spacing=1.0, thickness=5.0)
    slab = 40 / round(40 / 5.0)
    assert (thick == 3).sum() * slab == pytest.approx(ball.sum(), rel=0.06)   # mm^3 kept
    assert set(np.unique(thick)) == {0, 3}


def test_drawing_axis_is_the_slice_axis_of_a_thick_scan():
    assert drawing_axis((1.0, 1.0, 1.0)) == 0
    assert drawing_axis((3.0, 3.0, 3.0)) == 0
    assert drawing_axis((1.0, 5.0, 1.0)) == 1
    assert drawing_axis((6.5, 3.0, 3.0)) == 0
    assert drawing_axis((1.2, 1.0, 1.0)) == 0


# Synthetic lesions
def _host_volume():
    rng = np.random.default_rng(1)
    body = make_sphere((50, 64, 64), radius=28.0)
    organs = np.zeros(body.shape, np.uint8)
    organs[make_sphere(body.shape, centre=(25, 26, 32), radius=14.0)] = 1
    organs[make_sphere(body.shape, centre=(25, 42, 32), radius=10.0)] = 2
    organs &= body.astype(np.uint8) * 255
    image = (body * 40.0 + organs * 20.0 + rng.normal(0, 5, body.shape) - 1000 * ~body).astype(np.float32)
    return image, organs, body


def test_lesions_are_deterministic_and_inside_the_body():
    image, organs, body = _host_volume()
    first = insert_lesions(image, organs, body_mask(image, -500), (1.0, 1.0, 1.0), 4, VALIDATION_LESIONS, 3)
    again = insert_lesions(image, organs, body_mask(image, -500), (1.0, 1.0, 1.0), 4, VALIDATION_LESIONS, 3)
    other = insert_lesions(image, organs, body_mask(image, -500), (1.0, 1.0, 1.0), 4, VALIDATION_LESIONS, 4)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])
    with_lesions, labels, lesions = first
    assert len(lesions) == 4 and set(np.unique(labels)) == {0, 1, 2, 3, 4}
    assert not (labels > 0)[~body].any()                       # every lesion inside the host body
    assert np.array_equal(with_lesions[~body], image[~body])  # air untouched
    for lesion in lesions:                                     # the lesion differs from its host
        inside = labels == lesion["value"]
        assert abs(with_lesions[inside].mean() - image[inside].mean()) > 0.5 * abs(lesion["contrast"])


# NSD and the curve area
def test_nsd_of_identical_masks_is_one_and_a_shift_beyond_tolerance_lowers_it():
    spacing = (3.0, 1.0, 1.0)
    ball = make_sphere((20, 40, 40), radius=10.0, spacing=spacing)
    assert normalized_surface_dice(ball, ball, spacing) == 1.0
    along_thick = np.roll(ball, 1, axis=0)          # 3 mm: beyond the 2 mm tolerance
    along_fine = np.roll(ball, 1, axis=2)           # 1 mm: within it
    assert normalized_surface_dice(ball, along_thick, spacing) < 0.9
    assert normalized_surface_dice(ball, along_fine, spacing) == pytest.approx(1.0)
    assert normalized_surface_dice(ball, along_fine, spacing, tolerance_mm=0.5) < 1.0


def test_nsd_of_empty_masks_has_a_clear_value():
    empty = np.zeros((5, 5, 5), bool)
    full = np.zeros((5, 5, 5), bool)
    full[2, 2, 2] = True
    assert normalized_surface_dice(empty, empty, (1, 1, 1)) == 1.0
    assert normalized_surface_dice(full, empty, (1, 1, 1)) == 0.0
    assert normalized_surface_dice(empty, full, (1, 1, 1)) == 0.0


def test_curve_auc():
    assert curve_auc([1.0, 1.0, 1.0]) == 1.0
    assert curve_auc([0.0, 1.0]) == 0.5
    assert curve_auc([0.4]) == 0.4


# Groups, macro mean, default method
def _row(group, dice, case="c"):
    return {"case": case, "group": group, "method": "m", "dice": dice, "nsd": dice, "clicks": [1] * len(dice),
            "seconds": [0.1] * len(dice)}


def test_macro_mean_weighs_groups_equally():
    rows = [_row("big", [1.0, 1.0], f"b{i}") for i in range(9)] + [_row("small", [0.0, 0.5])]
    summary = summarize(rows)["m"]
    assert summary["mean_dice"] == [0.9, 0.95]                 # per case: the big group dominates
    assert summary["macro_dice"] == [0.5, 0.75]                # per group: each weighs the same
    assert summary["by_group"]["small"]["mean_dice"] == [0.0, 0.5]
    assert summary["by_group"]["big"]["cases"] == 9
    assert set(summary["by_group"]["big"]) == set(summary) - {"by_group", "macro_dice", "macro_nsd",
                                                              "macro_auc_dice"}
    assert summary["macro_nsd"] == [0.5, 0.75]


def test_default_method_is_the_apps_pipeline():
    from SliceAndConquerLib.pipelines import best_pipeline

    assert resolve_methods(["default", "fbs-oracle"]) == [best_pipeline()[0], "fbs-oracle"]


def test_manifest_groups_unknown_keys_and_selection(tmp_path):
    (tmp_path / "i.nii.gz").touch()
    (tmp_path / "l.nii.gz").touch()
    cases = [{"name": "ts-ct/seg/1", "image": tmp_path / "i.nii.gz", "label": tmp_path / "l.nii.gz", "value": 1,
              "group": "ct-organ"},
             {"name": "nuclei/mask/2", "image": tmp_path / "i.nii.gz", "label": tmp_path / "l.nii.gz", "value": 2}]
    path = write_manifest(tmp_path / "m.json", cases)
    data = json.loads(path.read_text())
    data["cases"][0]["comment"] = "an unknown key"
    data["producer"] = "someone else"
    path.write_text(json.dumps(data))
    read = read_manifest(path)
    assert [c.group for c in read] == ["ct-organ", "nuclei"]    # default: the case's source
    assert [c.value for c in select_groups(read, ["nuclei"])] == [2]
    with pytest.raises(InputError, match="group brain-region has no target"):
        select_groups(read, ["brain-region"])


def test_a_label_emptied_by_thick_slices_is_dropped_with_a_warning(tmp_path, capsys):
    from SliceAndConquerLib.data.fetch import _thick_cases

    labels = np.zeros((30, 20, 20), np.uint8)
    labels[3:27, 5:15, 5:15] = 1
    labels[14, 8:10, 8:10] = 2                       # one voxel thick: gone in 5 mm slabs
    image = sitk.GetImageFromArray(labels)
    path = tmp_path / "seg.nii.gz"
    sitk.WriteImage(thick_image(image, 0, 5.0, labels=True), str(path))
    cases = _thick_cases("x-thick", tmp_path / "img.nii.gz", path, [1, 2])
    assert [c["value"] for c in cases] == [1]
    assert all(c["group"] == "thick-slice" for c in cases)
    assert "label 2" in capsys.readouterr().err


def test_evaluations_of_parts_merge_into_one(tmp_path):
    from SliceAndConquerLib.cli import main
    from SliceAndConquerLib.evaluation.harness import merge_reports

    settings = {"manifest": "val.json", "slices": 2, "max_clicks": 5, "seed": 0, "init_mask": None,
                "perfect_slices": False, "methods": ["m"]}
    big = [_row("big", [1.0, 1.0], f"b{i}") for i in range(3)]
    small = [_row("small", [0.0, 0.5])]
    parts = [{"settings": dict(settings, groups=["big"]), "results": big},
             {"settings": dict(settings, groups=["small"]), "results": small}]
    merged = merge_reports(parts)
    assert merged["summary"] == summarize(big + small)
    assert merged["settings"]["groups"] == ["big", "small"] and merged["settings"]["cases"] == 4
    with pytest.raises(InputError, match="differ in seed"):
        merge_reports([parts[0], {"settings": dict(settings, seed=1), "results": small}])
    with pytest.raises(InputError, match="more than one"):
        merge_reports([parts[0], parts[0]])
    for i, part in enumerate(parts):
        (tmp_path / f"p{i}.json").write_text(json.dumps(part))
    out = tmp_path / "all.json"
    assert main(["merge", str(tmp_path / "p0.json"), str(tmp_path / "p1.json"), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["summary"]["m"]["macro_dice"] == [0.5, 0.75]
    assert main(["merge", str(tmp_path / "nothing.json"), "--out", str(out)]) == 2
