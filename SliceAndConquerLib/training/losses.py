"""Training losses. Normalized focal loss (RITM): focal loss rescaled so that its per-image total does
not shrink as the prediction gets better, keeping the gradient alive on the few pixels still wrong.
Cross-entropy + soft Dice for f3D v2, whose guess is already right on most voxels (see `ce_dice_loss`)."""
import torch
import torch.nn.functional as F


def normalized_focal_loss(logits, target, gamma: float = 2.0, weight=None, eps: float = 1e-6):
    """logits: [B, 1, ...] (sigmoid) or [B, 2, ...] (softmax over background/foreground);
    target: [B, 1, ...]; weight: optional [B] per-sample weights. Returns a scalar."""
    target = target.float()
    if logits.shape[1] == 2:
        log_p = F.log_softmax(logits, dim=1)
        log_pt = torch.where(target > 0.5, log_p[:, 1:], log_p[:, :1])
    else:
        log_pt = torch.where(target > 0.5, F.logsigmoid(logits), F.logsigmoid(-logits))
    beta = (1 - log_pt.exp()) ** gamma
    dims = tuple(range(1, logits.dim()))
    pixels = target[0].numel()
    scale = pixels / (beta.sum(dim=dims, keepdim=True).detach() + eps)
    per_sample = -(scale * beta * log_pt).mean(dim=dims)
    if weight is not None:
        per_sample = per_sample * weight
    return per_sample.mean()


LOGIT_NORM_TAU = 0.1


def logit_norm(logits, tau: float = LOGIT_NORM_TAU, eps: float = 1e-7):
    """LogitNorm (Wei et al. 2022): logits divided by tau times their norm over classes, so training
    cannot buy confidence by growing the logits. The calibrated confidence is the max-softmax of these
    normalised logits: the raw logits of such a model stay small (softmax 0.5-0.65 everywhere)."""
    return logits / (tau * logits.norm(dim=1, keepdim=True) + eps)


def batch_iou(logits, target) -> float:
    """Mean IoU of the thresholded predictions: what training progress is logged with."""
    pred = (logits[:, 1:] > logits[:, :1]) if logits.shape[1] == 2 else logits > 0
    target = target > 0.5
    dims = tuple(range(1, logits.dim()))
    inter = (pred & target).sum(dim=dims).float()
    union = (pred | target).sum(dim=dims).float()
    return float(torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union)).mean())


def ce_dice_loss(logits, target, eps: float = 1.0):
    """Cross-entropy + soft Dice of the foreground, on raw two-class logits [B, 2, ...].

    For a residual on a guess that is right on most voxels: NFL's normalisation puts all the weight on
    the voxels still wrong (beta ~ 0 where the guess is right), and LogitNorm makes every voxel of the
    guess equally sure whatever its distance to the surface, so nothing held the right voxels right and
    training made the guess worse, on its own training states too (grid IoU 0.475 -> 0.459). Plain
    cross-entropy keeps a gradient on every voxel; Dice keeps a small target from being traded away."""
    target = target.float()
    cross_entropy = F.cross_entropy(logits, target[:, 0].to(torch.int64))
    foreground = torch.softmax(logits, dim=1)[:, 1:]
    dims = tuple(range(1, logits.dim()))
    overlap = (foreground * target).sum(dim=dims)
    dice = (2 * overlap + eps) / (foreground.sum(dim=dims) + target.sum(dim=dims) + eps)
    return cross_entropy + (1 - dice).mean()
