"""The `snc` command line: one-line errors with exit code 2, and the end-to-end evaluation."""
import json
import os
import subprocess
import sys

import numpy as np

from SliceAndConquerLib.cli import main


def test_bad_manifest_gives_one_line_error(tmp_path, capsys):
    assert main(["evaluate", "--manifest", str(tmp_path / "none.json"), "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.json" in err[0] and "not found" in err[0]
    assert not (tmp_path / "r.json").exists()


def test_unknown_method_is_refused(tmp_path, capsys, manifests):
    code = main(["evaluate", "--manifest", str(manifests["sample"]), "--out", str(tmp_path / "r.json"),
                 "--methods", "magic"])
    assert code == 2 and "unknown method" in capsys.readouterr().err


def test_unreachable_registry_gives_exit_code_2(tmp_path):
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(tmp_path), PIP_EXTRA_INDEX_URL="")
    result = subprocess.run([sys.executable, "-m", "SliceAndConquerLib", "data", "fetch", "--cache",
                             str(tmp_path / "cache")], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("snc: error")]
    assert len(errors) == 1 and "totalsegmentator" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cache" / "train.json").exists()


def test_manifests_split_by_subject(manifests):
    train = json.loads(manifests["train"].read_text())["cases"]
    val = json.loads(manifests["val"].read_text())["cases"]
    subject = lambda c: c["image"]  # noqa: E731 -- one image file per subject here
    assert train and val and not {subject(c) for c in train} & {subject(c) for c in val}
    assert {c["name"].split("/")[0] for c in val} <= {"ts-ct", "ts-ct-thick", "ts-ct-lesion", "tg119", "colin27",
                                                     "colin27-thick", "colin27-lesion"}
    sample = json.loads(manifests["sample"].read_text())["cases"]
    assert len(sample) == 1


def test_validation_manifest_has_every_group(manifests):
    from collections import Counter

    from SliceAndConquerLib.data.fetch import VAL_GROUPS

    val = json.loads(manifests["val"].read_text())["cases"]
    counts = Counter(c["group"] for c in val)
    assert set(counts) == set(VAL_GROUPS)
    assert all(n >= 10 for g, n in counts.items() if g != "phantom-concave") and counts["phantom-concave"] == 2
    quick = json.loads(manifests["val-quick"].read_text())["cases"]
    assert Counter(c["group"] for c in quick) == {g: min(3, counts[g]) for g in VAL_GROUPS}
    assert all(c in val for c in quick)



def test_evaluate_end_to_end_on_the_sample(tmp_path, manifests):
    out = tmp_path / "r.json"
    code = main(["evaluate", "--manifest", str(manifests["sample"]), "--out", str(out), "--slices", "3",
                 "--methods", "fbs-oracle,nearest-oracle,growcut,grabcut-fbs"])
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report["summary"]) == {"fbs-oracle", "nearest-oracle", "growcut", "grabcut-fbs"}
    for row in report["results"]:
        assert len(row["dice"]) == len(row["nsd"]) == len(row["clicks"]) == len(row["seconds"]) == 3
        assert all(0.0 <= d <= 1.0 for d in row["dice"] + row["nsd"])
    summary = report["summary"]["fbs-oracle"]
    assert summary["by_group"]["ts-ct-sm"]["mean_dice"] == summary["mean_dice"] == summary["macro_dice"]
    oracle = report["summary"]["fbs-oracle"]["mean_dice"]
    assert oracle[-1] > 0.7 and oracle[-1] >= oracle[0]
    assert report["summary"]["growcut"]["mean_clicks"] >= 1
    assert out.with_suffix(".png").stat().st_size > 1000 and "| fbs-oracle |" in out.with_suffix(".md").read_text()


def test_segment_replays_an_interaction_and_keeps_geometry(tmp_path, manifests):
    import SimpleITK as sitk

    case = json.loads(manifests["sample"].read_text())["cases"][0]
    image = (manifests["sample"].parent / case["image"]).resolve()
    clicks = tmp_path / "clicks.json"
    clicks.write_text(json.dumps({"slices": [{"plane": [0, 10], "clicks": [[60, 90, True]]}]}))
    out = tmp_path / "mask.nii.gz"
    assert main(["segment", str(image), "--clicks", str(clicks), "--out", str(out)]) == 0
    written, reference = sitk.ReadImage(str(out)), sitk.ReadImage(str(image))
    assert written.GetSize() == reference.GetSize()
    assert written.GetSpacing() == reference.GetSpacing() and written.GetOrigin() == reference.GetOrigin()
    bad = tmp_path / "bad.json"
    bad.write_text('{"slices": [{"plane": [0]}]}')
    assert main(["segment", str(image), "--clicks", str(bad), "--out", str(tmp_path / "x.nii.gz")]) == 2
    assert not (tmp_path / "x.nii.gz").exists()


def test_refinement_protocol_starts_from_a_degraded_mask_with_a_click_budget(tmp_path, manifests):
    from SliceAndConquerLib.evaluation.harness import degrade

    out = tmp_path / "refine.json"
    assert main(["evaluate", "--manifest", str(manifests["sample"]), "--out", str(out),
                 "--methods", "grabcut-fbs", "--init-mask", "degraded"]) == 0
    report = json.loads(out.read_text())
    row = report["results"][0]
    assert 0 < row["initial_dice"] < 1 and max(row["clicks"]) <= 10
    assert report["settings"]["click_budget"] == 10
    truth = np.zeros((20, 20, 20), bool)
    truth[5:15, 5:15, 5:15] = True
    assert np.array_equal(degrade(truth, 3), degrade(truth, 3)) and not np.array_equal(degrade(truth, 3), truth)


def test_perfect_slices_protocol_accepts_ground_truth_without_clicks(tmp_path, manifests):
    out = tmp_path / "perfect.json"
    assert main(["evaluate", "--manifest", str(manifests["sample"]), "--out", str(out),
                 "--methods", "grabcut-fbs", "--perfect-slices", "--slices", "3"]) == 0
    report = json.loads(out.read_text())
    row = report["results"][0]
    assert row["clicks"] == [0, 0, 0] and report["settings"]["perfect_slices"] is True
    assert row["dice"][-1] > row["dice"][0]  # more exact slices, better volume
    # The oracles have their own protocol: refused, not silently run.
    assert main(["evaluate", "--manifest", str(manifests["sample"]), "--out", str(tmp_path / "x.json"),
                 "--methods", "fbs-oracle", "--perfect-slices"]) == 2
