"""The auto-zoom window of f2D: which square of the slice the network sees, and the mapping between
slice pixels and network pixels.

Rule (the same in the app, the benchmark and training):
- With nothing yet (no previous mask, first click): a square of FIRST_WINDOW_FRACTION of the slice's
  larger physical side, centred on the click.
- Otherwise: the bounding box of the previous mask and every positive click, made square in
  millimetres, enlarged by CONTEXT (each side) and at least MIN_WINDOW_PX pixels wide. A positive click
  far from the current mask therefore widens the window to take in both.
- After a prediction touches the window border (and the border is not the slice's own), the window
  grows by GROW and the click is predicted again, at most MAX_GROWS times.
Windows are square in millimetres so thick-slice CT/MR shapes keep their proportions in the network.

The first-click fraction was chosen on the training manifest's slices (the largest-area slice of each
target on each axis, one robot click, the f2D weights shipped then): mean DSC 0.614 / 0.632 / 0.631 /
0.625 / 0.613 at 0.48 / 0.56 / 0.64 / 0.72 / 0.8 of the slice, 0.58 at 0.4. An earlier rule also grew
the window when the first click's mask covered under 2% of it (meant for a target filling the whole
window), but that fired on every small target and cost more than it saved (0.58 against 0.63 at 0.64).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FIRST_WINDOW_FRACTION = 0.6
CONTEXT = 0.4
MIN_WINDOW_PX = 40
GROW = 1.6
MAX_GROWS = 2


@dataclass(frozen=True)
class Window:
    """A square in millimetres: centre (row, col) in continuous slice coordinates (pixel i spans
    [i, i + 1), so its centre is i + 0.5), side in mm, and the slice's pixel spacing."""
    centre: tuple
    side_mm: float
    spacing: tuple

    @property
    def size_px(self) -> tuple:
        return tuple(self.side_mm / s for s in self.spacing)

    @property
    def origin(self) -> tuple:
        """Slice coordinates of the window's top-left corner (may be negative)."""
        return tuple(c - n / 2 for c, n in zip(self.centre, self.size_px))

    def grown(self, factor: float = GROW) -> "Window":
        return Window(self.centre, self.side_mm * factor, self.spacing)

    def covers_slice(self, shape) -> bool:
        top, left = self.origin
        rows, cols = self.size_px
        return top <= 0 and left <= 0 and top + rows >= shape[0] and left + cols >= shape[1]

    def to_net(self, row, col, size: int):
        """Slice pixel -> network pixel."""
        top, left = self.origin
        rows, cols = self.size_px
        return (row + 0.5 - top) * size / rows - 0.5, (col + 0.5 - left) * size / cols - 0.5

    def _affine(self, size: int) -> np.ndarray:
        """2x3 matrix mapping network pixel (x=col, y=row) to slice pixel (x, y), for cv2.warpAffine."""
        top, left = self.origin
        rows, cols = self.size_px
        sx, sy = cols / size, rows / size
        return np.array([[sx, 0, left + 0.5 * sx - 0.5], [0, sy, top + 0.5 * sy - 0.5]], np.float64)

    def crop(self, image: np.ndarray, size: int, order: int = 1) -> np.ndarray:
        """The window resampled to size x size (outside the slice: 0)."""
        flags = (cv2.INTER_LINEAR if order else cv2.INTER_NEAREST) | cv2.WARP_INVERSE_MAP
        return cv2.warpAffine(np.ascontiguousarray(image, np.float32), self._affine(size), (size, size),
                              flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def paste(self, net_map: np.ndarray, shape, fill: np.ndarray) -> np.ndarray:
        """A network-resolution map resampled back onto the slice; `fill` outside the window."""
        size = net_map.shape[0]
        back = cv2.warpAffine(np.ascontiguousarray(net_map, np.float32), self._affine(size),
                              (shape[1], shape[0]), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
        return np.where(np.isnan(back), fill, back)


def first_window(click_row, click_col, shape, spacing) -> Window:
    side = FIRST_WINDOW_FRACTION * max(n * s for n, s in zip(shape, spacing))
    side = max(side, MIN_WINDOW_PX * max(spacing))
    return Window((click_row + 0.5, click_col + 0.5), side, tuple(spacing))


def fitted_window(support: np.ndarray, clicks, spacing) -> Window:
    """The bounding box of `support` and every positive click, square in mm, enlarged by CONTEXT
    each side, at least MIN_WINDOW_PX pixels wide."""
    support = support.copy()
    for c in clicks:
        if c.positive:
            support[c.row, c.col] = True
    rows, cols = np.nonzero(support)
    lo = np.array([rows.min(), cols.min()], float)
    hi = np.array([rows.max() + 1, cols.max() + 1], float)
    extent_mm = max((hi - lo) * np.asarray(spacing))
    side = max(extent_mm * (1 + 2 * CONTEXT), MIN_WINDOW_PX * max(spacing))
    return Window(tuple((lo + hi) / 2), side, tuple(spacing))


def window_for(previous: np.ndarray, clicks, spacing) -> Window:
    """The window for the next prediction (see the module docstring)."""
    if not previous.any() and not any(c.positive for c in clicks):
        if not clicks:
            raise ValueError("a window needs a previous mask or a click")
        return first_window(clicks[-1].row, clicks[-1].col, previous.shape, spacing)
    window = fitted_window(previous, clicks, spacing)
    if not previous.any():  # nothing segmented yet: at least the first-click window
        side = max(window.side_mm, first_window(0, 0, previous.shape, spacing).side_mm)
        window = Window(window.centre, side, window.spacing)
    return window


def touches_border(mask_net: np.ndarray, window: Window, shape) -> bool:
    """Whether the predicted mask reaches a window edge that lies inside the slice."""
    if window.covers_slice(shape):
        return False
    edges = (mask_net[0].any(), mask_net[-1].any(), mask_net[:, 0].any(), mask_net[:, -1].any())
    top, left = window.origin
    rows, cols = window.size_px
    inside = (top > 0, top + rows < shape[0], left > 0, left + cols < shape[1])
    return any(e and i for e, i in zip(edges, inside))
