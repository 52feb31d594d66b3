"""Clicks on a 2D slice and their disk encoding (RITM-style), plus the robot's click rule."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

DISK_RADIUS = 5  # pixels at the network's input resolution (paper Sec. 4.1)


@dataclass(frozen=True)
class Click:
    row: int
    col: int
    positive: bool


def disk_maps(clicks, shape, radius: float = DISK_RADIUS) -> np.ndarray:
    """float32 [2, H, W]: channel 0 the union of disks around positive clicks, channel 1 negative."""
    maps = np.zeros((2,) + tuple(shape), dtype=np.float32)
    if not clicks:
        return maps
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    for click in clicks:
        disk = (rows - click.row) ** 2 + (cols - click.col) ** 2 <= radius ** 2
        maps[0 if click.positive else 1][disk] = 1.0
    return maps


def interior_depth(region: np.ndarray) -> np.ndarray:
    """Pixels to the region's border, the image border counting as border (a click's 'most interior
    point' is where this is largest)."""
    return ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]


def next_click(prediction: np.ndarray, truth: np.ndarray) -> Click | None:
    """The robot user's click (Sec. 4.4): at the most interior point of the largest error region,
    positive on a miss, negative on a false alarm. The image border counts as region border.
    None when there is no error."""
    best = None
    for positive, error in ((True, truth & ~prediction), (False, prediction & ~truth)):
        labels, count = ndimage.label(error)
        if count == 0:
            continue
        sizes = np.bincount(labels.ravel())[1:]
        region = labels == (np.argmax(sizes) + 1)
        if best is None or sizes.max() > best[0]:
            best = (sizes.max(), positive, region)
    if best is None:
        return None
    _, positive, region = best
    distance = interior_depth(region)
    row, col = np.unravel_index(np.argmax(distance), distance.shape)
    return Click(int(row), int(col), positive)
