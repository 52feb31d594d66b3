"""f2D as the session's 2D predictor: window, crop, encode clicks, run the network, paste back.

First click on a slice (nothing segmented yet): coarse-to-fine ("zoom to the target"). The network
first sees the large first-click window (models/window.py: 60% of the slice), which finds a liver but
shrinks a 1 cm lesion to a few network pixels; the connected part of that coarse mask under the click
then gives a window fitted to it (the later-click rule: its bounding box plus context), in which the
same click is predicted again with an empty previous mask, the situation the network was trained on
for a window around its target. Only when that window is at most ZOOM_BELOW of the coarse one (a
small target); otherwise the coarse mask stands. When the coarse mask misses the click, the fitted window is the
smallest window (MIN_WINDOW_PX) around the click: a target too small to be seen at the coarse scale.
Later clicks keep the mask-fitted window (window_for). `first_click="fixed"` is the old single pass.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from ..clicks import DISK_RADIUS, Click, disk_maps
from .f2d import INPUT_SIZE
from .f2d_v2 import build_f2d
from .weights import load_state, pick_device
from .window import MAX_GROWS, MIN_WINDOW_PX, Window, fitted_window, touches_border, window_for

FIRST_CLICK_RULES = ("coarse-to-fine", "fixed")
# Zoom only when the fitted window is at most this fraction of the coarse one: the target then spans
# few network pixels at the coarse scale. A target of moderate size is left alone: without an edge in
# the image (an atlas region) the network has only the window's scale to go by, and a tighter window
# shrinks its guess (measured: brain regions DSC@1 0.57 -> 0.26 with an unconditional zoom, v1 weights).
ZOOM_BELOW = 0.5


def load_f2d(weights, device: str = "auto", first_click: str | None = None) -> "Network2D":
    """Shipped or trained f2D weights (v1 or v2, from the config saved with them). The first-click
    rule is the one stored with the weights unless given (weights from before it: "fixed")."""
    saved = load_state(weights)
    config = saved["config"]
    model = build_f2d(config.get("arch", {}))
    model.load_state_dict(saved["state_dict"])
    return Network2D(model, device, size=int(config.get("input_size", INPUT_SIZE)),
                     first_click=first_click or config.get("first_click", "fixed"))


def net_inputs(window: Window, image2d, previous, clicks, size: int = INPUT_SIZE):
    """Network inputs [1, 1, S, S], [1, 1, S, S], [1, 2, S, S] for one window of one slice."""
    image = window.crop(image2d, size)
    prev = window.crop(previous.astype(np.float32), size)
    net_clicks = []
    for c in clicks:
        row, col = window.to_net(c.row, c.col, size)
        if -DISK_RADIUS <= row < size + DISK_RADIUS and -DISK_RADIUS <= col < size + DISK_RADIUS:
            net_clicks.append(Click(int(round(row)), int(round(col)), c.positive))
    maps = disk_maps(net_clicks, (size, size))
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
    return as_tensor(image)[None, None], as_tensor(prev)[None, None], as_tensor(maps)[None]


def _component_at(mask: np.ndarray, click: Click) -> np.ndarray:
    """The connected part of `mask` under the click (empty when the click is outside the mask)."""
    if not mask[click.row, click.col]:
        return np.zeros_like(mask)
    labels, _ = ndimage.label(mask)
    return labels == labels[click.row, click.col]


class Network2D:
    """Predictor2D backed by an f2D network (F2D or F2DV2)."""
    name = "f2d"

    def __init__(self, model: torch.nn.Module, device: str = "auto", size: int = INPUT_SIZE,
                 first_click: str = "fixed"):
        if first_click not in FIRST_CLICK_RULES:
            raise ValueError(f"first_click {first_click!r}: one of {', '.join(FIRST_CLICK_RULES)}")
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.size = size
        self.first_click = first_click

    def probabilities(self, window: Window, image2d, previous, clicks) -> np.ndarray:
        return self.probabilities_batch([(window, image2d, previous, clicks)])[0]

    @torch.inference_mode()
    def probabilities_batch(self, items) -> np.ndarray:
        """Foreground probabilities [N, S, S] of (window, image2d, previous, clicks) items, one pass."""
        inputs = zip(*(net_inputs(*item, size=self.size) for item in items))
        image, previous, clicks = (torch.cat(parts).to(self.device) for parts in inputs)
        return torch.sigmoid(self.model(image, previous, clicks))[:, 0].float().cpu().numpy()

    def _predict_in(self, window, image2d, previous, clicks):
        for attempt in range(MAX_GROWS + 1):
            prob = self.probabilities(window, image2d, previous, clicks)
            # Grow when the mask reaches the window's border: the target goes on beyond it.
            if attempt == MAX_GROWS or not touches_border(prob > 0.5, window, previous.shape):
                break
            window = window.grown()
        return window.paste(prob, previous.shape, fill=previous.astype(np.float32)) > 0.5

    def predict(self, image2d, previous, clicks, spacing2d):
        previous = np.asarray(previous, bool)
        window = window_for(previous, clicks, spacing2d)
        mask = self._predict_in(window, image2d, previous, clicks)
        first = not previous.any() and len(clicks) == 1 and clicks[0].positive
        if self.first_click == "fixed" or not first:
            return mask
        coarse = _component_at(mask, clicks[0])
        if coarse.any():
            fine = fitted_window(coarse, clicks, spacing2d)
        else:
            fine = Window((clicks[0].row + 0.5, clicks[0].col + 0.5), MIN_WINDOW_PX * max(spacing2d),
                          tuple(spacing2d))
        if fine.side_mm > ZOOM_BELOW * window.side_mm:  # the coarse window was already about the right scale
            return mask
        return self._predict_in(fine, image2d, previous, clicks)
