"""Alignment of the 3D result to the accepted 2D masks (paper Eq. 3), with TV-L1 optical flow.

For an accepted mask M_n on plane (axis, y_n), the flow that carries the 3D result's slice onto M_n is
estimated with OpenCV's Dual TV-L1 solver; the slice y_n + k is then warped with that flow scaled by
alpha = max(1 - GAMMA |k|, 0), so the correction fades over the neighbouring 1/GAMMA - 1 slices.
Beyond the paper, the session then makes the accepted plane equal M_n exactly.
"""
from __future__ import annotations

import cv2
import numpy as np

from .geometry import bounding_box
from .session import Plane

GAMMA = 0.25        # the correction reaches 3 slices on each side
MARGIN = 8          # pixels of context around the two masks for the flow


def _flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Flow f with target(x) ~ source(x + f(x)), [H, W, 2] as (dx, dy)."""
    solver = cv2.optflow.DualTVL1OpticalFlow_create()
    return solver.calc(target.astype(np.float32), source.astype(np.float32), None)


def _warp(mask: np.ndarray, flow: np.ndarray) -> np.ndarray:
    rows, cols = np.mgrid[: mask.shape[0], : mask.shape[1]].astype(np.float32)
    warped = cv2.remap(mask.astype(np.float32), cols + flow[..., 0], rows + flow[..., 1],
                       interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return warped > 0.5


def align_to_accepted(mask3d: np.ndarray, accepted, gamma: float = GAMMA) -> np.ndarray:
    """A copy of `mask3d` with the slices around each accepted plane (whose `align` is set) warped
    towards its accepted mask. Slices farther than the reach of gamma are untouched."""
    out = mask3d.copy()
    reach = int(np.ceil(1 / gamma)) - 1 if gamma > 0 else 0
    for entry in accepted:
        if not entry.align:
            continue
        axis, index = entry.plane.axis, entry.plane.index
        current = np.take(out, index, axis=axis)
        box = bounding_box(current | entry.mask, margin=MARGIN)
        if box is None or np.array_equal(current[box], entry.mask[box]):
            continue
        flow = _flow(current[box], entry.mask[box])
        for k in range(-reach, reach + 1):
            alpha = max(1 - gamma * abs(k), 0.0)
            position = index + k
            if not 0 <= position < out.shape[axis] or alpha == 0:
                continue
            plane = out[Plane(axis, position).where]
            plane[box] = _warp(plane[box], alpha * flow)
    return out
