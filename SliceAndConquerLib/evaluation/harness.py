"""`snc evaluate`: every method on every case of a manifest with the robot user, one JSON out."""
from __future__ import annotations

import statistics
from functools import lru_cache

import numpy as np
from tqdm import tqdm

from ..data.manifest import read_manifest
from ..imageio import read_label, read_volume
from ..metrics import dice
from ..pipelines import PIPELINES
from .baselines import run_baseline
from .robot import run_robot

BASELINES = ("fbs-oracle", "nearest-oracle", "growcut", "fbs-f2d")


def available_methods() -> list[str]:
    from ..models.weights import shipped

    baselines = [b for b in BASELINES if b != "fbs-f2d" or shipped("f2d")]
    return baselines + list(PIPELINES)


REFINE_BUDGET = 10  # clicks in the refinement protocol (Table 3)


def degrade(truth: np.ndarray, seed: int) -> np.ndarray:
    """A reproducibly degraded ground truth standing in for an existing automatic result: shifted by
    up to 2 voxels per axis, eroded or dilated by 1-2 voxels, with 3 spherical holes of radius 3."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    mask = ndimage.shift(truth, rng.integers(-2, 3, size=3), order=0)
    steps = int(rng.integers(1, 3))
    mask = ndimage.binary_erosion(mask, iterations=steps) if rng.random() < 0.5 else \
        ndimage.binary_dilation(mask, iterations=steps)
    inside = np.argwhere(mask)
    grid = np.ogrid[tuple(slice(0, n) for n in mask.shape)]
    for centre in inside[rng.integers(len(inside), size=3)] if len(inside) else []:
        mask &= sum((g - c) ** 2 for g, c in zip(grid, centre)) > 9
    return mask


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
        return {"dice": run.dice, "clicks": run.clicks, "seconds": run.seconds, **start}
    if method in BASELINES:
        return run_baseline(method, image, truth, spacing, slices, max_clicks)
    session = PIPELINES[method][0](image, spacing)
    run = run_robot(session, truth, iterations=slices, max_clicks=max_clicks, seed=seed,
                    perfect_slices=perfect_slices)
    return {"dice": run.dice, "clicks": run.clicks, "seconds": run.seconds}


def summarize(results: list[dict]) -> dict:
    summary = {}
    for method in dict.fromkeys(r["method"] for r in results):
        rows = [r for r in results if r["method"] == method]
        length = max(len(r["dice"]) for r in rows)
        # A run that stopped early (nothing left to recommend) keeps its last DSC.
        padded = np.array([r["dice"] + r["dice"][-1:] * (length - len(r["dice"])) for r in rows])
        summary[method] = {
            "mean_dice": [round(float(v), 4) for v in padded.mean(axis=0)],
            "mean_clicks": round(float(np.mean([r["clicks"][-1] for r in rows])), 2),
            "median_seconds": round(float(statistics.median(s for r in rows for s in r["seconds"])), 4),
            "cases": len(rows),
        }
        if all("initial_dice" in r for r in rows):
            summary[method]["mean_initial_dice"] = round(float(np.mean([r["initial_dice"] for r in rows])), 4)
    return summary


def evaluate(manifest, methods, slices=6, max_clicks=5, seed=0, limit=None, progress=True,
             init_mask=None, perfect_slices=False) -> dict:
    unknown = [m for m in methods if m not in available_methods()]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(available_methods())}")
    cases = read_manifest(manifest)[:limit]
    load_image = lru_cache(maxsize=2)(read_volume)  # many targets share one image
    results = []
    with tqdm(total=len(cases) * len(methods), disable=not progress, desc="evaluate", unit="run") as bar:
        for case in cases:
            volume = load_image(case.image)
            truth = read_label(case.label, case.value, reference=volume)
            for method in methods:
                bar.set_postfix_str(f"{case.name} {method}")
                out = run_method(method, volume.array, truth, volume.spacing, slices, max_clicks, seed,
                                 init_mask, perfect_slices)
                row = {"case": case.name, "method": method, "dice": [round(d, 5) for d in out["dice"]],
                       "clicks": out["clicks"], "seconds": [round(s, 4) for s in out["seconds"]]}
                if "initial_dice" in out:
                    row["initial_dice"] = round(out["initial_dice"], 5)
                results.append(row)
                bar.update()
    settings = {"manifest": str(manifest), "methods": list(methods), "slices": slices,
                "max_clicks": max_clicks, "seed": seed, "cases": len(cases), "init_mask": init_mask,
                "perfect_slices": perfect_slices}
    if init_mask == "degraded":
        settings["click_budget"] = REFINE_BUDGET
    return {"settings": settings, "results": results, "summary": summarize(results)}
