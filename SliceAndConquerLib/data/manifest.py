"""Manifests: {"cases": [{"name", "image", "label", "value", "group"}]}, paths relative to the manifest
file. One case is one binary target: the voxels of `label` equal to `value`. `group` (optional; default:
the case's source) names the kind of target it stands for in per-group scores; other keys are ignored."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError


@dataclass(frozen=True)
class Case:
    name: str
    image: Path
    label: Path
    value: int
    group: str = ""

    def __post_init__(self):
        if not self.group:
            object.__setattr__(self, "group", source_of(self.name))

    def load(self):
        """(Volume, bool target) with the target checked against the image grid."""
        from ..imageio import read_label, read_volume

        volume = read_volume(self.image)
        return volume, read_label(self.label, self.value, reference=volume)


def source_of(case_name: str) -> str:
    """A case's data source: the first part of its name ("ts-dicom/example_seg_dicom/5" -> "ts-dicom")."""
    return case_name.split("/")[0]


def read_manifest(path) -> list[Case]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        entries = data["cases"]
        cases = [Case(str(c["name"]), (path.parent / c["image"]).resolve(), (path.parent / c["label"]).resolve(),
                      int(c["value"]), str(c.get("group") or "")) for c in entries]
    except FileNotFoundError:
        raise InputError(f"{path}: manifest not found (run `snc data fetch` first?)") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a valid manifest ({type(exc).__name__}: {exc})") from None
    if not cases:
        raise InputError(f"{path}: manifest lists no cases")
    return cases


def select_groups(cases: list[Case], groups) -> list[Case]:
    """The cases of the named groups (all cases when `groups` is empty); an unknown group is an error."""
    if not groups:
        return cases
    known = sorted({c.group for c in cases})
    missing = [g for g in groups if g not in known]
    if missing:
        raise InputError(f"group {', '.join(missing)} has no target in this manifest (groups: {', '.join(known)})")
    return [c for c in cases if c.group in groups]


def write_manifest(path, cases: list[dict]) -> Path:
    """Write entries whose image/label paths are absolute or relative to the manifest's folder."""
    path = Path(path)
    base = path.parent.resolve()
    rows = []
    for c in cases:
        rel = {key: str(Path(c[key]).resolve().relative_to(base)) for key in ("image", "label")}
        row = {"name": c["name"], **rel, "value": int(c["value"])}
        if c.get("group"):
            row["group"] = str(c["group"])
        rows.append(row)
    path.write_text(json.dumps({"cases": rows}, indent=1) + "\n")
    return path
