"""f3D as the session's 3D predictor: ROI, working grid, forward, paste back, confidence."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..session import Prediction3D, guidance_volumes
from ..shape_prior import BLEND_POWER, FALL_OFF_SCALE, prior_or_previous
from ..training.losses import LOGIT_NORM_TAU, logit_norm
from .f3d import F3D, GUESS_LIMIT, ResidualF3D
from .roi import GRID, ROI, roi_for
from .weights import ModelFileError, load_state, pick_device, sha256


EMPTY_ACCEPT = "no accepted slice holds the target: nothing to segment in 3D yet"


def load_f3d(weights, device: str = "auto", f2d_weights=None):
    """The f3D predictor of a weight file: `ResidualNetwork3D` for f3D v2, `Network3D` for v1. With
    `f2d_weights`, an f3D trained on another f2D's masks (its config's `f2d_sha256`) is refused."""
    saved = load_state(weights)
    config = saved["config"]
    trained_with = config.get("f2d_sha256")
    if f2d_weights is not None and trained_with and trained_with != sha256(f2d_weights):
        raise ModelFileError(f"{weights}: this f3D was transferred from and trained with another f2D "
                             f"(sha256 {trained_with[:12]}...) than {f2d_weights} (sha256 "
                             f"{sha256(f2d_weights)[:12]}...); put back that f2D, or train f3D again "
                             f"with `snc train f3d --residual --init-2d {f2d_weights}`")
    arch = dict(config.get("arch", {}))
    residual = arch.pop("residual", False)
    model = (ResidualF3D if residual else F3D)(**arch)
    try:
        model.load_state_dict(saved["state_dict"])
    except RuntimeError as exc:  # shapes of another width or architecture
        raise ModelFileError(f"{weights}: weights do not fit the f3D its config describes ({arch}): "
                             f"{str(exc).splitlines()[0]}") from None
    if residual:
        tau = config.get("tau", LOGIT_NORM_TAU) if config.get("confidence", "logit-norm") == "logit-norm" else None
        return ResidualNetwork3D(model, device, tau)
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


def guess_logit(guess: np.ndarray, voxel_mm) -> np.ndarray:
    """The guess as a logit on its grid: signed distance to its surface in grid voxels (positive
    inside), clipped to +-GUESS_LIMIT; exactly as many positive voxels as the guess has."""
    from ..shape_prior import signed_distance

    if not guess.any():
        return np.full(guess.shape, -GUESS_LIMIT, np.float32)
    distance = signed_distance(guess, voxel_mm) / float(np.min(voxel_mm))
    return np.clip(distance, -GUESS_LIMIT, GUESS_LIMIT).astype(np.float32)


@dataclass
class ResidualInputs:
    """What f3D v2 sees of a session state, on its working grid, and the guess it corrects."""
    roi: ROI
    guess: np.ndarray          # bool, the whole volume: the non-learned 3D result
    image_path: torch.Tensor   # [1, 2, *grid]: I and the guess
    guidance: torch.Tensor     # [1, 4, *grid]
    guess_logit: torch.Tensor  # [1, 1, *grid]


def residual_inputs(image, spacing, previous, accepted, guesser=None, grid_size: int = GRID) -> ResidualInputs | None:
    """f3D v2's inputs for a state of the loop: the guess is `guesser`'s 3D result (the shape prior with
    intensity evidence by default, f2d-prior's 3D step), on the ROI of the accepted masks. None when no
    accepted plane holds target (nothing to correct)."""
    from ..classic import ShapePrior3D

    roi = roi_for(image.shape, spacing, None, accepted, grid_size)
    if roi is None:
        return None
    guess = (guesser or ShapePrior3D()).predict(image, spacing, previous, accepted).mask
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))[None]  # noqa: E731
    image_path = to_grid(as_tensor(np.stack([image[roi.box], guess[roi.box].astype(np.float32)])), roi.grid)
    guidance = to_grid(as_tensor(guidance_volumes(accepted, image.shape, roi.box)), roi.grid, thin=True)
    voxel_mm = np.asarray(roi.shape) * np.asarray(spacing) / np.asarray(roi.grid)
    logit = guess_logit(image_path[0, 1].numpy() > 0.5, voxel_mm)
    return ResidualInputs(roi, guess, image_path, guidance, torch.from_numpy(logit)[None, None])


class ResidualNetwork3D:
    """Predictor3D backed by f3D v2: the guess plus the learned residual, inside the ROI; the guess
    everywhere else. Before training (a zero head) it returns the guess voxel for voxel: the guess
    logit is rebuilt at the volume's resolution with the guess's own sign."""
    name = "f3d-v2"

    def __init__(self, model: ResidualF3D, device: str = "auto", tau: float | None = LOGIT_NORM_TAU, guesser=None):
        """tau: the LogitNorm temperature its confidence is calibrated at; None for a model trained
        without LogitNorm (cross-entropy), whose plain softmax is its confidence."""
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.tau = tau
        self.guesser = guesser

    @torch.inference_mode()
    def predict(self, image, spacing, previous, accepted) -> Prediction3D:
        inputs = residual_inputs(image, spacing, previous, accepted, self.guesser)
        if inputs is None:  # no accepted target: the shape prior's rule (keep the earlier result)
            return Prediction3D(np.array(previous, bool), None, EMPTY_ACCEPT)
        roi = inputs.roi
        residual, _ = self.model.residual(inputs.image_path.to(self.device), inputs.guidance.to(self.device))
        up = lambda t: F.interpolate(t.float().cpu(), size=roi.shape, mode="trilinear", align_corners=False)[0]  # noqa: E731
        residual = up(residual)
        guess = torch.from_numpy(inputs.guess[roi.box])
        # the guess logit at full resolution, its sign the guess's (interpolation blurs the surface)
        logit = up(inputs.guess_logit)[0]
        logit = torch.where(guess, logit.clamp_min(1e-3), logit.clamp_max(-1e-3))
        logits = residual + torch.stack([torch.zeros_like(logit), logit])
        calibrated = logits[None] if self.tau is None else logit_norm(logits[None], self.tau)
        probability = torch.softmax(calibrated, dim=1)[0, 1].numpy()
        mask = inputs.guess.copy()
        mask[roi.box] = logits[1].numpy() > logits[0].numpy()
        confidence = np.ones(image.shape, np.float16)  # outside the ROI: the guess, never recommended
        confidence[roi.box] = np.maximum(probability, 1 - probability)
        return Prediction3D(mask, confidence)
