"""ISNet as a trainable, servable method: networks, optimisers, the GAN update order, inference."""
from __future__ import annotations

from pathlib import Path

import torch

from backend.methods.isnet import losses as isnet_losses
from backend.methods.isnet.model import Discriminator, Generator
from backend.methods.isnet.recipe import RECIPES
from backend.training import losses
from backend.training.features import feature_network
from backend.training.method import Method, StepContext, pad_to_multiple


class ISNet(Method):
    id = "isnet"
    description = ("ISNet (Li et al., ICIP 2020): a full-resolution and a downscaled branch that repeatedly "
                   "exchange features, with a spectrally normalised PatchGAN.")
    recipes = RECIPES
    multiple = Generator.multiple

    def build_networks(self):
        return {"generator": Generator(int(self.config.get("blocks", 4)), self.config.get("init", "official")), "discriminator": Discriminator()}

    def build_optimizers(self):
        betas = tuple(float(b) for b in self.config["betas"])  # JSON may give ints; Adam wants floats
        return {"generator": torch.optim.Adam(self.nets["generator"].parameters(), lr=self.config["lr"], betas=betas),
                "discriminator": torch.optim.Adam(self.nets["discriminator"].parameters(), lr=self.config["d_lr"], betas=betas)}

    def features(self) -> torch.nn.Module:
        """The frozen loss network, built on first use: serving never needs it."""
        if getattr(self, "_features", None) is None:
            name = self.config.get("features", "vgg19")
            with torch.random.fork_rng(devices=[]):  # random-vgg19 must not shift the training RNG stream
                torch.manual_seed(0)
                net = feature_network(name, self.config.get("features_path"), taps=isnet_losses.VGG_TAPS, normalize=False)
            self._features = net.to(self.device)
        return self._features

    def fake_for_d(self, out: torch.Tensor, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        mode = self.config.get("d_fake", "composite")
        if mode == "composite":
            return out * hole + image * (1 - hole)
        if mode == "output":
            return out
        if mode == "hole":
            return out * hole
        raise ValueError(f"d_fake must be composite, output or hole, got {mode!r}")

    def train_step(self, image: torch.Tensor, hole: torch.Tensor, ctx: StepContext, step: int) -> dict[str, float]:
        G, D, cfg = self.nets["generator"], self.nets["discriminator"], self.config
        with ctx.autocast():
            out = G(image * (1 - hole)).float()  # paper eq. 1: the generator sees only the damaged RGB image
        fake = self.fake_for_d(out, image, hole)

        # Discriminator: hinge loss (paper eq. 3), real and fake in one batch (D has no batch statistics).
        with ctx.autocast():
            logits, _ = D(torch.cat([image, fake.detach()]))
            real_logits, fake_logits = logits.float().chunk(2)
            d_loss = losses.hinge_d(real_logits, fake_logits)
        ctx.step("discriminator", d_loss)

        # Generator, through the discriminator as just updated. The official loop computed these terms
        # with the old D and stepped D before G's backward, which newer PyTorch rejects.
        with ctx.autocast():
            logits, feats = D(torch.cat([fake, image]))
            fake_logits = logits.float().chunk(2)[0]
            halves = [f.float().chunk(2) for f in feats]
            fm = losses.feature_matching([a for a, _ in halves], [b for _, b in halves])
            adv = losses.hinge_g(fake_logits)
            vgg = self.features()
            is_vgg19 = cfg.get("features", "vgg19") in ("vgg19", "random-vgg19")
            perc_out, style_out = isnet_losses.split_taps([f.float() for f in vgg(out)], is_vgg19)
            with torch.no_grad():
                perc_gt, style_gt = isnet_losses.split_taps([f.float() for f in vgg(image)], is_vgg19)
            # Perceptual and style on the raw output, not masked (official code).
            perc = losses.perceptual(perc_out, perc_gt)
            sty = losses.style(style_out, style_gt)
            l1 = isnet_losses.hole_normalised_l1(out, image, hole)
            g_loss = (cfg["w_l1"] * l1 + cfg["w_adv"] * adv + cfg["w_perceptual"] * perc
                      + cfg["w_style"] * sty + cfg["w_fm"] * fm)
        ctx.step("generator", g_loss)
        return {"g": g_loss.item(), "l1": l1.item(), "adv": adv.item(), "perceptual": perc.item(),
                "style": sty.item(), "fm": fm.item(), "d": d_loss.item()}

    def inpaint(self, image: torch.Tensor, hole: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        h, w = image.shape[-2:]
        x = pad_to_multiple(image * (1 - hole), self.multiple)
        return self.nets["generator"](x)[..., :h, :w]

    @staticmethod
    def import_checkpoint(source: Path, out: Path) -> Path:
        """Convert the official InpaintingModel_gen.pth (see convert.py)."""
        from backend.methods.isnet.convert import import_checkpoint

        return import_checkpoint(source, out)
