"""`snc benchmark f2d`: the click model on the largest-area slice of every target on each axis.

The robot clicks as in the evaluation (largest error region, most interior point) for max_clicks
clicks; the network's window comes from the clicks and masks alone, exactly as in the app. IoU and DSC
are measured at the slice's native resolution after every click. The classical baseline (OpenCV
GrabCut) gets the same protocol on the same slices."""
from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from tqdm import tqdm

from ..classic import GrabCut2D
from ..clicks import Click, next_click
from ..data.manifest import read_manifest, source_of
from ..imageio import read_label, read_volume
from ..intensity import normalize
from ..metrics import dice, iou
from .robot import largest_area_index


def click_curve(predictor, image2d, truth2d, spacing2d, max_clicks):
    """Per-click IoU and DSC of one slice."""
    clicks, mask, ious, dices = [], np.zeros(truth2d.shape, bool), [], []
    for _ in range(max_clicks):
        click = next_click(mask, truth2d)
        if click is None:  # perfect: the curve stays at 1
            ious.append(1.0)
            dices.append(1.0)
            continue
        clicks.append(click)
        mask = predictor.predict(image2d, mask, clicks, spacing2d)
        ious.append(iou(mask, truth2d))
        dices.append(dice(mask, truth2d))
    return ious, dices


def noc(ious, threshold, cap):
    """Clicks needed to reach IoU >= threshold (cap when never reached)."""
    return next((i + 1 for i, v in enumerate(ious) if v >= threshold), cap)


def summarize_curves(curves, max_clicks):
    ious = [c[0] for c in curves]
    dices = np.array([c[1] for c in curves])
    return {
        "noc85": round(float(np.mean([noc(c, 0.85, max_clicks) for c in ious])), 3),
        "noc90": round(float(np.mean([noc(c, 0.90, max_clicks) for c in ious])), 3),
        "fail_rate90": round(float(np.mean([max(c) < 0.90 for c in ious])), 4),
        "dice_at": {str(k): round(float(dices[:, k - 1].mean()), 4) for k in (1, 3, 5, 10, 20) if k <= max_clicks},
        "mean_dice_per_click": [round(float(v), 4) for v in dices.mean(axis=0)],
        "slices": len(curves),
    }


def latency_ms(predictor, size: int, repeats: int = 15) -> float:
    """Median time of one click on a size x size slice: window, crop, encoding, forward, paste."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    disk = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 6) ** 2
    image = (0.3 + 0.4 * disk + rng.normal(0, 0.05, disk.shape)).astype(np.float32)
    times = []
    for r in range(repeats + 2):
        start = time.perf_counter()
        mask = predictor.predict(image, np.zeros_like(disk), [Click(size // 2, size // 2, True)], (1.0, 1.0))
        predictor.predict(image, mask, [Click(size // 2, size // 2, True), Click(5, 5, False)], (1.0, 1.0))
        if r >= 2:  # warm-up first
            times.append((time.perf_counter() - start) / 2)
    return round(1000 * statistics.median(times), 2)


def _groups(manifest) -> dict:
    """Case name -> the manifest's optional "group" of that case."""
    import json
    from pathlib import Path

    try:
        return {c["name"]: c.get("group") for c in json.loads(Path(manifest).read_text())["cases"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def benchmark(manifest, predictor, max_clicks=20, limit=None, progress=True, device="cpu", baseline=True) -> dict:
    cases = read_manifest(manifest)[:limit]
    groups = _groups(manifest)
    details = []
    baseline = GrabCut2D() if baseline else None
    curves, sources = {"model": [], "baseline": []}, []
    image_cache = {}
    for case in tqdm(cases, desc="benchmark f2d", disable=not progress):
        if case.image not in image_cache:
            image_cache.clear()
            volume = read_volume(case.image)
            image_cache[case.image] = (volume, normalize(volume.array))
        volume, image = image_cache[case.image]
        truth = read_label(case.label, case.value, reference=volume)
        for axis in range(3):
            index = largest_area_index(truth, axis)
            take = lambda v: np.take(v, index, axis=axis)  # noqa: E731
            spacing2d = tuple(s for a, s in enumerate(volume.spacing) if a != axis)
            for key, method in (("model", predictor), ("baseline", baseline)):
                if method is None:
                    continue
                curves[key].append(click_curve(method, take(image), take(truth), spacing2d, max_clicks))
            sources.append(source_of(case.name))
            thick = max(spacing2d) >= 2 * min(spacing2d)
            details.append({"name": case.name, "axis": axis, "group": groups.get(case.name), "thick": thick,
                            "iou": [round(v, 4) for v in curves["model"][-1][0]],
                            "dice": [round(v, 4) for v in curves["model"][-1][1]]})
    result = summarize_curves(curves["model"], max_clicks)
    # Where the model is weak: per data source (e.g. CT organs against atlas regions).
    result["by_source"] = {}
    for source in sorted(set(sources)):
        part = summarize_curves([c for c, s in zip(curves["model"], sources) if s == source], max_clicks)
        result["by_source"][source] = {k: part[k] for k in ("noc90", "fail_rate90", "dice_at", "slices")}
    # Per validation group (the manifest's "group" key) and their macro mean, when the manifest has them.
    keep = ("noc90", "fail_rate90", "dice_at", "slices")
    named = sorted({d["group"] for d in details if d["group"]})
    if named:
        result["by_group"] = {}
        for group in named:
            part = summarize_curves([c for c, d in zip(curves["model"], details) if d["group"] == group], max_clicks)
            result["by_group"][group] = {k: part[k] for k in keep}
        parts = list(result["by_group"].values())
        result["macro"] = {"noc90": round(float(np.mean([p["noc90"] for p in parts])), 3),
                           "fail_rate90": round(float(np.mean([p["fail_rate90"] for p in parts])), 4),
                           "dice_at": {k: round(float(np.mean([p["dice_at"][k] for p in parts])), 4)
                                       for k in parts[0]["dice_at"]}}
    # Planes through a thick axis (pixels at least twice as long one way): their cost shown apart.
    thick = [c for c, d in zip(curves["model"], details) if d["thick"]]
    if thick:
        part = summarize_curves(thick, max_clicks)
        result["thick_planes"] = {k: part[k] for k in keep}
    result["per_slice"] = details
    result["latency_ms"] = {str(s): latency_ms(predictor, s) for s in (256, 512)}
    result["threads"] = torch.get_num_threads()
    result["device"] = device
    if baseline is not None:
        result["baseline"] = dict(summarize_curves(curves["baseline"], max_clicks), name=baseline.name,
                                  latency_ms={str(s): latency_ms(baseline, s) for s in (256, 512)})
    result["settings"] = {"manifest": str(manifest), "max_clicks": max_clicks, "cases": len(cases),
                          "model": getattr(predictor, "name", "?")}
    return result
