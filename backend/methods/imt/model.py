"""Infer-Match-Translate's networks: Image2Feature (G1, D1) and Feature2Image (G2, D2)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1, leaky: bool = False,
                 bn: bool = True) -> nn.Sequential:
    pad = dilation * (kernel - 1) // 2
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, pad, dilation=dilation, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2) if leaky else nn.ReLU())
    return nn.Sequential(*layers)


class DilatedResBlock(nn.Module):
    def __init__(self, dim: int, dilation: int):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(dim, dim, 3, dilation=dilation),
            nn.Conv2d(dim, dim, 3, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm2d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Image2Feature(nn.Module):
    """G1: three stride-2 convolutions, nine residual blocks of dilated convolutions, three stride-2
    transposed convolutions; BN + ReLU after every layer but the last (the image, tanh).

    Reads the incomplete image in [-1, 1] (hole zeroed) and the hole mask: a zeroed hole alone
    cannot be told from black pixels. Sides must be multiples of 8."""

    def __init__(self, dim: int = 64, blocks: int = 9, dilation: int = 2):
        super().__init__()
        self.down = nn.Sequential(conv_bn_relu(4, dim, 4, 2), conv_bn_relu(dim, dim * 2, 4, 2),
                                  conv_bn_relu(dim * 2, dim * 4, 4, 2))
        self.blocks = nn.Sequential(*[DilatedResBlock(dim * 4, dilation) for _ in range(blocks)])

        def up(cin: int, cout: int) -> list[nn.Module]:
            return [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.up = nn.Sequential(*up(dim * 4, dim * 2), *up(dim * 2, dim), nn.ConvTranspose2d(dim, 3, 4, 2, 1), nn.Tanh())

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        return self.up(self.blocks(self.down(torch.cat([image, hole], 1))))


class ResizeConv(nn.Module):
    """Nearest upsampling to a given size, then a 3x3 convolution: no checkerboard (the paper's ablation)."""

    def __init__(self, cin: int, cout: int, last: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1, bias=last)
        self.post = nn.Tanh() if last else nn.Sequential(nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.post(self.conv(F.interpolate(x, size=size, mode="nearest")))


class Feature2Image(nn.Module):
    """G2: a U-Net from a relu3_1 map (C x H/4 x W/4) to an H x W image.

    Seven convolution blocks (the first keeps the size, six halve it) and eight resize-convolution
    blocks: the first six return to the sizes of the convolution blocks and are joined to them by
    skip connections, the last two go from H/4 to H/2 and H. Each up block upsamples to its skip's
    exact size, so any feature-map size works."""

    def __init__(self, in_channels: int = 256, widths: tuple[int, ...] = (256, 256, 512, 512, 512, 512, 512),
                 tail: tuple[int, int] = (128, 64)):
        super().__init__()
        assert len(widths) == 7, "seven convolution blocks"
        downs = [conv_bn_relu(in_channels, widths[0], 3, 1, leaky=True, bn=False)]
        # 3x3 stride-2 convolutions round up (a 1x1 map stays 1x1): small maps reach the seventh block.
        # The innermost one has no BN, as in pix2pix: at 1x1 it would normalise a handful of values.
        downs += [conv_bn_relu(widths[i - 1], widths[i], 3, 2, leaky=True, bn=i < 6) for i in range(1, 7)]
        self.downs = nn.ModuleList(downs)
        ups, cin = [], widths[6]
        for i in range(6):  # the up block's output joins down block 5 - i
            out = widths[5 - i]
            ups.append(ResizeConv(cin, out))
            cin = out + widths[5 - i]
        ups += [ResizeConv(cin, tail[0]), ResizeConv(tail[0], 3, last=True)]
        self.ups = nn.ModuleList(ups)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        skips = []
        x = features
        for down in self.downs[:-1]:
            x = down(x)
            skips.append(x)
        # The innermost block in float32: CPU bfloat16 convolutions on maps this small (1x1 at
        # 128 px) gave non-finite weight gradients now and then.
        with torch.autocast(x.device.type, enabled=False):
            x = self.downs[-1](x.float())
        for up in self.ups[:6]:
            skip = skips.pop()
            x = torch.cat([up(x, skip.shape[-2:]), skip], 1)
        h, w = features.shape[-2:]
        x = self.ups[6](x, (h * 2, w * 2))
        return self.ups[7](x, (h * 4, w * 4))


class PatchGAN(nn.Module):
    """pix2pix's 70x70 PatchGAN: stride-2 4x4 convs, BN (not on the first), LeakyReLU; one logit per patch."""

    def __init__(self, in_channels: int, dim: int = 64, layers: int = 3):
        super().__init__()
        seq: list[nn.Module] = [conv_bn_relu(in_channels, dim, 4, 2, leaky=True, bn=False)]
        c = dim
        for i in range(1, layers):
            seq.append(conv_bn_relu(c, min(dim * 2**i, dim * 8), 4, 2, leaky=True))
            c = min(dim * 2**i, dim * 8)
        seq += [conv_bn_relu(c, min(c * 2, dim * 8), 4, 1, leaky=True), nn.Conv2d(min(c * 2, dim * 8), 1, 4, 1, 1)]
        self.net = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PairDiscriminator(nn.Module):
    """D1 on (incomplete image, image) pairs: the two images stacked as channels."""

    def __init__(self, dim: int = 64, layers: int = 3):
        super().__init__()
        self.net = PatchGAN(6, dim, layers)

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([condition, image], 1))


class FeatureImageDiscriminator(nn.Module):
    """D2 on (feature map, image) pairs: the image's 4x4 pixel blocks become channels at the feature
    map's resolution (a lossless rearrangement), stacked with the features."""

    def __init__(self, feature_channels: int = 256, dim: int = 64, layers: int = 2):
        super().__init__()
        self.net = PatchGAN(feature_channels + 48, dim, layers)

    def forward(self, features: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([features, F.pixel_unshuffle(image, 4)], 1))


def init_weights(net: nn.Module) -> None:
    """pix2pix's initialisation: convolutions N(0, 0.02), BN scales N(1, 0.02)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
