"""f2D as the session's 2D predictor: window, crop, encode clicks, run the network, paste back."""
from __future__ import annotations

import numpy as np
import torch

from ..clicks import DISK_RADIUS, Click, disk_maps
from .f2d import F2D, INPUT_SIZE
from .weights import load_state, pick_device
from .window import MAX_GROWS, Window, touches_border, window_for


def load_f2d(weights, device: str = "auto") -> "Network2D":
    saved = load_state(weights)
    model = F2D(**saved["config"].get("arch", {}))
    model.load_state_dict(saved["state_dict"])
    return Network2D(model, device)


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


class Network2D:
    """Predictor2D backed by an F2D network."""
    name = "f2d"

    def __init__(self, model: F2D, device: str = "auto", size: int = INPUT_SIZE):
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.size = size

    def probabilities(self, window: Window, image2d, previous, clicks) -> np.ndarray:
        return self.probabilities_batch([(window, image2d, previous, clicks)])[0]

    @torch.inference_mode()
    def probabilities_batch(self, items) -> np.ndarray:
        """Foreground probabilities [N, S, S] of (window, image2d, previous, clicks) items, one pass."""
        inputs = zip(*(net_inputs(*item, size=self.size) for item in items))
        image, previous, clicks = (torch.cat(parts).to(self.device) for parts in inputs)
        return torch.sigmoid(self.model(image, previous, clicks))[:, 0].float().cpu().numpy()

    def predict(self, image2d, previous, clicks, spacing2d):
        previous = np.asarray(previous, bool)
        window = window_for(previous, clicks, spacing2d)
        for attempt in range(MAX_GROWS + 1):
            prob = self.probabilities(window, image2d, previous, clicks)
            # Grow when the mask reaches the window's border: the target goes on beyond it.
            if attempt == MAX_GROWS or not touches_border(prob > 0.5, window, previous.shape):
                break
            window = window.grown()
        return window.paste(prob, previous.shape, fill=previous.astype(np.float32)) > 0.5
