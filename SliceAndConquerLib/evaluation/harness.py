"""`snc evaluate`: every method on every case of a manifest with the robot user, one JSON out."""
from __future__ import annotations

import statistics
import sys
from functools import lru_cache

import numpy as np
from tqdm import tqdm

from ..data.manifest import read_manifest, select_groups
from ..errors import InputError
from ..imageio import read_label, read_volume
from ..metrics import NSD_TOLERANCE_MM, curve_auc, dice
from ..pipelines import PIPELINES, best_pipeline
from .baselines import run_baseline
from .robot import run_robot

BASELINES = ("fbs-oracle", "nearest-oracle", "growcut", "fbs-f2d")


def available_methods() -> list[str]:
    from ..models.weights import shipped

    baselines = [b for b in BASELINES if b != "fbs-f2d" or shipped("f2d")]
    return baselines + list(PIPELINES)


def resolve_methods(methods) -> list[str]:
    """Method names with `default` replaced by the pipeline the app, the demo and `snc segment` use."""
    return list(dict.fromkeys(best_pipeline()[0] if m == "default" else m for m in methods))


REFINE_BUDGET = 10  # clicks in the refinement protocol (Table 3)


def degrade(truth: np.ndarray, seed: int) -> np.ndarray:
    """A reproducibly degraded ground truth standing in for an existing automatic result: shifted by
    up to 2 voxels per axis, eroded or dilated by 1-2 voxels, with 3 spherical holes of radius 3."""
    from scipy import ndimage

    from ..geometry import punch_holes

    rng = np.random.default_rng(seed)
    mask = ndimage.shift(truth, rng.integers(-2, 3, size=3), order=0)
    steps = int(rng.integers(1, 3))
    mask = ndimage.binary_erosion(mask, iterations=steps) if rng.random() < 0.5 else \
        ndimage.binary_dilation(mask, iterations=steps)
    inside = np.argwhere(mask)
    return punch_holes(mask, [(c, 3) for c in inside[rng.integers(len(inside), size=3)]] if len(inside) else [])


def run_method(method, image, truth, spacing, slices, max_clicks, seed, init_mask=None,
               perfect_slices=False) -> dict:
    if perfect_slices and (method in BASELINES or init_mask):
        raise ValueError(f"{method}: perfect slices apply to session pipelines from an empty mask only")
    if init_mask == "degraded":
        if method in BASELINES:
            raise ValueError(f"{method} cannot start from an existing mask")
        from .robot import largest_error_plane

        existing = degrade(truth, seed)
        session = PIPELINES[method][0](image, spacing, existing_mask=existing)
        run = run_robot(session, truth, iterations=REFINE_BUDGET, max_clicks=max_clicks, seed=seed,
                        first=largest_error_plane(existing, truth), click_budget=REFINE_BUDGET)
        start = {"initial_dice": dice(existing, truth)}
        return {"dice": run.dice, "nsd": run.nsd, "clicks": run.clicks, "seconds": run.seconds, **start}
    if method in BASELINES:
        return run_baseline(method, image, truth, spacing, slices, max_clicks)
    session = PIPELINES[method][0](image, spacing)
    run = run_robot(session, truth, iterations=slices, max_clicks=max_clicks, seed=seed,
                    perfect_slices=perfect_slices)
    return {"dice": run.dice, "nsd": run.nsd, "clicks": run.clicks, "seconds": run.seconds}


def _padded(rows, key) -> np.ndarray:
    """rows x iterations of rows[i][key]; a shorter curve (a run that stopped early: nothing left to
    recommend) keeps its last value."""
    length = max(len(r[key]) for r in rows)
    return np.array([r[key] + r[key][-1:] * (length - len(r[key])) for r in rows])


def _rounded(values) -> list:
    return [round(float(v), 4) for v in values]


def summarize_rows(rows: list[dict]) -> dict:
    """Means over the rows of one method: DSC and NSD per iteration, the area under the DSC curve,
    clicks, seconds."""
    dices, nsds = _padded(rows, "dice"), _padded(rows, "nsd")
    out = {
        "mean_dice": _rounded(dices.mean(axis=0)),
        "mean_nsd": _rounded(nsds.mean(axis=0)),
        "auc_dice": round(float(np.mean([curve_auc(d) for d in dices])), 4),
        "mean_clicks": round(float(np.mean([r["clicks"][-1] for r in rows])), 2),
        "median_seconds": round(float(statistics.median(s for r in rows for s in r["seconds"])), 4),
        "cases": len(rows),
    }
    if all("initial_dice" in r for r in rows):
        out["mean_initial_dice"] = round(float(np.mean([r["initial_dice"] for r in rows])), 4)
    return out


def summarize(results: list[dict]) -> dict:
    """Per method: the means over all cases, the same per group (`by_group`), and the macro means over
    groups, each group weighing the same (`macro_dice`, `macro_nsd`, `macro_auc_dice`)."""
    summary = {}
    for method in dict.fromkeys(r["method"] for r in results):
        rows = [r for r in results if r["method"] == method]
        summary[method] = summarize_rows(rows)
        groups = {g: summarize_rows([r for r in rows if r.get("group", "") == g])
                  for g in dict.fromkeys(r.get("group", "") for r in rows)}
        summary[method]["by_group"] = groups
        for key in ("dice", "nsd"):
            curves = _padded(list(groups.values()), f"mean_{key}")
            summary[method][f"macro_{key}"] = _rounded(curves.mean(axis=0))
        summary[method]["macro_auc_dice"] = round(float(np.mean([g["auc_dice"] for g in groups.values()])), 4)
    return summary


def _load(case, load_image):
    """(volume, truth) of a case, or None with a warning when it cannot be read."""
    try:
        volume = load_image(case.image)
        return volume, read_label(case.label, case.value, reference=volume)
    except InputError as exc:
        print(f"warning: skipping {case.name} ({case.group}): {exc}", file=sys.stderr)
        return None


def evaluate(manifest, methods, slices=6, max_clicks=5, seed=0, limit=None, progress=True,
             init_mask=None, perfect_slices=False, groups=None) -> dict:
    requested = list(methods)
    methods = resolve_methods(requested)
    unknown = [m for m in methods if m not in available_methods()]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; known: default, {', '.join(available_methods())}")
    cases = select_groups(read_manifest(manifest), groups)[:limit]
    load_image = lru_cache(maxsize=2)(read_volume)  # many targets share one image
    results, readable = [], set()
    with tqdm(total=len(cases) * len(methods), disable=not progress, desc="evaluate", unit="run") as bar:
        for case in cases:
            loaded = _load(case, load_image)
            if loaded is None:
                bar.update(len(methods))
                continue
            volume, truth = loaded
            readable.add(case.group)
            for method in methods:
                bar.set_postfix_str(f"{case.name} {method}")
                out = run_method(method, volume.array, truth, volume.spacing, slices, max_clicks, seed,
                                 init_mask, perfect_slices)
                row = {"case": case.name, "group": case.group, "method": method,
                       "dice": [round(d, 5) for d in out["dice"]], "nsd": [round(d, 5) for d in out["nsd"]],
                       "clicks": out["clicks"], "seconds": [round(s, 4) for s in out["seconds"]]}
                if "initial_dice" in out:
                    row["initial_dice"] = round(out["initial_dice"], 5)
                results.append(row)
                bar.update()
    unreadable = sorted({c.group for c in cases} - readable)
    if unreadable:
        raise InputError(f"group {', '.join(unreadable)}: no readable target (see the warnings above)")
    settings = {"manifest": str(manifest), "methods": list(methods), "requested": requested, "slices": slices,
                "max_clicks": max_clicks, "seed": seed, "cases": len(cases), "init_mask": init_mask,
                "perfect_slices": perfect_slices, "groups": sorted({c.group for c in cases}),
                "nsd_tolerance_mm": NSD_TOLERANCE_MM}
    if "default" in requested:
        settings["default"] = best_pipeline()[0]
    if init_mask == "degraded":
        settings["click_budget"] = REFINE_BUDGET
    return {"settings": settings, "results": results, "summary": summarize(results)}


def merge_reports(reports: list[dict]) -> dict:
    """One report from evaluations of disjoint parts of a manifest (e.g. one group each, run in
    parallel): results concatenated, summary recomputed; the parts must share their protocol."""
    protocol = ("manifest", "slices", "max_clicks", "seed", "init_mask", "perfect_slices")
    first = reports[0]["settings"]
    for report in reports[1:]:
        differing = [k for k in protocol if report["settings"].get(k) != first.get(k)]
        if differing:
            raise InputError(f"cannot merge evaluations that differ in {', '.join(differing)}")
    results = [r for report in reports for r in report["results"]]
    seen = set()
    for r in results:
        if (r["case"], r["method"]) in seen:
            raise InputError(f"{r['case']} ({r['method']}) is in more than one of the merged evaluations")
        seen.add((r["case"], r["method"]))
    settings = dict(first, methods=list(dict.fromkeys(m for rep in reports for m in rep["settings"]["methods"])),
                    cases=len({r["case"] for r in results}),
                    groups=sorted({g for rep in reports for g in rep["settings"].get("groups", [])}),
                    merged=len(reports))
    return {"settings": settings, "results": results, "summary": summarize(results)}
