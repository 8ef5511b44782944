"""Neural-features GAN's networks (Liu et al., ICIMCS 2018, Tables 1-4).

The tables leave gaps and do not fit their own 24x24 training size (methods.md §3.1).
How we close them:
- Table 1's 4096 units after the bottleneck are 256 x 4 x 4: the tables fit a 64x64
  input (four 2x pools: 64 -> 4). For any size the encoder pools with ceil rounding
  (24 -> 12 -> 6 -> 3 -> 2), the fully connected layers are 256*g*g -> 1024 -> 256*g*g
  for the last grid g, and the decoder's 2x "unpooling" returns to each pooled size in
  reverse (2 -> 3 -> 6 -> 12 -> 24), as a symmetric decoder does. At 64x64 this is
  exactly the tables (4096 -> 1024 -> 4096).
- Table 2 ends at 32 channels: a 3x3 conv to RGB with a sigmoid closes it.
- The input is the damaged image and the hole mask (4 channels): the paper trains on
  a fixed centre hole but tests on any hole, so the network has to be told where it is.
- The discriminators' stride-2 convolutions pad like TensorFlow's "same" (output
  ceil(n / 2)) so Tables 3 and 4 fit any input down to 1x1; their last conv gives a map
  of logits, averaged by the loss (the sigmoid of the tables lives in the loss).
  LeakyReLU 0.2 and no normalisation, as DCGAN's discriminator (the paper: "similar to DCGAN").
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ENCODER = (32, 64, 128, 256)  # Table 1: conv 3x3 s1 then 2x2 max-pool s2, four times
BOTTLENECK = 1024  # Table 1: fc
DECODER = (64, 64, 32, 32)  # Table 2: 2x upsample then conv 3x3 s1, four times
GLOBAL_D = ((3, 1, 32), (4, 2, 32), (4, 2, 64), (4, 2, 128), (4, 2, 256), (4, 2, 128), (4, 1, 1))  # Table 3
LOCAL_D = ((3, 1, 64), (4, 2, 64), (4, 2, 128), (4, 2, 256), (4, 1, 1))  # Table 4


def pooled_sizes(size: int) -> list[int]:
    """The spatial size entering each encoder stage, then the last grid: 24 -> [24, 12, 6, 3, 2]."""
    sizes = [size]
    for _ in ENCODER:
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes


def dcgan_init(net: nn.Module) -> None:
    """N(0, 0.02) weights, zero biases, BN scale N(1, 0.02) (DCGAN)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Generator(nn.Module):
    """Conv/pool encoder, fully connected bottleneck, upsample/conv decoder; input size fixed at build."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.sizes = pooled_sizes(size)
        grid = self.sizes[-1]
        chans = (4,) + ENCODER
        self.encoder = nn.ModuleList(conv_bn_relu(a, b) for a, b in zip(chans[:-1], chans[1:]))
        flat = ENCODER[-1] * grid * grid
        self.fc = nn.Sequential(nn.Linear(flat, BOTTLENECK), nn.BatchNorm1d(BOTTLENECK), nn.ReLU(inplace=True))
        self.defc = nn.Sequential(nn.Linear(BOTTLENECK, flat), nn.BatchNorm1d(flat), nn.ReLU(inplace=True))
        chans = (ENCODER[-1],) + DECODER
        self.decoder = nn.ModuleList(conv_bn_relu(a, b) for a, b in zip(chans[:-1], chans[1:]))
        self.to_rgb = nn.Conv2d(DECODER[-1], 3, 3, padding=1)
        dcgan_init(self)

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        if image.shape[-2:] != (self.size, self.size):
            raise ValueError(f"this generator takes {self.size}x{self.size} input, got {tuple(image.shape[-2:])}")
        x = torch.cat([image * (1 - hole), hole], 1)
        for stage in self.encoder:
            x = F.max_pool2d(stage(x), 2, ceil_mode=True)
        grid = self.sizes[-1]
        x = self.defc(self.fc(x.flatten(1))).view(-1, ENCODER[-1], grid, grid)
        for stage, size in zip(self.decoder, reversed(self.sizes[:-1])):
            x = stage(F.interpolate(x, size=(size, size), mode="nearest"))
        return torch.sigmoid(self.to_rgb(x))


class SameConv(nn.Conv2d):
    """A convolution padded like TensorFlow's "same": output ceil(n / stride), for any n."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for n, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max(k - (s if n % s == 0 else n % s), 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class Discriminator(nn.Module):
    """A plain conv stack (Table 3 global, Table 4 local) returning a map of logits."""

    def __init__(self, plan: tuple[tuple[int, int, int], ...]):
        super().__init__()
        layers, cin = [], 3
        for i, (k, s, cout) in enumerate(plan):
            layers.append(SameConv(cin, cout, k, s))
            if i < len(plan) - 1:
                layers.append(nn.LeakyReLU(0.2, inplace=True))
            cin = cout
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
