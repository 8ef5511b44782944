"""Neural-features GAN as a trainable, servable method: one generator, global and local discriminators, VGG conv3 loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from backend.methods.nfgan.model import GLOBAL_D, LOCAL_D, Discriminator, Generator
from backend.methods.nfgan.recipe import RECIPES
from backend.training.features import IMAGENET_TO_CAFFE, feature_network, vgg16_hed
from backend.training.method import Method, StepContext

CONV3_1 = 10  # index in VGG `features` (methods.md §6): conv3_1 before its ReLU


def per_image_sum(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).sum(1).mean()


def gan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-log D(real) - log(1 - D(fake)), averaged over the logit maps (paper eq. 1)."""
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def gan_g(fake: torch.Tensor) -> torch.Tensor:
    """-log D(G(z)): the non-saturating form of eq. 1's generator term, as DCGAN trains it."""
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def local_windows(hole: torch.Tensor, size: int) -> list[tuple[int, int]]:
    """Top-left corner of a size x size window per image on the hole's own box: centred on it, kept inside.

    With the paper's 8x8 centre hole and an 8x8 window this is exactly the hole; a larger hole is judged
    on its centre, a smaller one with some context around it. An image without hole gets the centre.
    Computed for the whole batch at once: one transfer from the device, not a few per image."""
    _, _, h, w = hole.shape

    def twice_centre(occupied: torch.Tensor, n: int) -> torch.Tensor:  # first + last occupied index + 1, per image
        idx = torch.arange(n, device=occupied.device)
        first = torch.where(occupied, idx, n).amin(1)
        last = torch.where(occupied, idx, -1).amax(1)
        return torch.where(occupied.any(1), first + last + 1, torch.full_like(first, n))

    filled = hole[:, 0] > 0
    cy, cx = twice_centre(filled.any(2), h), twice_centre(filled.any(1), w)
    ys = ((cy - size) // 2).clamp(0, h - size)
    xs = ((cx - size) // 2).clamp(0, w - size)
    return list(zip(ys.tolist(), xs.tolist()))


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
    general = False

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
            # Activations on the scale of [0, 1] pixels: the HED network reads 0-255 (Caffe), VGG19 normalised input.
            self._feature_scale = (IMAGENET_TO_CAFFE if name == "vgg19" else 1.0) / 255
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
            terms = self.generator_terms(image, out, fake, corners)
            weights = self.loss_weights(step)
            g_loss = sum(weights[k] * v for k, v in terms.items())
        ctx.step("generator", g_loss)
        return {"g": g_loss.item(), "l2": terms["l2"].item(), "adv_global": terms["global"].item(),
                "adv_local": terms["local"].item(), "neural": terms["feature"].item(),
                "d_global": d_global.item(), "d_local": d_local.item()}

    def loss_weights(self, step: int) -> dict[str, float]:
        """The generator's term weights at a step: the recipe's, with the GAN terms ramped in linearly over
        `gan_warmup` steps (0: from the start, as the paper). The ramp lets the reconstruction settle before
        the discriminators, which on a few dozen photos soon outplay a young generator, pull it around."""
        cfg = self.config
        warmup = int(cfg.get("gan_warmup", 0))
        ramp = min(1.0, step / warmup) if warmup > 0 else 1.0
        return {"l2": cfg["w_l2"], "global": ramp * cfg["w_global"], "local": ramp * cfg["w_local"],
                "feature": cfg["w_feature"]}

    def generator_terms(self, image: torch.Tensor, out: torch.Tensor, fake: torch.Tensor,
                        corners: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
        """The generator's unweighted terms, by the name of their weight (w_l2, w_global, w_local, w_feature).

        L2 and L_n are sums over each image's elements (eq. 2 writes L_n as one), pixels in [0, 1] and features
        on that pixel scale; the GAN terms are means over their logit maps. Under these reductions the paper's
        weights (1, 200, 200, 0.05) give every term a share of the gradient (recipe.py has the measurement)."""
        size = int(self.config["local_size"])
        with torch.no_grad():
            target = self.neural_features(image)
        return {
            "l2": per_image_sum((out - image) ** 2),  # the generated image against the original, every pixel
            "global": gan_g(self.nets["global_d"](fake).float()),
            "local": gan_g(self.nets["local_d"](crop(fake, corners, size)).float()),
            "feature": per_image_sum((self.neural_features(out) - target) ** 2),  # eq. 2
        }

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
