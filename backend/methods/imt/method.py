"""Infer-Match-Translate as a trainable, servable method.

Infer: Image2Feature fills the hole coarsely and the pasted result goes through VGG to relu3_1.
Match: patch-swap replaces the hole's neural patches with the best-correlated known ones.
Translate: Feature2Image turns the swapped features back into an image; the hole is taken from it.
Above the training size the same runs scale by scale (upsample, VGG, patch-swap, Feature2Image).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F

from backend.engines.base import InpaintOptions, Param, Progress
from backend.methods.imt.model import FeatureImageDiscriminator, Feature2Image, Image2Feature, PairDiscriminator, init_weights
from backend.methods.imt.recipe import RECIPES
from backend.methods.imt.swap import feature_hole, patch_swap
from backend.training.features import vgg_layers
from backend.training.method import Method, StepContext, frozen, pad_to_multiple

RELU3_1 = 11  # index in VGG's `features`, the same in VGG16 and VGG19
FEATURE_STRIDE = 4  # relu3_1 is after two 2x2 poolings
TONE_RING = 4  # pixels of known border whose mean colour the fill is shifted to match


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """The standard (log) GAN loss on PatchGAN logits."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits.float(), target)


def boundary_weights(fhole: torch.Tensor, boundary_weight: float) -> torch.Tensor:
    """Image2Feature's feature mask: 1 on hole cells, `boundary_weight` on hole cells next to known ones."""
    interior = -F.max_pool2d(-F.pad(fhole, (1, 1, 1, 1), value=1.0), 3, 1)  # erosion; outside counts as hole
    return fhole + (boundary_weight - 1) * (fhole - interior)


def scale_sizes(height: int, width: int, base: int, multiple: int) -> list[tuple[int, int]]:
    """Sizes from coarsest to finest: halve until the longer side is within 1.5x the training size."""
    halvings = 0
    while max(height, width) / 2**halvings > 1.5 * base:
        halvings += 1
    return [(math.ceil(height / 2**k / multiple) * multiple, math.ceil(width / 2**k / multiple) * multiple)
            for k in range(halvings, -1, -1)]


class InferMatchTranslate(Method):
    id = "imt"
    description = ("Infer, Match and Translate: a network infers the hole's VGG features, patch-swap replaces "
                   "them with the best-matching known neural patches, a second network renders them as an image; "
                   "multi-scale above its training size.")
    recipes = RECIPES
    inference_networks = ("features", "g1", "g2")  # the checkpoint carries its VGG: serving needs no other file
    ema_networks = ("g1", "g2")  # the fixed VGG needs no average
    multiple = 8  # Image2Feature's three stride-2 convolutions
    general = False  # the paper's case is one large hole in a high-resolution photo
    params = {
        "iterations": Param(int, 1, "Feature2Image passes per scale: more sharpens texture but piles up "
                                    "artifacts at the boundary (the paper's finding)", 1, 8),
        "tone": Param(str, "align", "align: shift the fill's colour to match the border around it (the paper's "
                                    "tone adjustment); off: as Feature2Image renders it", choices=("align", "off")),
    }

    def build_networks(self):
        c = self.config
        widths = tuple(int(w) for w in c["g2_widths"])
        nets = {
            "features": vgg_layers(c["features"], (RELU3_1,), pretrained=False),
            "g1": Image2Feature(int(c["g1_dim"]), int(c["g1_blocks"]), int(c["g1_dilation"])),
            "d1": PairDiscriminator(int(c["d_dim"]), int(c["d1_layers"])),
            "g2": Feature2Image(256, widths, tuple(int(t) for t in c["g2_tail"])),
            "d2": FeatureImageDiscriminator(256, int(c["d_dim"]), int(c["d2_layers"])),
        }
        for name, net in nets.items():
            if name != "features":
                init_weights(net)
        return nets

    def build_optimizers(self):
        c = self.config
        # Only training builds optimisers; it starts from the pretrained VGG (serving and resumed runs
        # load the copy in their checkpoint over it).
        pretrained = vgg_layers(c["features"], (RELU3_1,), c.get("features_path"))
        self.nets["features"].load_state_dict(pretrained.state_dict())
        betas = tuple(float(b) for b in c["betas"])
        return {name: torch.optim.Adam(self.nets[name].parameters(), lr=float(c[f"lr_{name}"]), betas=betas)
                for name in ("g1", "d1", "g2", "d2")}

    def vgg(self, x: torch.Tensor) -> torch.Tensor:
        """relu3_1 of an image in [-1, 1], scaled to about unit size."""
        scale = self.config["feature_scale"]
        if scale == "auto":
            raise ValueError("feature_scale is 'auto' but was never measured: it is set on the first training step")
        return self.nets["features"]((x + 1) / 2)[0].float() * float(scale)

    def measure_feature_scale(self, x: torch.Tensor) -> float:
        """1 / RMS of relu3_1 over a batch ([-1, 1] images), averaged over every rank so all share one scale."""
        with torch.no_grad():
            mean_square = self.nets["features"]((x + 1) / 2)[0].float().pow(2).mean()
            if dist.is_available() and dist.is_initialized():
                dist.all_reduce(mean_square)
                mean_square /= dist.get_world_size()
        return float(mean_square.rsqrt())

    def train_step(self, image: torch.Tensor, hole: torch.Tensor, ctx: StepContext, step: int) -> dict[str, float]:
        cfg, n = self.config, self.nets
        wp, wa = float(cfg["w_perceptual"]), float(cfg["w_adv"])
        x = image * 2 - 1
        if cfg["feature_scale"] == "auto":  # the run's config keeps the number: resume and serving read it
            cfg["feature_scale"] = self.measure_feature_scale(x)
        incomplete = x * (1 - hole)
        fhole = feature_hole(hole, FEATURE_STRIDE)
        with torch.no_grad(), ctx.autocast():
            target = self.vgg(x)

        # Image2Feature: the coarse fill, pasted, must give the photo's relu3_1 in the hole.
        with frozen(n["d1"]), ctx.autocast():
            pasted = n["g1"](incomplete, hole).float() * hole + x * (1 - hole)
            inferred = self.vgg(pasted)
            weight = boundary_weights(fhole, float(cfg["boundary_weight"]))
            perc1 = (weight * (inferred - target).abs()).sum() / (weight.sum() * target.shape[1]).clamp_min(1)
            adv1 = gan_loss(n["d1"](incomplete, pasted), True)
        ctx.step("g1", wp * perc1 + wa * adv1)
        with ctx.autocast():
            d1 = 0.5 * (gan_loss(n["d1"](incomplete, x), True) + gan_loss(n["d1"](incomplete, pasted.detach()), False))
        ctx.step("d1", d1)

        # Feature2Image on patch-swapped ground-truth features (optionally some of Image2Feature's).
        with torch.no_grad():
            source = target
            if float(cfg["mixture"]) > 0 and step >= int(cfg["mixture_from"]):
                pick = (torch.rand(x.shape[0], device=x.device) < float(cfg["mixture"])).view(-1, 1, 1, 1)
                source = torch.where(pick, inferred.detach(), target)
            swapped = patch_swap(source, fhole)
        with frozen(n["d2"]), ctx.autocast():
            out = n["g2"](swapped).float()
            perc2 = F.mse_loss(self.vgg(out), target)
            adv2 = gan_loss(n["d2"](swapped, out), True)
        ctx.step("g2", wp * perc2 + wa * adv2)
        with ctx.autocast():
            d2 = 0.5 * (gan_loss(n["d2"](swapped, x), True) + gan_loss(n["d2"](swapped, out.detach()), False))
        ctx.step("d2", d2)
        terms = dict(perceptual1=perc1, adv1=adv1, d1=d1, perceptual2=perc2, adv2=adv2, d2=d2,
                     l1_coarse=((pasted - x).abs().sum() / (3 * hole.sum()).clamp_min(1)))
        return {k: float(v.detach()) for k, v in terms.items()}

    # ---- inference ----

    def translate(self, image: torch.Tensor, known: torch.Tensor, hole: torch.Tensor, iterations: int,
                  align: bool = True) -> torch.Tensor:
        """VGG, patch-swap, Feature2Image and paste, `iterations` times ([-1, 1] images at one scale)."""
        fhole = feature_hole(hole, FEATURE_STRIDE)
        ring = (F.max_pool2d(hole, 2 * TONE_RING + 1, 1, TONE_RING) - hole) if align else None
        for _ in range(iterations):
            out = self.nets["g2"](patch_swap(self.vgg(image), fhole)).float()
            if ring is not None:  # the paper's tone adjustment: match the output's colour to the input's around the hole
                out = out + ((known - out) * ring).sum((2, 3), keepdim=True) / ring.sum((2, 3), keepdim=True).clamp_min(1)
            image = out * hole + known * (1 - hole)
        return image

    def complete(self, image: torch.Tensor, hole: torch.Tensor, iterations: int = 1, align: bool = True,
                 progress: Callable[[float, str], None] | None = None) -> torch.Tensor:
        """Fill any size: Image2Feature at the coarsest scale, then one Feature2Image stage per scale."""
        h, w = image.shape[-2:]
        x = pad_to_multiple(image * 2 - 1, self.multiple, 2 * self.multiple)
        m = (pad_to_multiple(hole, self.multiple, 2 * self.multiple) > 0).float()
        sizes = scale_sizes(*x.shape[-2:], int(self.config["size"]), self.multiple)
        current = None
        for i, size in enumerate(sizes):
            if progress is not None:
                progress(i / len(sizes), f"scale {i + 1} of {len(sizes)}: {size[1]}x{size[0]}")
            hole_s = (F.interpolate(m, size=size, mode="area") > 0).float() if size != m.shape[-2:] else m
            known = (F.interpolate(x, size=size, mode="area") if size != x.shape[-2:] else x) * (1 - hole_s)
            if current is None:  # Infer, at the coarsest scale only
                current = self.nets["g1"](known, hole_s).float() * hole_s + known
            else:
                current = F.interpolate(current, size=size, mode="bilinear", align_corners=False) * hole_s + known
            current = self.translate(current, known, hole_s, iterations, align)
        return ((current[..., :h, :w] + 1) / 2).clamp(0, 1)

    def inpaint(self, image: torch.Tensor, hole: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.complete(image, hole, align=self.config.get("tone", "align") == "align")

    def serve(self, image: torch.Tensor, hole: torch.Tensor, options: InpaintOptions, progress: Progress) -> torch.Tensor:
        p = options.params
        out = self.complete(image, hole, int(p["iterations"]), p["tone"] == "align", progress)
        progress(1.0, "done")
        return out

    def transfer_style(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """The paper's style transfer: every neural patch of the content image becomes its best-correlated
        patch of the style image, and Feature2Image renders the result ([0, 1] images, any sizes)."""
        h, w = content.shape[-2:]
        c = pad_to_multiple(content * 2 - 1, FEATURE_STRIDE, 4 * FEATURE_STRIDE)
        s = pad_to_multiple(style * 2 - 1, FEATURE_STRIDE, 4 * FEATURE_STRIDE)
        fc, fs = self.vgg(c), self.vgg(s)
        swapped = patch_swap(fc, torch.ones_like(fc[:, :1]), bank=fs)
        return ((self.nets["g2"](swapped).float()[..., :h, :w] + 1) / 2).clamp(0, 1)
