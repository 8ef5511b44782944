"""CISI-net's networks: two content encoders, a style encoder, an AdaIN decoder and a multi-scale PatchGAN.

The paper names the parts and their norms but no layer counts or widths; those follow MUNIT
(Huang et al. 2018), whose content/style split and components the paper adopts (methods.md §1.2).
Images are in [-1, 1] (the decoder ends in tanh).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    """Per-sample normalisation over (C, H, W) with a per-channel affine.

    The decoder's upsampling layers use it (as MUNIT): instance norm there would wipe
    out the per-channel statistics the AdaIN layers just set from the style code."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.rand(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x, x.shape[1:])
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


def adain(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Paper eq. 10: gamma * (x - mu(x)) / sigma(x) + beta, statistics per sample and channel."""
    return F.instance_norm(x) * gamma[..., None, None] + beta[..., None, None]


class ConvBlock(nn.Module):
    """Reflection pad, convolution, norm ("instance", "layer", "adain" or "none"), activation."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, norm: str = "none", act: str = "relu",
                 dilation: int = 1):
        super().__init__()
        self.pad = nn.ReflectionPad2d(dilation * (kernel - 1) // 2 if stride == 1 else (kernel - stride) // 2)
        self.conv = nn.Conv2d(cin, cout, kernel, stride, dilation=dilation)
        self.norm = {"instance": nn.InstanceNorm2d(cout), "layer": LayerNorm(cout)}.get(norm, nn.Identity())
        self.adaptive = norm == "adain"
        self.act = {"relu": nn.ReLU(), "lrelu": nn.LeakyReLU(0.2), "tanh": nn.Tanh(), "none": nn.Identity()}[act]

    def forward(self, x: torch.Tensor, style: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = self.norm(self.conv(self.pad(x)))
        if self.adaptive:
            x = adain(x, *style)
        return self.act(x)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a norm after each and ReLU after the first, plus the input."""

    def __init__(self, channels: int, norm: str, dilation: int = 1):
        super().__init__()
        self.a = ConvBlock(channels, channels, 3, norm=norm, dilation=dilation)
        self.b = ConvBlock(channels, channels, 3, norm=norm, act="none", dilation=dilation)

    def forward(self, x: torch.Tensor, styles: list | None = None) -> torch.Tensor:
        first, second = styles if styles is not None else (None, None)
        return x + self.b(self.a(x, first), second)


class ContentEncoder(nn.Module):
    """Strided convolutions then residual blocks, instance norm in every layer but the ICE's last.

    The self-content encoder (SCE) reads complete images. The inferred-content encoder (ICE)
    reads the corrupted image (and its hole mask): dilated convolutions in every residual block
    for a wider view, and one extra convolution block without stride at the end."""

    def __init__(self, in_channels: int, dim: int, downsample: int, blocks: int,
                 dilations: tuple[int, ...] | None = None, extra_block: bool = False, head: str = "conv"):
        super().__init__()
        layers = [ConvBlock(in_channels, dim, 7, norm="instance")]
        for _ in range(downsample):
            layers.append(ConvBlock(dim, dim * 2, 4, 2, norm="instance"))
            dim *= 2
        dilations = tuple(dilations or ()) or (1,) * blocks
        if len(dilations) != blocks:
            raise ValueError(f"need one dilation per residual block ({blocks}), got {list(dilations)}")
        layers += [ResBlock(dim, "instance", d) for d in dilations]
        if extra_block:
            # The code it ends in must be able to equal the SCE's, a residual sum: signed and unnormalised.
            # A ReLU would keep it >= 0 and instance norm would pin each channel's mean and variance.
            # head="instance-relu" rebuilds that older head, for checkpoints trained with it.
            plain = head == "conv"
            layers.append(ConvBlock(dim, dim, 3, norm="none" if plain else "instance", act="none" if plain else "relu"))
        self.model = nn.Sequential(*layers)
        self.out_channels = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class StyleEncoder(nn.Module):
    """Strided convolutions, global average pooling and a fully connected layer to the style code.

    No instance norm: it would remove the feature means and variances the style code is made of."""

    def __init__(self, dim: int, style_dim: int, downsample: int = 4):
        super().__init__()
        layers = [ConvBlock(3, dim, 7)]
        for i in range(downsample):
            out = dim * 2 if i < 2 else dim  # widen twice, then keep the width (MUNIT)
            layers.append(ConvBlock(dim, out, 4, 2))
            dim = out
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(dim, style_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(x).mean((2, 3)))


class Decoder(nn.Module):
    """Residual blocks with AdaIN (parameters from an MLP on the style code), then upsampling and convolutions.

    adaptive=False is the ablation without content/style separation: the residual blocks use
    plain instance norm and the style code is not used."""

    def __init__(self, dim: int, style_dim: int, mlp_dim: int, blocks: int, upsample: int, adaptive: bool = True):
        super().__init__()
        norm = "adain" if adaptive else "instance"
        self.blocks = nn.ModuleList(ResBlock(dim, norm) for _ in range(blocks))
        self.adaptive = adaptive
        self.dim = dim
        # Two AdaIN layers per block, each a scale and a shift per channel.
        self.mlp = nn.Sequential(nn.Linear(style_dim, mlp_dim), nn.ReLU(), nn.Linear(mlp_dim, mlp_dim), nn.ReLU(),
                                 nn.Linear(mlp_dim, blocks * 4 * dim)) if adaptive else None
        up = []
        for _ in range(upsample):
            # Nearest upsampling then a convolution: no checkerboard of transposed convolutions.
            up += [nn.Upsample(scale_factor=2, mode="nearest"), ConvBlock(dim, dim // 2, 5, norm="layer")]
            dim //= 2
        up.append(ConvBlock(dim, 3, 7, act="tanh"))
        self.up = nn.Sequential(*up)

    def forward(self, content: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        x = content
        if self.adaptive:
            params = self.mlp(style).view(style.shape[0], len(self.blocks), 2, 2, self.dim)  # block, layer, (gamma, beta)
            for i, block in enumerate(self.blocks):
                x = block(x, [(params[:, i, j, 0], params[:, i, j, 1]) for j in range(2)])
        else:
            for block in self.blocks:
                x = block(x)
        return self.up(x)


class PatchGAN(nn.Module):
    """Fully convolutional: 4x4 stride-2 convolutions with LeakyReLU, no norm, then a 1x1 convolution to one score."""

    def __init__(self, dim: int, layers: int):
        super().__init__()
        convs, cin = [], 3
        for i in range(layers):
            convs.append(ConvBlock(cin, dim * 2 ** i, 4, 2, act="lrelu"))
            cin = dim * 2 ** i
        convs.append(nn.Conv2d(cin, 1, 1))
        self.model = nn.Sequential(*convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def next_scale(x: torch.Tensor) -> torch.Tensor:
    """How the multi-scale discriminator shrinks its input between scales (also used for its hole masks)."""
    return F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)


class MultiScaleDiscriminator(nn.Module):
    """Identical PatchGANs on the image at full, half, quarter... size (pix2pixHD); one score map each."""

    def __init__(self, scales: int, dim: int, layers: int):
        super().__init__()
        self.nets = nn.ModuleList(PatchGAN(dim, layers) for _ in range(scales))
        self.layers = layers

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, net in enumerate(self.nets):
            if i:
                x = next_scale(x)
            out.append(net(x))
        return out


def init_weights(module: nn.Module, kind: str) -> None:
    """Kaiming for the generator's parts, N(0, 0.02) for the discriminator (MUNIT's choices)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if kind == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
