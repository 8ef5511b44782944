"""A tiny learned method for testing the trainer, checkpoints and serving without a paper-sized network."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backend.methods import register
from backend.training.method import Method


class TinyNet(nn.Module):
    """A three-level encoder-decoder: small, but its receptive field spans a whole 64 px crop."""

    def __init__(self, width: int):
        super().__init__()
        w = width
        self.down = nn.ModuleList([nn.Conv2d(4, w, 3, 2, 1), nn.Conv2d(w, 2 * w, 3, 2, 1), nn.Conv2d(2 * w, 4 * w, 3, 2, 1)])
        self.middle = nn.Conv2d(4 * w, 4 * w, 3, padding=2, dilation=2)
        self.up = nn.ModuleList([nn.Conv2d(8 * w, 2 * w, 3, padding=1), nn.Conv2d(4 * w, w, 3, padding=1),
                                 nn.Conv2d(2 * w, w, 3, padding=1)])
        self.dropout = nn.Dropout2d(0.1)  # exercises the RNG state a resume must restore
        self.out = nn.Conv2d(w + 4, 3, 3, padding=1)

    def forward(self, image, hole):
        x = torch.cat([image, hole], 1)
        features = [x]
        for conv in self.down:
            features.append(F.relu(conv(features[-1])))
        y = self.dropout(F.relu(self.middle(features[-1])))
        for conv, skip in zip(self.up, reversed(features[1:])):  # 1/8, 1/4, 1/2 scale skips
            y = F.interpolate(F.relu(conv(torch.cat([y, skip], 1))), scale_factor=2, mode="nearest")
        return torch.sigmoid(self.out(torch.cat([y, x], 1)))


@register
class TinyMethod(Method):
    id = "tiny"
    description = "Test network."
    recipes = {"paper": {"width": 16, "lr": 3e-3, "batch": 4, "size": 32, "steps": 20, "val_every": 10,
                         "save_every": 10, "log_every": 1, "workers": 0}}
    multiple = 8

    def build_networks(self):
        return {"generator": TinyNet(self.config["width"])}

    def build_optimizers(self):
        return {"generator": torch.optim.Adam(self.nets["generator"].parameters(), lr=self.config["lr"])}

    def build_schedulers(self, optimizers):
        return {"generator": torch.optim.lr_scheduler.StepLR(optimizers["generator"], step_size=5, gamma=0.9)}

    def train_step(self, image, hole, ctx, step):
        with ctx.autocast():
            out = self.nets["generator"](image * (1 - hole), hole)
            loss = F.l1_loss(out * hole, image * hole) * 6 + F.l1_loss(out * (1 - hole), image * (1 - hole))
        ctx.step("generator", loss)
        return {"l1": loss.item()}

    def inpaint(self, image, hole, generator=None):
        return self.nets["generator"](image, hole)
