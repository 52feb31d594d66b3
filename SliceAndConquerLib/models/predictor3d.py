"""f3D as the session's 3D predictor: ROI, working grid, forward, paste back, confidence."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..session import Prediction3D, guidance_volumes
from ..shape_prior import BLEND_POWER, FALL_OFF_SCALE, prior_or_previous
from ..training.losses import LOGIT_NORM_TAU, logit_norm
from .f3d import F3D
from .roi import ROI, roi_for
from .weights import load_state, pick_device


def load_f3d(weights, device: str = "auto") -> "Network3D":
    saved = load_state(weights)
    model = F3D(**saved["config"].get("arch", {}))
    model.load_state_dict(saved["state_dict"])
    config = saved["config"]
    # the prior the model was trained with (blend power 2 and fall-off 1 before they were recorded)
    return Network3D(model, device, config.get("tau", LOGIT_NORM_TAU), config.get("prior_power", 2),
                     config.get("prior_fall_off", 1.0))


def to_grid(volume: torch.Tensor, grid, thin: bool = False) -> torch.Tensor:
    """[B, C, *roi] -> [B, C, *grid]. Thin structures (accepted planes, click disks) are max-pooled
    when shrinking, so a one-voxel plane is never averaged away."""
    if not thin:
        return F.interpolate(volume, size=tuple(grid), mode="trilinear", align_corners=False)
    upper = tuple(max(s, g) for s, g in zip(volume.shape[2:], grid))
    if upper != tuple(volume.shape[2:]):
        volume = F.interpolate(volume, size=upper, mode="nearest-exact")
    return F.adaptive_max_pool3d(volume, tuple(grid))


def roi_inputs(image, spacing, previous, accepted, roi: ROI, prior_power: float = BLEND_POWER,
               prior_fall_off: float = FALL_OFF_SCALE):
    """Network inputs on the working grid: image path [1, 2, *grid] and guidance [1, 4, *grid]."""
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))[None]  # noqa: E731
    prior = prior_or_previous(accepted, spacing, previous, roi.box, prior_power, prior_fall_off)  # M_{t-1}
    image_path = as_tensor(np.stack([image[roi.box], prior.astype(np.float32)]))
    guidance = as_tensor(guidance_volumes(accepted, image.shape, roi.box))
    return to_grid(image_path, roi.grid), to_grid(guidance, roi.grid, thin=True)


class Network3D:
    """Predictor3D backed by an F3D network."""
    name = "f3d"

    def __init__(self, model: F3D, device: str = "auto", tau: float = LOGIT_NORM_TAU,
                 prior_power: float = BLEND_POWER, prior_fall_off: float = FALL_OFF_SCALE):
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.tau = tau  # LogitNorm temperature of training: confidence is calibrated on logit_norm(logits)
        self.prior_power, self.prior_fall_off = prior_power, prior_fall_off

    @torch.inference_mode()
    def foreground(self, image, spacing, previous, accepted, roi: ROI) -> np.ndarray:
        """Foreground probability on the ROI at the volume's resolution."""
        image_path, guidance = roi_inputs(image, spacing, previous, accepted, roi, self.prior_power,
                                          self.prior_fall_off)
        logits, _ = self.model(image_path.to(self.device), guidance.to(self.device))
        probability = torch.softmax(logit_norm(logits.float(), self.tau), dim=1)[:, 1:]
        return F.interpolate(probability.cpu(), size=roi.shape, mode="trilinear", align_corners=False)[0, 0].numpy()

    def predict(self, image, spacing, previous, accepted) -> Prediction3D:
        roi = roi_for(image.shape, spacing, previous, accepted)
        if roi is None:
            return Prediction3D(np.zeros(image.shape, bool), None)
        probability = self.foreground(image, spacing, previous, accepted, roi)
        mask = previous.copy()
        mask[roi.box] = probability > 0.5
        # Outside the ROI nothing was predicted: counted as confident, so never recommended.
        confidence = np.ones(image.shape, np.float16)
        confidence[roi.box] = np.maximum(probability, 1 - probability)
        return Prediction3D(mask, confidence)
