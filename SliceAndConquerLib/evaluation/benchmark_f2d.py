"""`snc benchmark f2d`: the click model on the largest-area slice of every target on each axis.

The robot clicks as in the evaluation (largest error region, most interior point) for max_clicks
clicks; the network's window comes from the clicks and masks alone, exactly as in the app. IoU and DSC
are measured at the slice's native resolution after every click. The classical baseline (OpenCV
GrabCut) gets the same protocol on the same slices. Every figure is also given per group of the
manifest (`by_group`), as a macro mean over groups (`macro`, each group weighing the same), and for the
planes through a thick axis (`thick_planes`: the plane's pixels are THICK_RATIO times longer one way
than the other, a sagittal or coronal plane of a thick-slice scan), which f2D sees resampled to
millimetre-square pixels."""
from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from tqdm import tqdm

from ..classic import GrabCut2D
from ..clicks import Click, next_click
from ..data.manifest import read_manifest, select_groups, source_of
from ..geometry import THICK_RATIO
from ..imageio import read_label, read_volume
from ..intensity import normalize
from ..metrics import dice, iou
from .robot import largest_area_index


def click_curve(predictor, image2d, truth2d, spacing2d, max_clicks):
    """Per-click IoU and DSC of one slice, and the first click's mask area over the target's (below 1:
    the first guess is too small)."""
    clicks, mask, ious, dices, first_area = [], np.zeros(truth2d.shape, bool), [], [], None
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
        if first_area is None:
            first_area = float(mask.sum()) / max(int(truth2d.sum()), 1)
    return ious, dices, first_area


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
        "first_area_ratio": round(float(np.median([c[2] for c in curves])), 3),  # median over slices
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


SUMMARY_KEYS = ("noc85", "noc90", "fail_rate90", "dice_at", "first_area_ratio", "slices")


def _part(curves, tags, wanted, max_clicks) -> dict:
    part = summarize_curves([c for c, t in zip(curves, tags) if t == wanted], max_clicks)
    return {k: part[k] for k in SUMMARY_KEYS}


def macro_mean(parts: dict) -> dict:
    """The mean of per-group summaries, each group weighing the same."""
    parts = list(parts.values())
    out = {k: round(float(np.mean([p[k] for p in parts])), 4) for k in ("noc85", "noc90", "fail_rate90")}
    out["dice_at"] = {k: round(float(np.mean([p["dice_at"][k] for p in parts])), 4) for k in parts[0]["dice_at"]}
    out["groups"] = len(parts)
    return out


def benchmark(manifest, predictor, max_clicks=20, limit=None, progress=True, device="cpu", groups=None,
              baseline=True) -> dict:
    cases = select_groups(read_manifest(manifest), groups)[:limit]
    baseline = GrabCut2D() if baseline else None
    curves, sources, case_groups, thick, details = {"model": [], "baseline": []}, [], [], [], []
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
            case_groups.append(case.group)
            thick.append(max(spacing2d) >= THICK_RATIO * min(spacing2d))
            details.append({"name": case.name, "axis": axis, "group": case.group, "thick": thick[-1],
                            "iou": [round(v, 4) for v in curves["model"][-1][0]],
                            "dice": [round(v, 4) for v in curves["model"][-1][1]]})
    result = summarize_curves(curves["model"], max_clicks)
    # Where the model is weak: per group, per data source, and on planes through a thick axis.
    model = curves["model"]
    result["by_group"] = {g: _part(model, case_groups, g, max_clicks) for g in dict.fromkeys(case_groups)}
    result["macro"] = macro_mean(result["by_group"])
    result["by_source"] = {s: _part(model, sources, s, max_clicks) for s in sorted(set(sources))}
    result["thick_planes"] = _part(model, thick, True, max_clicks) if any(thick) else {"slices": 0}
    result["per_slice"] = details
    result["latency_ms"] = {str(s): latency_ms(predictor, s) for s in (256, 512)}
    result["threads"] = torch.get_num_threads()
    result["device"] = device
    if baseline is not None:
        base_groups = {g: _part(curves["baseline"], case_groups, g, max_clicks) for g in result["by_group"]}
        result["baseline"] = dict(summarize_curves(curves["baseline"], max_clicks), name=baseline.name,
                                  by_group=base_groups, macro=macro_mean(base_groups),
                                  latency_ms={str(s): latency_ms(baseline, s) for s in (256, 512)})
    result["settings"] = {"manifest": str(manifest), "max_clicks": max_clicks, "cases": len(cases),
                          "model": getattr(predictor, "name", "?")}
    return result
