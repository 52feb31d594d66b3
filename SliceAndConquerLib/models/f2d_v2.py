"""f2D v2: an ImageNet-pretrained MobileNetV2 encoder with a light FPN decoder and a half-resolution
refinement, fed the RITM way.

- Encoder: MobileNetV2 written out here with torchvision's module names, so torchvision's ImageNet
  state dict (models/pretrained.py, `snc models fetch`) loads key for key. The last 1x1 conv to 1280
  channels and the classifier are not used (the decoder taps the 320-channel stride-32 features).
- Image: one grey channel into the first conv, whose pretrained RGB filters are summed (a grey image
  normalised with ImageNet's grey statistics, mean 0.449 and std 0.226, gives exactly the response of
  the RGB filter to that grey replicated over R, G and B).
- Guidance (positive and negative click disks, previous mask): their own 3x3 stride-2 conv ("Conv1S"),
  added to the image's first conv before its normalisation. It starts at zero, so the untrained
  network's encoder is exactly the pretrained encoder.
- BatchNorm: frozen. Every BN keeps ImageNet's running statistics (never updated, whatever the batch
  size) and is a per-channel affine map `FrozenBatchNorm` with trainable scale and shift. That is one
  multiply-add per channel, independent of the number of spatial dimensions, so the f3D conversion
  keeps it as it is (or folds it into the preceding conv: `fold_batchnorm`); there are no batch
  statistics to go wrong with batch 2 volumes. Dense convs become Mean-ACS convs and the depthwise
  convs grouped ACS convs in f3D; the decoder uses GroupNorm like f2D v1.
- Decoder: 1x1 laterals of the stride 4/8/16/32 features to `width` channels, a top-down sum with a
  3x3 block at each level, then at 1/2 resolution the stride-2 encoder features (which carry the
  guidance) join for a refinement that sharpens boundaries; the logit is upsampled bilinearly.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

GREY_MEAN, GREY_STD = 0.449, 0.226

# (expansion t, channels c, repeats n, stride s) of MobileNetV2 (Sandler et al. 2018, Table 2)
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1))
TAPS = (1, 3, 6, 13, 17)  # features[i] outputs at stride 2, 4, 8, 16, 32 (16, 24, 32, 96, 320 channels)
TAP_CHANNELS = (16, 24, 32, 96, 320)
UNUSED_PRETRAINED = ("features.18.", "classifier.")  # the 1280-channel head and the ImageNet classifier


class FrozenBatchNorm(nn.Module):
    """BatchNorm with fixed statistics: y = (x - mean) / sqrt(var + eps) * weight + bias per channel,
    for input of any dimensionality [B, C, ...]. Same state-dict keys as nn.BatchNorm2d."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def scale_shift(self):
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale

    def forward(self, x):
        scale, shift = self.scale_shift()
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * scale.view(shape) + shift.view(shape)


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin, cout, kernel=3, stride=1, groups=1, cin_override=None):
        super().__init__(nn.Conv2d(cin_override or cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups,
                                   bias=False), FrozenBatchNorm(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expansion):
        super().__init__()
        hidden = cin * expansion
        self.use_residual = stride == 1 and cin == cout
        layers = [] if expansion == 1 else [ConvBNReLU(cin, hidden, 1)]
        layers += [ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), FrozenBatchNorm(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


def mobilenet_v2_features(in_channels: int = 3, head: bool = True) -> nn.Sequential:
    """torchvision's `mobilenet_v2().features` layout (key names alike); head=False drops features[18]."""
    layers = [ConvBNReLU(32, 32, 3, 2, cin_override=in_channels)]
    cin = 32
    for t, c, n, s in SETTINGS:
        for i in range(n):
            layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    if head:
        layers.append(ConvBNReLU(cin, 1280, 1))
    return nn.Sequential(*layers)


class MobileNetV2(nn.Module):
    """The full ImageNet classifier, only to check that a pretrained file is what it claims to be."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        self.features = mobilenet_v2_features(3, head=True)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels // 4), channels)


class Block(nn.Sequential):
    """conv3x3 -> GroupNorm -> ReLU."""

    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), _norm(cout), nn.ReLU(inplace=True))


class F2DV2(nn.Module):
    interpolation = "bilinear"  # an f3D copy would set "trilinear"

    def __init__(self, width: int = 64, refine: int = 32):
        super().__init__()
        self.width, self.refine_width = width, refine
        self.encoder = nn.Module()
        self.encoder.features = mobilenet_v2_features(in_channels=1, head=False)
        self.guide_conv = nn.Conv2d(3, 32, 3, 2, 1, bias=False)  # Conv1S: clicks + previous mask
        nn.init.zeros_(self.guide_conv.weight)
        self.laterals = nn.ModuleList(nn.Conv2d(c, width, 1) for c in TAP_CHANNELS[1:])
        self.smooth = nn.ModuleList(Block(width, width) for _ in TAP_CHANNELS[2:])
        self.refine = nn.Sequential(Block(width + TAP_CHANNELS[0], refine), Block(refine, refine))
        self.head = nn.Conv2d(refine, 1, 1)

    def _up(self, x, like):
        return F.interpolate(x, size=like.shape[2:], mode=self.interpolation, align_corners=False)

    def fold_batchnorm(self) -> "F2DV2":
        """Every frozen BN folded into its conv (in place): the same function with fewer layers, for
        CPU inference or before the f3D conversion. The stem's BN acts on image conv + guidance conv,
        so its scale goes into both."""
        stem = self.encoder.features[0]
        if isinstance(stem[1], FrozenBatchNorm):
            scale, _ = stem[1].scale_shift()
            with torch.no_grad():
                self.guide_conv.weight.mul_(scale.view(-1, 1, 1, 1))
        fold_batchnorm(self)
        return self

    def encode(self, image, guidance, attend=None):
        """Encoder features at strides 2, 4, 8, 16, 32. attend: an optional function applied to the
        stride-4 features before the deeper layers see them (f3D's mask attention)."""
        features = self.encoder.features
        stem = features[0]
        x = stem[0]((image - GREY_MEAN) / GREY_STD) + self.guide_conv(guidance)
        x = stem[2](stem[1](x))
        taps = []
        for i in range(1, len(features)):
            x = features[i](x)
            if i == TAPS[1] and attend is not None:
                x = attend(x)
            if i in TAPS:
                taps.append(x)
        return taps

    def decode(self, taps):
        """Encoder taps -> the refined half-resolution features the head reads."""
        half, *pyramid = taps
        y = self.laterals[-1](pyramid[-1])
        for level in range(len(pyramid) - 2, -1, -1):   # stride 16, 8, 4
            y = self.smooth[level](self.laterals[level](pyramid[level]) + self._up(y, pyramid[level]))
        return self.refine(torch.cat([self._up(y, half), half], 1))

    def forward(self, image, previous, clicks):
        """image in [0, 1], previous: [B, 1, H, W]; clicks: [B, 2, H, W] (positive, negative disks).
        Returns foreground logits [B, 1, H, W]."""
        taps = self.encode(image, torch.cat([clicks, previous], dim=1))
        return self._up(self.head(self.decode(taps)), image)


def adapt_pretrained(state: dict) -> dict:
    """torchvision MobileNetV2 state dict -> this encoder's: RGB first-conv filters summed to one grey
    channel, the unused head dropped."""
    out = {k: v for k, v in state.items() if not k.startswith(UNUSED_PRETRAINED)}
    out["features.0.0.weight"] = state["features.0.0.weight"].sum(dim=1, keepdim=True)
    return out


def init_from_imagenet(model: F2DV2, state: dict | None = None) -> F2DV2:
    """Load the ImageNet encoder into a fresh F2DV2 (strict: every encoder key, nothing else)."""
    if state is None:
        from .pretrained import load_pretrained

        state = load_pretrained("mobilenet_v2")
    model.encoder.load_state_dict(adapt_pretrained(state), strict=True)
    return model


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every FrozenBatchNorm that follows a conv into that conv (in place, for inference or the
    f3D conversion); the BN becomes an identity. For an F2DV2 use its method (the stem's guidance)."""
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module._modules.items())
        for (_, conv), (name, bn) in zip(children, children[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, FrozenBatchNorm):
                scale, shift = bn.scale_shift()
                with torch.no_grad():
                    conv.weight.mul_(scale.view(-1, 1, 1, 1))
                    bias = shift if conv.bias is None else conv.bias * scale + shift
                    conv.bias = nn.Parameter(bias.detach().clone())
                module._modules[name] = nn.Identity()
    return model


ARCHITECTURES = {"v1", "v2"}


def build_f2d(arch: dict) -> nn.Module:
    """An untrained f2D of a saved `arch` config: {"name": "v2", ...} or v1's {"width": W}."""
    arch = dict(arch)
    name = arch.pop("name", "v1")
    if name == "v2":
        return F2DV2(**arch)
    if name == "v1":
        from .f2d import F2D

        return F2D(**arch)
    raise ValueError(f"unknown f2D architecture {name!r} (known: {', '.join(sorted(ARCHITECTURES))})")
