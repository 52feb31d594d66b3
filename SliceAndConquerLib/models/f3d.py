"""f3D: f2D turned 3D with Mean-ACS convolutions (2D -> 3D transfer), guided by the accepted slices,
with a mask attention module (paper Sec. 3.2, Fig. 2b).

Every Conv2d of a trained f2D becomes `acsconv.operators.SoftACSConv(..., mean=True)`: the same 2D
kernel applied on the axial, coronal and sagittal planes and averaged, so f2D's weights carry over
unchanged. GroupNorm works in 3D as it is; bilinear resizing becomes trilinear.

Inputs at iteration t (all on the ROI grid, channels first):
- image path:    the image I and the previous 3D mask M_{t-1}                       (2 channels)
- guidance path: positive and negative click disks P^{2D->3D}, the accepted 2D masks M^{2D->3D}, and
                 a marker of the accepted planes, so that "annotated background" differs from
                 "not annotated"                                                    (4 channels)
The f2D first layers are widened to these inputs: the image weights go to I, f2D's previous-mask
weights to M_{t-1} and to M^{2D->3D}, the click weights to the clicks, zeros to the marker.

Mask attention: from the 1/4-resolution features and the downsampled guidance, a small head predicts
the target (its own logits, trained with an NFL term, L_3D = L_seg + lambda L_attn) and its sigmoid
re-weights the features, x <- x * (1 + A), so the masks steer the whole decoder.

f2D v2 (the MobileNetV2 encoder) transfers to `ResidualF3DV2`, the same way (its docstring).

Output: two-class logits (background, foreground) so that LogitNorm and the max-softmax confidence
of the recommendation are defined; f2D's single-logit head w becomes (0, w). Not (-w/2, +w/2): with
logits exactly opposite, LogitNorm's normalised difference sits at its maximum, where its gradient
with respect to the logits' direction vanishes and training cannot start (seen: a flat loss).
"""
from __future__ import annotations

import copy

import torch
from torch import nn
import torch.nn.functional as F
from acsconv.operators import SoftACSConv

from .f2d import F2D
from .f2d_v2 import TAP_CHANNELS, F2DV2

IMAGE_CHANNELS = 2     # I, M_{t-1}
GUIDANCE_CHANNELS = 4  # P+, P-, M^{2D->3D}, accepted-plane marker
F2D_PREVIOUS_MASK = 2  # f2D's guidance channels (v1 and v2): positive, negative, previous mask


def acs_from_conv2d(conv: nn.Conv2d) -> SoftACSConv:
    """A Mean-ACS convolution with the 2D convolution's weights (and bias)."""
    acs = SoftACSConv(conv.in_channels, conv.out_channels, conv.kernel_size[0], stride=conv.stride[0],
                      padding=conv.padding[0], dilation=conv.dilation[0], groups=conv.groups, mean=True,
                      bias=conv.bias is not None)
    with torch.no_grad():
        acs.weight.copy_(conv.weight)
        if conv.bias is not None:
            acs.bias.copy_(conv.bias)
    return acs


def convert_to_3d(module: nn.Module) -> nn.Module:
    """A copy of `module` with every Conv2d a Mean-ACS conv and BatchNorm2d a BatchNorm3d (with its
    statistics). acsconv's own ACSConverter fails on BatchNorm with current torch, hence this."""
    module = copy.deepcopy(module)

    def replace(parent: nn.Module):
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                setattr(parent, name, acs_from_conv2d(child))
            elif isinstance(child, nn.BatchNorm2d):
                norm = nn.BatchNorm3d(child.num_features, child.eps, child.momentum, child.affine,
                                      child.track_running_stats)
                norm.load_state_dict(child.state_dict())
                setattr(parent, name, norm)
            elif isinstance(child, (nn.MaxPool2d, nn.AvgPool2d, nn.Upsample)):
                raise TypeError(f"{type(child).__name__} has no 3D conversion here")
            else:
                replace(child)

    replace(module)
    if hasattr(module, "interpolation"):
        module.interpolation = "trilinear"
    return module


def _widen(conv: SoftACSConv, sources: list) -> SoftACSConv:
    """A copy of `conv` with new input channels; sources[c] is the old input channel whose weights
    new channel c starts from (None: zeros)."""
    wide = SoftACSConv(len(sources), conv.out_channels, conv.kernel_size[0], stride=conv.stride[0],
                       padding=conv.padding[0], groups=1, mean=True, bias=conv.bias is not None)
    with torch.no_grad():
        wide.weight.zero_()
        for new, old in enumerate(sources):
            if old is not None:
                wide.weight[:, new] = conv.weight[:, old]
    return wide


class MaskAttention(nn.Module):
    """Guidance + features at 1/4 resolution -> attention logits (one channel)."""

    def __init__(self, channels: int, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            SoftACSConv(channels + GUIDANCE_CHANNELS, hidden, 3, padding=1, mean=True, bias=False),
            nn.GroupNorm(4, hidden), nn.ReLU(inplace=True),
            SoftACSConv(hidden, 1, 3, padding=1, mean=True))

    def forward(self, features, guidance):
        small = F.adaptive_max_pool3d(guidance, features.shape[2:])  # a thin mask must survive
        return self.net(torch.cat([features, small], 1))


class F3D(nn.Module):
    def __init__(self, width: int = 16, mask_attention: bool = True, f2d: F2D | None = None):
        """A fresh f3D, or with `f2d` the transfer of Sec. 3.2 (its weights in every layer)."""
        super().__init__()
        source = f2d if f2d is not None else F2D(width)
        body = convert_to_3d(source)
        prev_mask = F2D_PREVIOUS_MASK
        body.image_conv = _widen(body.image_conv, [0, None])
        head = body.head
        if f2d is not None:
            with torch.no_grad():  # M_{t-1} enters the image path with f2D's previous-mask weights
                body.image_conv.weight[:, 1] = body.guide_conv.weight[:, prev_mask]
        body.guide_conv = _widen(body.guide_conv, [0, 1, prev_mask, None])
        body.head = SoftACSConv(head.in_channels, 2, 1, mean=True)
        if f2d is not None:
            with torch.no_grad():  # background logit 0, foreground logit f2D's (see the module docstring)
                body.head.weight.copy_(torch.cat([torch.zeros_like(head.weight), head.weight]))
                body.head.bias.copy_(torch.cat([torch.zeros_like(head.bias), head.bias]))
        self.body = body
        self.attention = MaskAttention(2 * head.in_channels) if mask_attention else None

    @classmethod
    def from_f2d(cls, f2d: F2D, mask_attention: bool = True) -> "F3D":
        """f3D initialised from trained f2D weights (the transfer of Sec. 3.2)."""
        return cls(f2d.image_conv.out_channels, mask_attention, f2d)

    def forward(self, image, guidance):
        """image [B, 2, D, H, W]; guidance [B, 4, D, H, W]. Returns (logits [B, 2, D, H, W],
        attention logits [B, 1, D, H, W] or None)."""
        b = self.body
        half = b.stem_norm(b.image_conv(image) + b.guide_conv(guidance))
        x1 = b.enc1(b.stem(half))
        attention = None
        if self.attention is not None:
            attention = self.attention(x1, guidance)
            x1 = x1 * (1 + torch.sigmoid(attention))
        logits = b._up(b.head(b.decode(half, x1)), image)
        return logits, (b._up(attention, image) if attention is not None else None)


GUESS_LIMIT = 4.0  # the guess logit: signed distance to the guess's surface in working-grid voxels, clipped


class ResidualF3D(F3D):
    """f3D v2: a learned correction of the best non-learned 3D guess (issue 18).

    The M_{t-1} input is the guess (the shape prior with intensity evidence, `classic.ShapePrior3D`),
    and the output is that guess's logits (0, g), g its signed distance in working-grid voxels clipped
    to +-GUESS_LIMIT, plus what the network adds. The network's head starts at zero, so before
    training f3D returns the guess exactly and it can only learn where the guess is wrong.
    Near the accepted planes the guess replaces whatever the session had, so an existing result
    reaches the network only through the optional previous-mask channel."""

    def __init__(self, width: int = 16, mask_attention: bool = True, f2d: F2D | None = None,
                 previous_channel: bool = False):
        """previous_channel: a third image-path input, the session's mask before this accept (an
        existing result, or the last 3D result), with zero weights at the start."""
        super().__init__(width, mask_attention, f2d)
        self.previous_channel = previous_channel
        if previous_channel:
            self.body.image_conv = _widen(self.body.image_conv, [0, 1, None])
        with torch.no_grad():
            self.body.head.weight.zero_()
            self.body.head.bias.zero_()

    def residual(self, image, guidance):
        """image: [B, 2 or 3, *grid] (I, the guess, with `previous_channel` the previous mask).
        Returns (residual logits [B, 2, *grid], attention logits or None)."""
        return super().forward(image, guidance)

    def forward(self, image, guidance, guess):
        """guess: [B, 1, *grid] guess logit. Returns (logits [B, 2, *grid], attention logits)."""
        return _plus_guess(*self.residual(image, guidance), guess)


def _plus_guess(residual, attention, guess):
    """The residual logits added to the guess's logits (0, g)."""
    return residual + torch.cat([torch.zeros_like(guess), guess], 1), attention


class ResidualF3DV2(nn.Module):
    """f3D v2 transferred from f2D v2 (ImageNet MobileNetV2 encoder, FPN decoder): the same residual
    on the guess, with ResidualF3D's inputs and outputs.

    Every dense conv becomes Mean-ACS and every depthwise conv a grouped Mean-ACS conv with f2D's
    weights; the frozen BatchNorms are per-channel affine maps and stay as they are; GroupNorm works
    in 3D. The image conv sees only the normalised image (its ImageNet filters expect nothing else),
    so the guess, and the optional previous mask, join the click disks and the accepted masks in the
    guidance conv; the guess starts with f2D's previous-mask weights, the accepted masks too, the
    plane marker and the previous mask at zero. Mask attention re-weights the stride-4 features."""

    def __init__(self, width: int = 64, refine: int = 32, mask_attention: bool = True,
                 f2d: F2DV2 | None = None, previous_channel: bool = False):
        super().__init__()
        source = f2d if f2d is not None else F2DV2(width, refine)
        self.arch = {"name": "v2", "width": source.width, "refine": source.refine_width,
                     "mask_attention": mask_attention, "previous_channel": previous_channel}
        body = convert_to_3d(source)
        prev_mask = F2D_PREVIOUS_MASK
        sources = [0, 1, prev_mask, None, prev_mask] + ([None] if previous_channel else [])
        body.guide_conv = _widen(body.guide_conv, sources)
        body.head = SoftACSConv(body.head.in_channels, 2, 1, mean=True)
        with torch.no_grad():  # the residual starts at zero: f3D returns its guess
            body.head.weight.zero_()
            body.head.bias.zero_()
        self.body = body
        self.previous_channel = previous_channel
        self.attention = MaskAttention(TAP_CHANNELS[1]) if mask_attention else None

    def residual(self, image, guidance):
        """image: [B, 2 or 3, *grid] (I, the guess, with `previous_channel` the previous mask);
        guidance: [B, 4, *grid]. Returns (residual logits [B, 2, *grid], attention logits or None)."""
        b, attention = self.body, []

        def attend(features):
            logits = self.attention(features, guidance)
            attention.append(logits)
            return features * (1 + torch.sigmoid(logits))

        taps = b.encode(image[:, :1], torch.cat([guidance, image[:, 1:]], 1),
                        attend if self.attention is not None else None)
        logits = b._up(b.head(b.decode(taps)), image)
        return logits, (b._up(attention[0], image) if attention else None)

    def forward(self, image, guidance, guess):
        """guess: [B, 1, *grid] guess logit. Returns (logits [B, 2, *grid], attention logits)."""
        return _plus_guess(*self.residual(image, guidance), guess)


def build_f3d(arch: dict) -> nn.Module:
    """An untrained f3D of a saved `arch` config (ResidualF3DV2 for {"name": "v2", ...})."""
    arch = dict(arch)
    name, residual = arch.pop("name", "v1"), arch.pop("residual", False)
    if name == "v2":
        if not residual:
            raise ValueError("an f3D from f2D v2 is always residual (f3D v2)")
        return ResidualF3DV2(**arch)
    if name != "v1":
        raise ValueError(f"unknown f3D architecture {name!r}")
    return (ResidualF3D if residual else F3D)(**arch)
