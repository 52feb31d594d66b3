"""Normalized focal loss (RITM): focal loss rescaled so that its per-image total does not shrink as the
prediction gets better, keeping the gradient alive on the few pixels still wrong."""
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
