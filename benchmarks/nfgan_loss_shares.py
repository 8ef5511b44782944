"""How much each Neural-features GAN loss term moves the generator: the gradient norm of each weighted term
over the L2 term's, on a fixed batch of photo crops, at several steps of a training run of the recipe.

    python benchmarks/nfgan_loss_shares.py [--recipe paper] [--steps 100] [--photos data/open-photos/train]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.methods import get_method  # noqa: E402
from backend.methods.nfgan.method import local_windows  # noqa: E402
from backend.training.data import MaskSpec, TrainingPhotos, find_photos  # noqa: E402
from backend.training.method import StepContext  # noqa: E402

MARKS = (0, 25, 50, 100, 200, 400, 800)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default="paper")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--photos", type=Path, default=Path("data/open-photos/train"))
    args = ap.parse_args()
    torch.manual_seed(0)
    cls = get_method("nfgan")
    cfg = cls.resolve_config(args.recipe, {})
    method = cls(cfg, torch.device("cpu"))
    size, batch = int(cfg["size"]), int(cfg["batch"])
    data = TrainingPhotos(find_photos(args.photos), size, MaskSpec(cfg["mask_kinds"], tuple(cfg["mask_ratio"])), 0,
                          crop_fraction=cfg["crop_fraction"], rotate=cfg["rotate"])

    def draw(k: int) -> list[torch.Tensor]:
        return [torch.stack(t) for t in zip(*(data[k * batch + i] for i in range(batch)))]

    probe_image, probe_hole = draw(10**6)  # a batch the training never sees
    ctx = StepContext(method.build_optimizers(), torch.device("cpu"), amp=False)
    G = method.nets["generator"]
    print(f"| step | {cfg['w_global']:g} L_b1 (global) | {cfg['w_local']:g} L_b2 (local) | {cfg['w_feature']:g} L_n |")
    print("|---|---|---|---|")
    for step in range(args.steps + 1):
        if step in MARKS or step == args.steps:
            out = G(probe_image, probe_hole).float()
            fake = out * probe_hole + probe_image * (1 - probe_hole)
            corners = local_windows(probe_hole, int(cfg["local_size"]))
            terms = method.generator_terms(probe_image, out, fake, corners)
            norm = {k: float(torch.cat([g.flatten() for g in torch.autograd.grad(
                cfg[f"w_{k}"] * v, list(G.parameters()), retain_graph=True)]).norm()) for k, v in terms.items()}
            print(f"| {step} | " + " | ".join(f"{norm[k] / norm['l2']:.3g}" for k in ("global", "local", "feature")) + " |",
                  flush=True)
        if step < args.steps:
            method.train_step(*draw(step), ctx, step)


if __name__ == "__main__":
    main()
