"""f3D as the session's 3D predictor: ROI, working grid, forward, paste back, confidence."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..session import Prediction3D, guidance_volumes
from ..shape_prior import BLEND_POWER, FALL_OFF_SCALE, prior_or_previous
from ..training.losses import LOGIT_NORM_TAU, logit_norm
from .f3d import F3D, GUESS_LIMIT, ResidualF3D, build_f3d
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
    arch = config.get("arch", {})
    residual = arch.get("residual", False)
    try:
        model = build_f3d(arch)
    except (TypeError, ValueError) as exc:  # a config of another version
        raise ModelFileError(f"{weights}: its config describes no f3D this version knows ({arch}): {exc}") from None
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


def channels_to_grid(channels, grid, thin: bool = False) -> torch.Tensor:
    """Arrays of the ROI's shape (any dtype) -> [1, C, *grid] float32, one channel at a time: an ROI
    of a large CT has 10^7 voxels, so a float32 copy of all channels at once would cost ~0.3 GB."""
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))[None, None]  # noqa: E731
    return torch.cat([to_grid(as_tensor(channel), grid, thin) for channel in channels], 1)


def roi_inputs(image, spacing, previous, accepted, roi: ROI, prior_power: float = BLEND_POWER,
               prior_fall_off: float = FALL_OFF_SCALE):
    """Network inputs on the working grid: image path [1, 2, *grid] and guidance [1, 4, *grid]."""
    prior = prior_or_previous(accepted, spacing, previous, roi.box, prior_power, prior_fall_off)  # M_{t-1}
    return (channels_to_grid([image[roi.box], prior], roi.grid),
            channels_to_grid(guidance_volumes(accepted, image.shape, roi.box, np.uint8), roi.grid, thin=True))


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
        return Prediction3D(mask, np.maximum(probability, 1 - probability).astype(np.float16), box=roi.box)


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
    previous: torch.Tensor | None = None  # [1, 1, *grid]: the session's mask before this accept

    def image_input(self) -> torch.Tensor:
        """The image path, with the previous-mask channel when it was asked for."""
        return self.image_path if self.previous is None else torch.cat([self.image_path, self.previous], 1)


def residual_inputs(image, spacing, previous, accepted, guesser=None, grid_size: int = GRID,
                    with_previous: bool = True) -> ResidualInputs | None:
    """f3D v2's inputs for a state of the loop: the guess is `guesser`'s 3D result (the shape prior with
    intensity evidence by default, f2d-prior's 3D step), on the ROI of the accepted masks, and with
    `with_previous` the session's previous mask there. None when no accepted plane holds target
    (nothing to correct)."""
    from ..classic import ShapePrior3D

    roi = roi_for(image.shape, spacing, None, accepted, grid_size)
    if roi is None:
        return None
    guess = (guesser or ShapePrior3D()).predict(image, spacing, previous, accepted).mask
    image_path = channels_to_grid([image[roi.box], guess[roi.box]], roi.grid)
    guidance = channels_to_grid(guidance_volumes(accepted, image.shape, roi.box, np.uint8), roi.grid, thin=True)
    voxel_mm = np.asarray(roi.shape) * np.asarray(spacing) / np.asarray(roi.grid)
    logit = guess_logit(image_path[0, 1].numpy() > 0.5, voxel_mm)
    return ResidualInputs(roi, guess, image_path, guidance, torch.from_numpy(logit)[None, None],
                          channels_to_grid([previous[roi.box]], roi.grid) if with_previous else None)


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
        inputs = residual_inputs(image, spacing, previous, accepted, self.guesser,
                                 with_previous=self.model.previous_channel)
        if inputs is None:  # no accepted target: the shape prior's rule (keep the earlier result)
            return Prediction3D(np.array(previous, bool), None, EMPTY_ACCEPT)
        roi = inputs.roi
        residual, _ = self.model.residual(inputs.image_input().to(self.device), inputs.guidance.to(self.device))
        residual = residual.float().cpu()
        # At the ROI's full resolution (up to 10^7 voxels) every array counts, so only single-channel
        # arrays are made, and updated in place.
        up = lambda t: F.interpolate(t, size=roi.shape, mode="trilinear", align_corners=False)[0, 0].numpy()  # noqa: E731
        # the guess logit at full resolution, its sign the guess's (interpolation blurs the surface)
        logit = up(inputs.guess_logit)
        inside = inputs.guess[roi.box]
        np.maximum(logit, 1e-3, out=logit, where=inside)
        np.minimum(logit, -1e-3, out=logit, where=~inside)
        # Two classes: the foreground logit's margin over the background's decides and, through a
        # sigmoid, is the softmax. Trilinear interpolation is linear: up(a) - up(b) = up(a - b).
        if self.tau is None:
            margin = up(residual[:, 1:] - residual[:, :1])
            margin += logit
            del logit
        else:  # LogitNorm: both logits divided by tau times their norm
            background, margin = up(residual[:, :1]), up(residual[:, 1:])
            margin += logit
            del logit
            norm = np.hypot(background, margin)
            margin -= background
            del background
            norm *= self.tau
            norm += 1e-7
            margin /= norm
            del norm
        mask = inputs.guess  # the guesser's own array (a copy of `previous`): the result is written into it
        if np.may_share_memory(mask, previous):
            mask = mask.copy()
        mask[roi.box] = margin > 0
        # max-softmax of two classes: sigmoid(|margin|) = 1 / (1 + exp(-|margin|))
        np.abs(margin, out=margin)
        np.negative(margin, out=margin)
        np.exp(margin, out=margin)
        margin += 1
        confidence = np.reciprocal(margin, out=margin).astype(np.float16)
        return Prediction3D(mask, confidence, box=roi.box)  # outside the ROI: the guess, never recommended
