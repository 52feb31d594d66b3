"""Synthetic lesions inserted into real volumes: compact, irregular, smooth blobs with texture, a
partial-volume border and a contrast from faint to strong against the tissue they sit in.

The validation lesions are made once by `insert_lesions(..., VALIDATION_LESIONS, seed=VALIDATION_SEED)`
on the validation subjects only; those settings and that seed are fixed and never tuned against.
Training may synthesise lesions with other settings, in training subjects only.

A lesion: a ball of radius R whose surface is pushed in and out by a smooth random field (relative
amplitude `irregularity`), given a soft occupancy (a logistic ramp of width `border_mm` across the
surface: the partial volume of a real scan), an intensity of the host tissue's mean shifted by
`contrast` x the host's standard deviation (darker or brighter), and a smooth multiplicative texture.
Its label is where the occupancy is at least one half. Hosts are label regions of the volume (organs,
brain regions); some lesions straddle a host's border (touching the neighbouring organ), and every
lesion lies inside the body mask.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..geometry import bounding_box


@dataclass(frozen=True)
class LesionSettings:
    diameter_mm: tuple = (8.0, 40.0)      # drawn log-uniformly
    irregularity: tuple = (0.10, 0.35)    # radial perturbation amplitude, a fraction of the radius
    contrast: tuple = (1.0, 8.0)          # |lesion - host| in host standard deviations, log-uniform
    min_contrast: float = 8.0             # ... and at least this many intensity units (HU on CT)
    darker: float = 0.6                   # share of lesions darker than their host
    texture: float = 0.25                 # texture amplitude relative to the contrast
    border_mm: tuple = (0.5, 2.0)         # width of the partial-volume ramp
    touching: float = 0.3                 # share of lesions centred on their host's border


VALIDATION_LESIONS = LesionSettings()
VALIDATION_SEED = 16


def _log_uniform(rng, low_high) -> float:
    low, high = low_high
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def body_mask(image: np.ndarray, threshold: float) -> np.ndarray:
    """The largest connected region above `threshold`, holes filled: the patient, not the air."""
    labels, count = ndimage.label(image > threshold)
    if count == 0:
        return np.zeros(image.shape, bool)
    largest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    return ndimage.binary_fill_holes(labels == largest)


def lesion_occupancy(shape, centre, radius_mm, spacing, irregularity, border_mm, rng) -> np.ndarray:
    """Soft occupancy in [0, 1] of one irregular blob on a grid of `shape` (voxel `spacing`, mm)."""
    spacing = np.asarray(spacing, float)
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    distance = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing)))
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32),
                                    sigma=tuple(radius_mm / 2.0 / s for s in spacing), mode="wrap")
    field /= max(float(field.std()), 1e-6)
    surface = radius_mm * (1.0 + irregularity * np.clip(field, -2.5, 2.5))
    occupancy = 1.0 / (1.0 + np.exp((distance - surface) / (border_mm / 4.0)))
    return np.where(occupancy > 0.01, occupancy, 0.0)   # the lesion's reach ends where the ramp does


def insert_lesions(image: np.ndarray, hosts: np.ndarray, body: np.ndarray, spacing, count: int,
                   settings: LesionSettings = VALIDATION_LESIONS, seed: int = VALIDATION_SEED,
                   max_tries: int = 200) -> tuple[np.ndarray, np.ndarray, list]:
    """(image with lesions, label map 1..n of the lesions, one dict per lesion) for `count` lesions in
    the label regions `hosts` (0 = none), inside `body`, never overlapping one another."""
    rng = np.random.default_rng(seed)
    spacing = np.asarray(spacing, float)
    out = np.asarray(image, np.float32).copy()
    labels = np.zeros(image.shape, np.uint16)
    taken = np.zeros(image.shape, bool)
    host_values, host_sizes = np.unique(hosts[hosts > 0], return_counts=True)
    voxel_mm3 = float(np.prod(spacing))
    lesions = []
    for _ in range(max_tries):
        if len(lesions) == count:
            break
        radius = _log_uniform(rng, settings.diameter_mm) / 2.0
        # A host must be much larger than the lesion, so that its statistics describe the tissue.
        volume = 4.0 / 3.0 * np.pi * radius ** 3 / voxel_mm3
        fitting = host_values[host_sizes > 8 * volume]
        if fitting.size == 0:
            continue
        host = int(rng.choice(fitting))
        region = hosts == host
        touching = rng.random() < settings.touching
        candidates = region & ~ndimage.binary_erosion(region) if touching else \
            ndimage.binary_erosion(region, iterations=max(1, int(radius / spacing.max())))
        where = np.argwhere(candidates)
        if len(where) == 0:
            continue
        centre = where[rng.integers(len(where))]
        margin = [int(np.ceil(1.6 * radius / s)) + 2 for s in spacing]
        point = np.zeros(image.shape, bool)
        point[tuple(centre)] = True
        box = bounding_box(point, margin=margin)
        local_centre = [c - b.start for c, b in zip(centre, box)]
        occupancy = lesion_occupancy(tuple(b.stop - b.start for b in box), local_centre, radius, spacing,
                                     rng.uniform(*settings.irregularity), rng.uniform(*settings.border_mm),
                                     rng)
        inside = occupancy >= 0.5
        # Whole lesion inside the body, with room for its soft border; no overlap with earlier ones.
        reach = occupancy > 0
        if not body[box][reach].all() or taken[box][reach].any() or inside.sum() < 4:
            continue
        tissue = out[region]
        mean, std = float(np.mean(tissue)), float(np.std(tissue))
        sign = -1.0 if rng.random() < settings.darker else 1.0
        delta = sign * max(_log_uniform(rng, settings.contrast) * std, settings.min_contrast)
        texture = ndimage.gaussian_filter(rng.standard_normal(occupancy.shape).astype(np.float32), 1.0)
        texture /= max(float(texture.std()), 1e-6)
        lesion_value = mean + delta * (1.0 + settings.texture * texture)
        patch = out[box]
        out[box] = (1.0 - occupancy) * patch + occupancy * lesion_value
        number = len(lesions) + 1
        labels[box][inside] = number
        taken[box] |= reach
        lesions.append({"value": number, "host": host, "diameter_mm": round(2 * radius, 1),
                        "contrast": round(delta, 1), "touching": bool(touching),
                        "centre": [int(c) for c in centre]})
    return out, labels, lesions
