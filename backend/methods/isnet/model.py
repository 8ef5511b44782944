"""ISNet generator and discriminator (Li et al., ICIP 2020), written from the paper and methods.md §5.

Generator: a 32-channel full-resolution "main" branch and a "vice" branch one
scale lower per stage (64@1/2 -> 128@1/4 -> 256@1/8 -> 512@1/16). Each of the four
stages runs Inpainting (residual blocks per branch), Interaction (strided convs
down, sub-pixel convs up) and Aggregation (concat + 3x3 conv). Final Fusion
upsamples the vice stream by sub-pixel convs and fuses it with the main stream.

Module and attribute names follow the official state dict (methods.md Appendix A:
`layer1`, `stage{s}.branches`, `fuse_layers`, `fused_branches`, `up_layer`,
`final_layer`), so official weights load key for key. Spectral normalisation is
the legacy hook `torch.nn.utils.spectral_norm` for that reason: its state dict
(`weight_orig`, `weight_u`, `weight_v`) is exactly the official one, so an import
is a plain load_state_dict with no key remapping, and in eval mode it uses the
stored u and v as the official test code does (a parametrization would need a
remap table and gives the same numbers).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import spectral_norm

MAIN = 32  # channels of the full-resolution branch (paper: "32-dimensional feature maps")
VICE = (64, 128, 256, 512)  # vice-branch channels after stages 0..3 (paper: 64, 128, 256, 512)


def sn_conv(cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 1, dilation: int = 1,
            bias: bool = False) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, kernel, stride, padding, dilation=dilation, bias=bias))


class ResBlock(nn.Module):
    """Inpainting block: pad d -> conv(dilation d) -> tanh -> pad 1 -> conv; add the input; tanh."""

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        # Explicit zero pads keep the official indices (convs at 1 and 4).
        self.conv_block = nn.Sequential(
            nn.ZeroPad2d(dilation), sn_conv(channels, channels, padding=0, dilation=dilation), nn.Tanh(),
            nn.ZeroPad2d(1), sn_conv(channels, channels, padding=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x + self.conv_block(x))


class Stem(nn.Module):
    """Embeds the damaged RGB image into 32 full-resolution channels (a bottleneck residual block)."""

    def __init__(self, cin: int = 3):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ZeroPad2d(1), sn_conv(cin, 2 * MAIN, padding=0), nn.Tanh(),
            nn.ZeroPad2d(1), sn_conv(2 * MAIN, MAIN, padding=0))
        # The one layer without spectral norm in the official model (a 1x1 shortcut);
        # kept plain so its weight loads as the official `layer1.downsample.weight`.
        self.downsample = nn.Conv2d(cin, MAIN, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv_block(x) + self.downsample(x))


def down_step(cin: int, cout: int) -> nn.Sequential:
    """Interaction downsampling: a stride-2 conv."""
    return nn.Sequential(sn_conv(cin, cout, stride=2), nn.Tanh())


def up_step(cin: int) -> nn.Sequential:
    """Sub-pixel upsampling (Shi et al.): conv C -> 2C, pixel shuffle x2 -> C/2 channels at twice the size."""
    return nn.Sequential(sn_conv(cin, 2 * cin), nn.PixelShuffle(2), nn.Tanh())


class Stage(nn.Module):
    """Inpainting, Interaction and Aggregation at stage `index` (0..3).

    Input: [main 32 ch] for stage 0, else [main, vice at 1/2^index]. Output: [main, vice at 1/2^(index+1)].
    """

    def __init__(self, index: int, blocks: int):
        super().__init__()
        n_in = 1 if index == 0 else 2
        vice_in = VICE[index - 1] if index else None
        vice_out = VICE[index]
        # Inpainting: residual blocks per branch; the vice branch uses dilation 2 (official code).
        branches = [nn.Sequential(*[ResBlock(MAIN, 1) for _ in range(blocks)])]
        if n_in == 2:
            branches.append(nn.Sequential(*[ResBlock(vice_in, 2) for _ in range(blocks)]))
        self.branches = nn.ModuleList(branches)

        # Interaction: fuse_layers[i][j] brings input branch j to output branch i (None = identity).
        to_main = nn.ModuleList([None])
        if n_in == 2:  # the vice stream climbs `index` sub-pixel steps to full resolution
            to_main.append(nn.Sequential(*[up_step(vice_in >> k) for k in range(index)]))
        chans = [MAIN * 2**k for k in range(index + 2)]  # main: 32 -> 64 -> ... in index+1 strided convs
        to_vice = nn.ModuleList([nn.Sequential(*[down_step(chans[k], chans[k + 1]) for k in range(index + 1)])])
        if n_in == 2:  # the vice stream goes down one scale
            to_vice.append(down_step(vice_in, vice_out))
        self.fuse_layers = nn.ModuleList([to_main, to_vice])

        # Aggregation: concat what reached each branch, compress with a 3x3 conv.
        main_cat = MAIN * n_in
        vice_cat = vice_out * n_in
        self.fused_branches = nn.ModuleList([
            nn.Sequential(nn.Sequential(sn_conv(main_cat, MAIN), nn.Tanh())),
            nn.Sequential(nn.Sequential(sn_conv(vice_cat, vice_out), nn.Tanh()))])

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, layers in enumerate(self.fuse_layers):
            # Concatenated in input-branch order (own/main first), as the official model does.
            parts = [x if layer is None else layer(x) for layer, x in zip(layers, xs)]
            out.append(self.fused_branches[i](torch.cat(parts, 1) if len(parts) > 1 else parts[0]))
        return out


@torch.no_grad()
def settle_spectral_norm(net: nn.Module, iterations: int = 15) -> None:
    """Run power iterations so the stored u, v match the current weights.

    The legacy hook starts u, v at random and refines them one step per training
    forward; in eval mode it trusts them as stored, so a fresh net evaluated
    before any training step would divide by a meaningless sigma. (The
    parametrization version does the same 15 iterations at construction.)
    """
    for m in net.modules():
        if hasattr(m, "weight_orig"):
            w = m.weight_orig.reshape(m.weight_orig.shape[0], -1)
            u, v = m.weight_u, m.weight_v
            for _ in range(iterations):
                v.copy_(nn.functional.normalize(w.t() @ u, dim=0, eps=1e-12))
                u.copy_(nn.functional.normalize(w @ v, dim=0, eps=1e-12))


class Generator(nn.Module):
    """RGB with holes zeroed, (B,3,H,W) in [0,1] with H, W multiples of 16 -> prediction in [0,1]."""

    multiple = 16  # the vice branch reaches 1/16 scale

    def __init__(self, blocks: int = 4, init: str = "official"):
        super().__init__()
        self.layer1 = Stem()
        for s in range(4):
            setattr(self, f"stage{s}", Stage(s, blocks))
        # Final Fusion: sub-pixel convs take the 512@1/16 vice stream to 32@full, then fuse with the main stream.
        self.up_layer = nn.Sequential(*[up_step(VICE[-1] >> k) for k in range(4)])
        self.final_layer = nn.Sequential(
            sn_conv(2 * MAIN, MAIN, kernel=7, padding=3, bias=True), nn.Tanh(),
            sn_conv(MAIN, 3, bias=True))
        self.reset_parameters(init)

    def reset_parameters(self, init: str = "official") -> None:
        """"official": N(0, 0.001) weights, zero biases. "kaiming": He-normal weights.

        Under spectral norm the forward pass only sees a weight's direction, but
        Adam's steps have a fixed size, so the initial scale sets how fast that
        direction turns: at 0.001 a 1e-4 step turns it by ~10 % per step, which
        needs the official ~500k steps to settle. He-normal scales (~0.03-0.08)
        turn it ~50x more slowly and learn steadily within a few thousand steps.
        """
        if init not in ("official", "kaiming"):
            raise ValueError(f"init must be official or kaiming, got {init!r}")
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                w = m.weight_orig if hasattr(m, "weight_orig") else m.weight
                if init == "official":
                    nn.init.normal_(w, 0.0, 0.001)
                else:
                    nn.init.kaiming_normal_(w)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        settle_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = [self.layer1(x)]
        for s in range(4):
            xs = getattr(self, f"stage{s}")(xs)
        main, vice = xs
        y = self.final_layer(torch.cat([main, self.up_layer(vice)], 1))
        return (torch.tanh(y) + 1) / 2


class Discriminator(nn.Module):
    """EdgeConnect's 70x70 PatchGAN with spectral norm; no sigmoid (hinge loss).

    Returns the patch logits and the five layer activations for feature matching.
    """

    def __init__(self, cin: int = 3):
        super().__init__()
        lrelu = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        self.conv1 = nn.Sequential(sn_conv(cin, 64, 4, 2, 1), lrelu())
        self.conv2 = nn.Sequential(sn_conv(64, 128, 4, 2, 1), lrelu())
        self.conv3 = nn.Sequential(sn_conv(128, 256, 4, 2, 1), lrelu())
        self.conv4 = nn.Sequential(sn_conv(256, 512, 4, 1, 1), lrelu())
        self.conv5 = nn.Sequential(sn_conv(512, 1, 4, 1, 1))
        settle_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for layer in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
            x = layer(x)
            feats.append(x)
        return x, feats


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
