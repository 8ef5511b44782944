"""What the docker remembers between sessions, kept in kritarc under [inpaint_selection]."""
from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from .client import DEFAULT_URL

GROUP = "inpaint_selection"


class Source(str, enum.Enum):
    LAYER = "layer"  # the active layer's own pixels
    VISIBLE = "visible"  # the composite of every visible layer


class SampleFrom(str, enum.Enum):
    """Where the fill may copy from (the API's sampling area); engines that do not copy patches ignore it."""

    WHOLE = "whole"  # everything outside the selection
    AROUND = "around"  # within sample_width of the selection, all around it
    SIDES = "sides"  # ... only left and right of it
    ABOVE_BELOW = "above_below"  # ... only above and below it
    PAINTED = "painted"  # where the layer or selection mask named sample_node is > 50% (alpha or grey)


MAX_VARIATIONS = 8
MAX_SEED = 2**31 - 1  # the API's


class Blend(str, enum.Enum):
    ALPHA = "alpha"
    POISSON = "poisson"


@dataclass
class Settings:
    url: str = DEFAULT_URL
    token: str = ""
    model: str = ""  # "" = the backend's default
    compare: list[str] = field(default_factory=list)  # models ticked for compare mode
    source: Source = Source.LAYER
    grow: int = 0
    feather: int = 0
    context: int | None = None  # None = auto
    blend: Blend = Blend.ALPHA
    sample: SampleFrom = SampleFrom.WHOLE
    sample_width: int = 50  # px, for around, sides and above_below
    sample_node: str = ""  # the layer or selection mask whose pixels are the painted sampling area
    fill_transparent: bool = False  # the layer's fully transparent pixels are filled too (canvas extension)
    variations: int = 1  # fills per model, with seeds seed, seed + 1, ...
    seed: int = -1  # -1: a random first seed per fill
    backend_command: str = ""  # starts a local backend, e.g. '/venv/bin/python -m backend.cli serve --models-dir /x'

    def save(self, write: Callable[[str, str], None]) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "compare":
                value = ",".join(value)
            elif f.name == "context":
                value = "auto" if value is None else str(value)
            elif isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, bool):
                value = "1" if value else "0"
            write(f.name, str(value))

    @classmethod
    def load(cls, read: Callable[[str, str], str]) -> Settings:
        s = cls()
        text = {f.name: read(f.name, "") for f in fields(cls)}
        s.url = text["url"] or s.url
        s.token = text["token"]
        s.model = text["model"]
        s.compare = [m for m in text["compare"].split(",") if m]
        s.source = Source(text["source"]) if text["source"] in Source._value2member_map_ else s.source
        s.blend = Blend(text["blend"]) if text["blend"] in Blend._value2member_map_ else s.blend
        s.grow = _int(text["grow"], 0, -500, 500)
        s.feather = _int(text["feather"], 0, 0, 500)
        s.context = None if text["context"] in ("", "auto") else _int(text["context"], 0, 0, 4096)
        s.sample = SampleFrom(text["sample"]) if text["sample"] in SampleFrom._value2member_map_ else s.sample
        s.sample_width = _int(text["sample_width"], 50, 1, 10000)
        s.sample_node = text["sample_node"]
        s.fill_transparent = text["fill_transparent"] == "1"
        s.variations = _int(text["variations"], 1, 1, MAX_VARIATIONS)
        s.seed = _int(text["seed"], -1, -1, MAX_SEED)
        s.backend_command = text["backend_command"]
        return s

    def fields_for(self, model: str, seed: int | None = None) -> dict[str, str]:
        """The form fields of one request to POST /api/v1/jobs (a painted sampling area goes as a file)."""
        out = {"output": "layer", "grow": str(self.grow), "feather": str(self.feather),
               "context": "auto" if self.context is None else str(self.context), "blend": self.blend.value}
        if model:
            out["model"] = model
        if seed is not None:
            out["seed"] = str(seed)
        if self.sample in (SampleFrom.AROUND, SampleFrom.SIDES, SampleFrom.ABOVE_BELOW):
            out["source_preset"], out["source_width"] = self.sample.value, str(self.sample_width)
        if self.fill_transparent:
            out["fill_transparent"] = "1"
        return out

    def seeds(self, first: int) -> list[int]:
        """The seeds of one fill's variations: `seed` and on when set, else `first` (a random one) and on."""
        start = min(self.seed if self.seed >= 0 else first, MAX_SEED - MAX_VARIATIONS)
        return [start + i for i in range(max(1, min(MAX_VARIATIONS, self.variations)))]


def _int(text: str, default: int, lo: int, hi: int) -> int:
    try:
        return min(hi, max(lo, int(text)))
    except ValueError:
        return default
