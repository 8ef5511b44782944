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
        s.backend_command = text["backend_command"]
        return s

    def fields_for(self, model: str) -> dict[str, str]:
        """The form fields of one request to POST /api/v1/jobs."""
        out = {"output": "layer", "grow": str(self.grow), "feather": str(self.feather),
               "context": "auto" if self.context is None else str(self.context), "blend": self.blend.value}
        if model:
            out["model"] = model
        return out


def _int(text: str, default: int, lo: int, hi: int) -> int:
    try:
        return min(hi, max(lo, int(text)))
    except ValueError:
        return default
