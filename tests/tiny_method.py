"""A tiny learned method for testing the trainer, checkpoints and serving without a paper-sized network."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backend.methods import register
from backend.training.method import Method


class TinyNet(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(4, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=4, dilation=4), nn.ReLU(),
            nn.Dropout2d(0.1),  # exercises the RNG state a resume must restore
            nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, image, hole):
        return torch.sigmoid(self.body(torch.cat([image, hole], 1)))


@register
class TinyMethod(Method):
    id = "tiny"
    description = "Test network."
    recipes = {"paper": {"width": 16, "lr": 3e-3, "batch": 4, "size": 32, "steps": 20, "val_every": 10,
                         "save_every": 10, "log_every": 1, "workers": 0}}
    multiple = 4

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
