"""The DCGAN of Yeh et al. (CVPR 2017, §3.3): z of 100 dims in [-1, 1] -> 64x64x3, and its discriminator.

The paper names Radford et al.'s DCGAN and gives the shape: G maps z to 64x64x3;
D "is structured essentially in reverse order": convolutions that halve the size and
double the channels, ending in a two-class softmax. Widths, kernels and the
normalisation follow the DCGAN code the paper's co-author built on (methods.md §4.2-4.3):
a linear layer to 4x4x512, then 5x5 stride-2 transposed convolutions
512 -> 256 -> 128 -> 64 -> 3, BN + ReLU and a tanh output; D mirrors it with 5x5
stride-2 convolutions 3 -> 64 -> 128 -> 256 -> 512, LeakyReLU 0.2, BN from the second
one, and a linear layer to the two classes (fake, real).
Images are in [-1, 1] inside this module, as in DCGAN.
"""
from __future__ import annotations

import torch
from torch import nn

Z_DIM = 100
SIZE = 64
FAKE, REAL = 0, 1  # the two classes of D's softmax


def _init(module: nn.Module) -> None:
    """DCGAN's initialisation: weights from N(0, 0.02), BN scales from N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    def __init__(self, width: int = 64, z_dim: int = Z_DIM):
        super().__init__()
        self.z_dim, self.top = z_dim, width * 8
        self.project = nn.Linear(z_dim, self.top * 4 * 4)
        self.project_norm = nn.BatchNorm2d(self.top)
        layers: list[nn.Module] = []
        channels = [width * 8, width * 4, width * 2, width]
        for cin, cout in zip(channels, channels[1:]):
            # kernel 5, stride 2, padding 2, output padding 1: exactly twice the size
            layers += [nn.ConvTranspose2d(cin, cout, 5, 2, 2, output_padding=1), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(width, 3, 5, 2, 2, output_padding=1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        _init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(-1, self.top, 4, 4)
        return self.body(torch.relu(self.project_norm(x)))


class Discriminator(nn.Module):
    """Logits of the two classes (fake, real); softmax over them is the paper's output layer."""

    def __init__(self, width: int = 64):
        super().__init__()
        layers: list[nn.Module] = []
        channels = [3, width, width * 2, width * 4, width * 8]
        for i, (cin, cout) in enumerate(zip(channels, channels[1:])):
            layers.append(nn.Conv2d(cin, cout, 5, 2, 2))
            if i > 0:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, True))
        self.body = nn.Sequential(*layers)
        self.classify = nn.Linear(width * 8 * 4 * 4, 2)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.body(x).flatten(1))
