"""Yeh et al.'s semantic inpainting as a trainable, servable method: a DCGAN, a latent search, Poisson blending."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from backend.engines.base import InpaintOptions, Param, Progress
from backend.engines.poisson import poisson_blend
from backend.methods.semantic.model import FAKE, REAL, SIZE, Discriminator, Generator
from backend.methods.semantic.recipe import RECIPES
from backend.methods.semantic.search import search_latent
from backend.training.method import Method, StepContext, unwrap

# Sweeps per pyramid level of the Poisson solve: at 64x64, 200 bring the Laplacian of the result
# within 1e-3 of the generated image's (6, the smooth-fill default, leaves ~15 % of it) in ~0.1 s.
BLEND_SWEEPS = 200


def classes(logits: torch.Tensor, label: int) -> torch.Tensor:
    """Cross-entropy of D's two-class softmax against one class for the whole batch."""
    return F.cross_entropy(logits.float(), torch.full((logits.shape[0],), label, device=logits.device))


class SemanticInpainting(Method):
    id = "semantic"
    description = ("Semantic inpainting (Yeh et al., CVPR 2017): a DCGAN trained on whole images; a fill is "
                   "the generated image whose code best fits the selection's surroundings, Poisson-blended in.")
    recipes = RECIPES
    inference_networks = ("generator", "discriminator")  # the search needs D for its prior loss
    multiple = 1
    fixed_size = True  # a DCGAN draws exactly 64x64 images
    general = False
    needs_gradients = True  # the latent search backpropagates through G and D
    blends_itself = True  # Poisson blending or a plain paste, by the `blend` option (the paper's Fig. 5 compares them)
    params = {
        "iterations": Param(int, 1500, "Adam steps of the latent search (the paper stops at 1500)", 0, 20_000),
        "candidates": Param(int, 16, "random starting codes searched side by side; the best fit wins", 1, 512),
        "blend": Param(str, "poisson", "how the generated pixels join the photo: Poisson blending or a plain paste",
                       choices=("poisson", "paste")),
        "prior_weight": Param(float, 0.003, "lambda, the weight of the prior (discriminator) loss in the search; "
                                            "0 searches on the context loss alone (the paper's Fig. 4)", 0.0, 10.0),
    }

    def build_networks(self):
        size, width = int(self.config["size"]), int(self.config["width"])
        if size != SIZE:
            raise ValueError(f"the DCGAN generates {SIZE}x{SIZE} images; size must be {SIZE}, got {size}")
        return {"generator": Generator(width), "discriminator": Discriminator(width)}

    def build_optimizers(self):
        betas = tuple(float(b) for b in self.config["betas"])
        return {name: torch.optim.Adam(net.parameters(), lr=self.config["lr"], betas=betas) for name, net in self.nets.items()}

    def train_step(self, image: torch.Tensor, hole: torch.Tensor, ctx: StepContext, step: int) -> dict[str, float]:
        """One DCGAN step on complete images (the hole masks are not used in training)."""
        G, D = self.nets["generator"], self.nets["discriminator"]
        real = image * 2 - 1
        z = torch.rand(real.shape[0], unwrap(G).z_dim, device=real.device) * 2 - 1  # z ~ U[-1, 1]
        with ctx.autocast():
            fake = G(z)
            d_loss = classes(D(real), REAL) + classes(D(fake.detach()), FAKE)
        ctx.step("discriminator", d_loss)
        with ctx.autocast():
            g_loss = classes(D(fake), REAL)  # -log D(G(z)): the non-saturating form DCGAN trains with
        ctx.step("generator", g_loss)
        return {"d": d_loss.item(), "g": g_loss.item()}

    def drawn_samples(self) -> torch.Tensor:
        """32 images from fixed codes: the same codes at every validation, so the grids show training progress."""
        G = self.nets["generator"]
        z = torch.rand(32, G.z_dim, generator=torch.Generator().manual_seed(0)) * 2 - 1
        return (G(z.to(self.device)) + 1) / 2

    def complete(self, image: torch.Tensor, hole: torch.Tensor, iterations: int, candidates: int, blend: str = "poisson",
                 generator: torch.Generator | None = None, progress: Progress | None = None,
                 prior_weight: float | None = None) -> torch.Tensor:
        """Search, then blend. image (B, 3, H, W) in [0, 1]; any other size goes through 64x64 and back,
        as serving does (the region pipeline hands this method 64x64 crops)."""
        hole = (hole > 0.5).float()
        h, w = image.shape[-2:]
        if (h, w) != (SIZE, SIZE):
            cover = F.interpolate(1 - hole, size=(SIZE, SIZE), mode="area")
            small = F.interpolate(image * (1 - hole), size=(SIZE, SIZE), mode="area") / cover.clamp(min=1e-6)
            small_hole = (cover < 0.999).float()  # a 64x64 pixel is known only if all it covers is
            out = self.complete(small * (1 - small_hole), small_hole, iterations, candidates, blend, generator, progress,
                                prior_weight)
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
            return (out * hole + image * (1 - hole)).clamp(0, 1)
        G, D = self.nets["generator"], self.nets["discriminator"]
        report = None
        if progress is not None:
            report = lambda i: progress(i / max(iterations, 1), f"searching the latent space: {i}/{iterations}")  # noqa: E731
        with torch.enable_grad():  # validation and serving run under no_grad; the search needs gradients
            found = search_latent(G, D, image * 2 - 1, 1 - hole, iterations=iterations, candidates=candidates,
                                  prior_weight=float(self.config["prior_weight"] if prior_weight is None else prior_weight),
                                  window=int(self.config["window"]),
                                  lr=float(self.config["z_lr"]), generator=generator, progress=report)
        fill = (found.image.detach() + 1) / 2
        if blend == "poisson":  # §3.3: keep G's gradients, take the colours at the border from the photo
            fill = poisson_blend(fill, image, hole, sweeps=BLEND_SWEEPS)
        return (fill * hole + image * (1 - hole)).clamp(0, 1)

    def inpaint(self, image: torch.Tensor, hole: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The validation path: a short search (val_iterations x val_candidates)."""
        cfg = self.config
        return self.complete(image, hole, int(cfg["val_iterations"]), int(cfg["val_candidates"]), generator=generator)

    def serve(self, image: torch.Tensor, hole: torch.Tensor, options: InpaintOptions, progress: Progress) -> torch.Tensor:
        p: dict[str, Any] = options.params
        return self.complete(image, hole, p["iterations"], p["candidates"], p["blend"],
                             options.generator(self.device), progress, p.get("prior_weight"))  # absent: the config's
