"""Engines that need no weights. The first in ENGINES is the server's default."""
from backend.classical.auto import AutoEngine
from backend.classical.diffusion import DiffusionEngine
from backend.classical.patchmatch import PatchMatchEngine

ENGINES = [AutoEngine, PatchMatchEngine, DiffusionEngine]
