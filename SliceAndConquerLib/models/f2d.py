"""f2D: RITM-style click-driven segmentation of one 2D slice, sized for a laptop CPU.

Inputs: the image slice, the previous 2D mask, and positive/negative click disk maps. Image and
guidance meet in the first layer the RITM way ("Conv1S"): the guidance (clicks + previous mask) has
its own small convolution whose output is added to the image stem's first features.

Shape: a stride-4 stem, a compact U-Net at 1/4 .. 1/32 resolution, and a light refinement at 1/2
resolution that sees the stem's early features, so boundaries are not 4-pixel blocks. Only 3x3 and
1x1 convolutions, GroupNorm, and bilinear resizing: the f3D issue turns every Conv2d into a Mean-ACS
convolution, GroupNorm works unchanged in 3D, and bilinear becomes trilinear.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

INPUT_SIZE = 128  # the network sees square crops of this many pixels (a laptop-CPU budget)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels // 4), channels)


class ConvBlock(nn.Sequential):
    """conv3x3 -> GroupNorm -> ReLU, optionally strided."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), _norm(cout), nn.ReLU(inplace=True))


class Residual(nn.Module):
    """Two 3x3 blocks with an identity shortcut."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), _norm(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), _norm(channels))

    def forward(self, x):
        return F.relu(x + self.body(x))


class F2D(nn.Module):
    def __init__(self, width: int = 24):
        super().__init__()
        w = width
        # Conv1S fusion: image conv + guidance conv, summed before the first normalisation.
        self.image_conv = nn.Conv2d(1, w, 3, 2, 1, bias=False)                    # 1/2
        self.guide_conv = nn.Conv2d(3, w, 3, 2, 1, bias=False)                    # clicks + previous mask
        self.stem_norm = nn.Sequential(_norm(w), nn.ReLU(inplace=True))
        self.stem = ConvBlock(w, 2 * w, stride=2)                                 # 1/4
        self.enc1 = nn.Sequential(Residual(2 * w), Residual(2 * w))
        self.down2 = ConvBlock(2 * w, 3 * w, stride=2)                            # 1/8
        self.enc2 = nn.Sequential(Residual(3 * w), Residual(3 * w))
        self.down3 = ConvBlock(3 * w, 4 * w, stride=2)                            # 1/16
        self.enc3 = nn.Sequential(Residual(4 * w), Residual(4 * w))
        self.down4 = ConvBlock(4 * w, 4 * w, stride=2)                            # 1/32: wide context
        self.enc4 = Residual(4 * w)
        self.up3 = ConvBlock(8 * w, 4 * w)
        self.up2 = ConvBlock(7 * w, 3 * w)
        self.up1 = ConvBlock(5 * w, 2 * w)
        self.refine = nn.Sequential(ConvBlock(3 * w, w), nn.Conv2d(w, w, 3, 1, 1))  # 1/2, with stem skip
        self.head = nn.Conv2d(w, 1, 1)

    interpolation = "bilinear"  # f3D's converted copy sets "trilinear"

    def _up(self, x, like):
        return F.interpolate(x, size=like.shape[2:], mode=self.interpolation, align_corners=False)

    def decode(self, half, x1):
        """From the 1/2-resolution stem features and the 1/4 features to the refined 1/2 features."""
        x2 = self.enc2(self.down2(x1))
        x3 = self.enc3(self.down3(x2))
        x4 = self.enc4(self.down4(x3))
        y = self.up3(torch.cat([self._up(x4, x3), x3], 1))
        y = self.up2(torch.cat([self._up(y, x2), x2], 1))
        y = self.up1(torch.cat([self._up(y, x1), x1], 1))
        return F.relu(self.refine(torch.cat([self._up(y, half), half], 1)))

    def forward(self, image, previous, clicks):
        """image, previous: [B, 1, H, W]; clicks: [B, 2, H, W] (positive, negative disks).
        Returns foreground logits [B, 1, H, W]."""
        guidance = torch.cat([clicks, previous], dim=1)
        half = self.stem_norm(self.image_conv(image) + self.guide_conv(guidance))
        x1 = self.enc1(self.stem(half))
        return self._up(self.head(self.decode(half, x1)), image)
