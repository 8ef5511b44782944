"""Neural-features GAN as a trainable, servable method: one generator, global and local discriminators, VGG conv3 loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from backend.methods.nfgan.model import GLOBAL_D, LOCAL_D, Discriminator, Generator
from backend.methods.nfgan.recipe import RECIPES
from backend.training.features import feature_network, vgg16_hed
from backend.training.method import Method, StepContext

CONV3_1 = 10  # index in VGG `features` (methods.md §6): conv3_1 before its ReLU
# torchvision's VGG19 reads (x - mean) / std with std ~0.226 on [0, 1] pixels; Caffe-style weights
# (HED) read x * 255 - mean. Scaling VGG19's activations by 255 * 0.226 puts both on one scale, so
# one w_feature serves either network (exact for the linear parts, close through the ReLUs).
VGG19_TO_CAFFE = 255 * 0.226


def per_image_sum(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).sum(1).mean()


def gan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-log D(real) - log(1 - D(fake)), averaged over the logit maps (paper eq. 1)."""
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def gan_g(fake: torch.Tensor) -> torch.Tensor:
    """-log D(G(z)): the non-saturating form of eq. 1's generator term, as DCGAN trains it."""
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def local_windows(hole: torch.Tensor, size: int, generator: torch.Generator | None = None) -> list[tuple[int, int]]:
    """Top-left corner of a size x size window per image, centred on a random hole pixel and kept inside."""
    b, _, h, w = hole.shape
    flat = hole.flatten(1).float() + 1e-6  # an image without hole still gets a window
    picks = torch.multinomial(flat.cpu(), 1, generator=generator).squeeze(1).tolist()
    return [(min(max(p // w - size // 2, 0), h - size), min(max(p % w - size // 2, 0), w - size)) for p in picks]


def crop(x: torch.Tensor, corners: list[tuple[int, int]], size: int) -> torch.Tensor:
    return torch.stack([x[i, :, y:y + size, z:z + size] for i, (y, z) in enumerate(corners)])


class NeuralFeaturesGAN(Method):
    id = "nfgan"
    description = ("Neural-features GAN (Liu et al., ICIMCS 2018): an encoder-decoder with a fully connected "
                   "bottleneck, global and local discriminators and a VGG conv3 feature loss.")
    recipes = RECIPES
    inference_networks = ("generator",)
    multiple = 1
    fixed_size = True  # the fully connected bottleneck ties the generator to its trained size

    def build_networks(self):
        size = int(self.config["size"])
        local = int(self.config["local_size"])
        if not 1 <= local <= size:
            raise ValueError(f"local_size must be between 1 and size ({size}), got {local}")
        return {"generator": Generator(size), "global_d": Discriminator(GLOBAL_D), "local_d": Discriminator(LOCAL_D)}

    def build_optimizers(self):
        betas = tuple(float(b) for b in self.config["betas"])
        return {name: torch.optim.Adam(net.parameters(), lr=self.config["lr"], betas=betas) for name, net in self.nets.items()}

    def features(self) -> torch.nn.Module:
        """The frozen conv3_1 network, built on first use: serving never needs it."""
        if getattr(self, "_features", None) is None:
            name, path = self.config.get("features", "vgg16-hed"), self.config.get("features_path")
            if name == "vgg16-hed":
                net = vgg16_hed(path, taps=(CONV3_1,))
            elif name == "vgg19":
                net = feature_network("vgg19", path, taps=(CONV3_1,))
            else:
                raise ValueError(f"features must be vgg16-hed or vgg19, got {name!r}")
            self._features = net.eval().requires_grad_(False).to(self.device)
            self._feature_scale = VGG19_TO_CAFFE if name == "vgg19" else 1.0
        return self._features

    def neural_features(self, x: torch.Tensor) -> torch.Tensor:
        net = self.features()
        return net(x)[0].float() * self._feature_scale

    def train_step(self, image: torch.Tensor, hole: torch.Tensor, ctx: StepContext, step: int) -> dict[str, float]:
        G, Dg, Dl, cfg = self.nets["generator"], self.nets["global_d"], self.nets["local_d"], self.config
        size = int(cfg["local_size"])
        with ctx.autocast():
            out = G(image, hole).float()
        # The discriminators judge the completed image: generated inside the hole, the photo outside.
        fake = out * hole + image * (1 - hole)
        corners = local_windows(hole, size)
        with ctx.autocast():
            d_global = gan_d(Dg(image).float(), Dg(fake.detach()).float())
            d_local = gan_d(Dl(crop(image, corners, size)).float(), Dl(crop(fake.detach(), corners, size)).float())
        ctx.step("global_d", d_global)
        ctx.step("local_d", d_local)

        with ctx.autocast():
            adv_global = gan_g(Dg(fake).float())
            adv_local = gan_g(Dl(crop(fake, corners, size)).float())
            # The generated image against the original, every pixel, in the pixel units of the loss network.
            l2 = per_image_sum(((out - image) * cfg["pixel_scale"]) ** 2)
            with torch.no_grad():
                target = self.neural_features(image)
            neural = per_image_sum((self.neural_features(out) - target) ** 2)  # eq. 2
            g_loss = cfg["w_l2"] * l2 + cfg["w_global"] * adv_global + cfg["w_local"] * adv_local + cfg["w_feature"] * neural
        ctx.step("generator", g_loss)
        return {"g": g_loss.item(), "l2": l2.item(), "adv_global": adv_global.item(), "adv_local": adv_local.item(),
                "neural": neural.item(), "d_global": d_global.item(), "d_local": d_local.item()}

    def inpaint(self, image: torch.Tensor, hole: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Any size in, same size out: scaled to the trained size and back (serving hands it that size already)."""
        G = self.nets["generator"]
        h, w = image.shape[-2:]
        if (h, w) == (G.size, G.size):
            return G(image, hole)
        small = F.interpolate(image, size=(G.size, G.size), mode="area")
        small_hole = (F.interpolate(hole, size=(G.size, G.size), mode="area") > 1e-3).float()
        out = G(small, small_hole)  # G blanks the hole itself
        return F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
