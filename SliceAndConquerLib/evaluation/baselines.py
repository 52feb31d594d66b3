"""Baselines of the evaluation: Slicer's own algorithms given the same (or more) user input.

- fbs-oracle: Fill between slices on k ground-truth slices of axis 0 at the centres of k equal bins
  of the target's extent (the extreme slices are avoided: the filter leaves gaps next to tiny ends).
- nearest-oracle: every slice between the outermost annotated ones copies the nearest annotated
  ground-truth slice.
- fbs-f2d: the robot with the shipped f2D on the same k slices, then Fill between slices (equal user
  effort, no f3D).
- growcut: Grow from seeds on the same k slices, the way a Slicer user works with it: on each slice
  the robot clicks against a 2D Grow from seeds, and the slice's final 2D result becomes seeds
  (foreground inside it, background outside a 2-pixel band), plus a background frame around the
  seeded region. Seeding the 3D filter with the clicks alone let it leak further with every slice.
"""
from __future__ import annotations

import time

import numpy as np
from scipy import ndimage

from ..clicks import Click
from ..geometry import bounding_box, drawing_axis
from ..metrics import dice, normalized_surface_dice
from .robot import MAX_CLICKS, click_until_good
from .slicer_filters import fill_between_slices, grow_from_seeds

SEED_RADIUS = 2          # voxels painted around each click as a hard seed
FRAME_FRACTION = 0.5     # background frame distance, as a fraction of the clicked region's size


def bin_centres(truth: np.ndarray, k: int, axis: int = 0) -> list[int]:
    """Indices of k slices at the centres of k equal bins of the target's extent along `axis`
    (every slice of the extent when k exceeds it)."""
    present = np.flatnonzero(truth.any(axis=tuple(a for a in range(3) if a != axis)))
    lo, hi = int(present[0]), int(present[-1])
    length = hi - lo + 1
    if k >= length:
        return list(range(lo, hi + 1))
    return sorted({lo + int((2 * b + 1) * length // (2 * k)) for b in range(k)})


def _on_slices(truth: np.ndarray, indices, axis: int = 0) -> np.ndarray:
    labelmap = np.zeros(truth.shape, np.uint8)
    take = [slice(None)] * 3
    take[axis] = list(indices)
    labelmap[tuple(take)] = truth[tuple(take)]
    return labelmap


def fbs_oracle(truth: np.ndarray, spacing, k: int) -> np.ndarray:
    return fill_between_slices(_on_slices(truth, bin_centres(truth, k)), spacing, axis=0)


def nearest_oracle(truth: np.ndarray, spacing, k: int) -> np.ndarray:
    indices = np.asarray(bin_centres(truth, k))
    result = np.zeros_like(truth, dtype=bool)
    for z in range(indices[0], indices[-1] + 1):
        result[z] = truth[indices[np.argmin(np.abs(indices - z))]]
    return result


def _paint(seeds: np.ndarray, clicks, radius: int = SEED_RADIUS):
    """Paint click disks into a 2D seed image: 1 foreground, 2 background."""
    rows, cols = np.ogrid[: seeds.shape[0], : seeds.shape[1]]
    for c in clicks:
        seeds[(rows - c.row) ** 2 + (cols - c.col) ** 2 <= radius ** 2] = 1 if c.positive else 2


def _frame(seeds: np.ndarray, spacing):
    """Mark everything outside a box around the foreground seeds, and the box's border, as background
    (in place). The box grows on every axis by FRAME_FRACTION of the seeds' largest physical size
    (at least 3 voxels), so one annotated slice still leaves room along the axis it cuts."""
    box = bounding_box(seeds == 1)
    if box is None:
        return
    size_mm = max((b.stop - b.start) * s for b, s in zip(box, spacing))
    margin = [max(3, int(round(FRAME_FRACTION * size_mm / s))) for s in spacing]
    outer = bounding_box(seeds == 1, margin=margin)
    frame = np.ones(seeds.shape, bool)
    frame[tuple(slice(b.start + 1, b.stop - 1) for b in outer)] = False
    inside = np.zeros(seeds.shape, bool)
    inside[outer] = True
    seeds[frame & inside & (seeds == 0)] = 2
    seeds[~inside] = 2


def growcut_slice(image2d: np.ndarray, clicks, spacing2d) -> np.ndarray:
    seeds = np.zeros(image2d.shape, np.uint8)
    _paint(seeds, clicks)
    if not (seeds == 1).any():
        return np.zeros(image2d.shape, bool)
    _frame(seeds, spacing2d)
    return grow_from_seeds(image2d[None], seeds[None], (1.0,) + tuple(spacing2d))[0]


def robot_growcut_slice(image2d, truth2d, spacing2d, max_clicks=MAX_CLICKS):
    """(clicks, 2D mask) of the robot on one slice against 2D Grow from seeds; stops as in the SnC
    protocol."""
    clicks: list[Click] = []

    def add(click, mask):
        clicks.append(click)
        return growcut_slice(image2d, clicks, spacing2d)

    return click_until_good(add, truth2d, np.zeros(truth2d.shape, bool), max_clicks)


def robot_mask_f2d(image2d, truth2d, spacing2d, max_clicks=MAX_CLICKS):
    """(clicks used, 2D mask) of the robot with the shipped f2D on one normalised slice, as in the SnC
    protocol."""
    from ..pipelines import _shipped_f2d

    predictor, clicks = _shipped_f2d("cpu"), []

    def add(click, mask):
        clicks.append(click)
        return predictor.predict(image2d, mask, clicks, spacing2d)

    used, mask = click_until_good(add, truth2d, np.zeros(truth2d.shape, bool), max_clicks)
    return len(used), mask


def growcut_3d(image: np.ndarray, spacing, slices: dict) -> np.ndarray:
    """3D Grow from seeds; `slices` maps an axis-0 index to its (clicks, 2D mask)."""
    seeds = np.zeros(image.shape, np.uint8)
    for z, (clicks, mask) in slices.items():
        seeds[z][~ndimage.binary_dilation(mask, iterations=2)] = 2
        seeds[z][ndimage.binary_erosion(mask)] = 1
        _paint(seeds[z], clicks)
    if not (seeds == 1).any():
        return np.zeros(image.shape, bool)
    _frame(seeds, spacing)
    box = bounding_box(seeds != 2, margin=1)
    result = np.zeros(image.shape, bool)
    result[box] = grow_from_seeds(image[box], seeds[box], spacing)
    return result


def run_baseline(method: str, image: np.ndarray, truth: np.ndarray, spacing, iterations: int,
                 max_clicks: int = MAX_CLICKS) -> dict:
    """Per-iteration DSC, NSD, cumulative clicks and seconds of one baseline on one target. The k
    slices lie on the axis a user draws on (axis 0, or a thick-slice scan's slice axis), which is
    moved to the front for the filters."""
    axis = drawing_axis(spacing)
    if axis:
        image, truth = np.moveaxis(image, axis, 0), np.moveaxis(truth, axis, 0)
        spacing = (spacing[axis],) + tuple(s for a, s in enumerate(spacing) if a != axis)
    out = {"dice": [], "nsd": [], "clicks": [], "seconds": []}
    clicks_cache: dict = {}
    if method == "fbs-f2d":  # f2D sees the volume normalised as in the session
        from ..intensity import normalize

        image = normalize(image)
    for k in range(1, iterations + 1):
        start = time.perf_counter()
        if method == "fbs-oracle":
            prediction, used = fbs_oracle(truth, spacing, k), 0
        elif method == "nearest-oracle":
            prediction, used = nearest_oracle(truth, spacing, k), 0
        elif method == "fbs-f2d":
            indices = bin_centres(truth, k)
            for z in indices:
                if z not in clicks_cache:
                    clicks_cache[z] = robot_mask_f2d(image[z], truth[z], spacing[1:], max_clicks)
            labelmap = np.zeros(truth.shape, np.uint8)
            for z in indices:
                labelmap[z] = clicks_cache[z][1]
            prediction = fill_between_slices(labelmap, spacing, axis=0)
            used = sum(clicks_cache[z][0] for z in indices)
        elif method == "growcut":
            indices = bin_centres(truth, k)
            for z in indices:
                if z not in clicks_cache:
                    clicks_cache[z] = robot_growcut_slice(image[z], truth[z], spacing[1:], max_clicks)
            chosen = {z: clicks_cache[z] for z in indices}
            prediction = growcut_3d(image, spacing, chosen)
            used = sum(len(clicks) for clicks, _ in chosen.values())
        else:
            raise ValueError(f"unknown baseline {method!r}")
        out["seconds"].append(time.perf_counter() - start)
        out["dice"].append(dice(prediction, truth))
        out["nsd"].append(normalized_surface_dice(prediction, truth, spacing))
        out["clicks"].append(int(used))
    return out
