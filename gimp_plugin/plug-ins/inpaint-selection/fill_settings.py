"""What one "Inpaint Selection" run asks for: the choices of the dialog (or of a PDB caller), as plain data."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from enum import Enum
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:7860"
AUTO = -1  # context: let the backend pick about half the region's size
TOKEN_ENV = "INPAINT_BACKEND_TOKEN"  # read when the token field is empty, so it need not be stored in GIMP's profile
MAX_VARIATIONS = 8
MAX_SEED = 2**31 - 1  # the API's


class Source(str, Enum):
    LAYER = "layer"  # the active drawable's own pixels
    VISIBLE = "visible"  # what the canvas shows: for groups, text layers, or filling behind several layers


class SampleFrom(str, Enum):
    """Where the fill may copy from (the API's sampling area); engines that do not copy patches ignore it."""

    WHOLE = "whole"  # everything outside the selection
    AROUND = "around"  # within sample_width of the selection, all around it
    SIDES = "sides"  # ... only left and right of it
    ABOVE_BELOW = "above-below"  # ... only above and below it
    CHANNEL = "channel"  # where the saved channel named sample_channel is more than half white

    @property
    def preset(self) -> str | None:
        """The API's source_preset for it, if it is one."""
        return self.value.replace("-", "_") if self in (SampleFrom.AROUND, SampleFrom.SIDES, SampleFrom.ABOVE_BELOW) else None


@dataclass(frozen=True)
class FillSettings:
    model: str = ""  # "" = the server's default engine
    grow: int = 2
    feather: int = 2
    context: int = AUTO
    source: Source = Source.LAYER
    url: str = DEFAULT_URL
    token: str = ""
    sample: SampleFrom = SampleFrom.WHOLE
    sample_width: int = 50  # px, for around, sides and above-below
    sample_channel: str = ""  # the saved channel painted over the area to copy from
    fill_transparent: bool = False  # the layer's fully transparent pixels are filled too (canvas extension)
    variations: int = 1  # fills per model, with seeds seed, seed + 1, ...
    seed: int = -1  # -1: a random first seed
    compare: str = ""  # comma-separated model ids: one fill (one layer) per model instead of `model`

    @classmethod
    def from_values(cls, get) -> "FillSettings":
        """Settings from a getter by argument name (GIMP's: hyphens for underscores), e.g. a procedure config's
        get_property.

        GIMP hands an empty string argument over as None once its registration comes from the
        pluginrc cache (every start after the first), so strings are coerced.
        """
        text = {name: get(name.replace("_", "-")) or "" for name in ("model", "url", "token", "sample_channel", "compare")}
        return cls(grow=get("grow"), feather=get("feather"), context=get("context"),
                   source=Source(get("source") or Source.LAYER.value),
                   sample=SampleFrom(get("sample") or SampleFrom.WHOLE.value), sample_width=get("sample-width"),
                   fill_transparent=bool(get("fill-transparent")), variations=get("variations"), seed=get("seed"),
                   **text)

    def checked(self) -> "FillSettings":
        """The settings with a usable URL and token, or ValueError with words for the user."""
        url = self.url.strip().rstrip("/") or DEFAULT_URL
        if "://" not in url:
            url = "http://" + url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"The server URL '{self.url}' is not an http:// address like {DEFAULT_URL}.")
        if self.feather < 0:
            raise ValueError("Feather cannot be negative.")
        if not 1 <= self.variations <= MAX_VARIATIONS:
            raise ValueError(f"Variations must be between 1 and {MAX_VARIATIONS}.")
        if SampleFrom(self.sample) is SampleFrom.CHANNEL and not self.sample_channel.strip():
            raise ValueError("Sample from: a channel needs the name of a saved channel (Select > Save to Channel) "
                             "painted over the area to copy from.")
        token = self.token.strip() or os.environ.get(TOKEN_ENV, "").strip()
        return replace(self, model=self.model.strip(), source=Source(self.source), url=url, token=token,
                       sample=SampleFrom(self.sample), sample_channel=self.sample_channel.strip(),
                       compare=",".join(self.models_to_compare()))

    def models_to_compare(self) -> list[str]:
        return [m.strip() for m in self.compare.split(",") if m.strip()]

    def runs(self, first_seed: int) -> list[tuple[str, int | None]]:
        """(model, seed) of each fill: per ticked model when comparing (else the model), per variation.

        Variations use `seed`, seed + 1, ... (from `first_seed`, a random one, when seed is -1); a single fill
        without a seed of its own lets the backend pick one (None)."""
        models = self.models_to_compare() or [self.model]
        if self.variations > 1 or self.seed >= 0:
            start = min(self.seed if self.seed >= 0 else first_seed, MAX_SEED - MAX_VARIATIONS)
            seeds = [start + i for i in range(self.variations)]
        else:
            seeds = [None]
        return [(model, seed) for model in models for seed in seeds]

    def form_fields(self, model: str | None = None, seed: int | None = None) -> dict[str, str]:
        """The multipart fields of POST /api/v1/jobs besides the image, the mask and a painted sampling area.

        model: this fill's model (default: the settings' model)."""
        fields = {"output": "layer", "grow": str(self.grow), "feather": str(self.feather),
                  "context": "auto" if self.context < 0 else str(self.context)}
        model = self.model if model is None else model
        if model:
            fields["model"] = model
        if seed is not None:
            fields["seed"] = str(seed)
        preset = SampleFrom(self.sample).preset
        if preset:
            fields["source_preset"], fields["source_width"] = preset, str(self.sample_width)
        if self.fill_transparent:
            fields["fill_transparent"] = "1"
        return fields


def layer_name(source: str, model: str, seed: int | None, named_by_model: bool) -> str:
    """A result layer's name: "<source> (inpainted)", with its model when comparing models, and its model and
    seed when a seed was asked for (variations), e.g. "base (inpainted, patchmatch seed 123)"."""
    details = [model] if named_by_model or seed is not None else []
    if seed is not None:
        details.append(f"seed {seed}")
    return f"{source} (inpainted{', ' + ' '.join(details) if details else ''})"


_OVER_HALF = bytes(255 if v > 127 else 0 for v in range(256))


def over_half(levels: bytes) -> bytes:
    """A channel's 8-bit levels as a 0/255 sampling area: 255 where more than half white (at C speed)."""
    return levels.translate(_OVER_HALF)


# GIMP saves an interactive run's arguments twice: as last values in the profile, and as a persistent
# parasite inside the image, which ends up in every XCF file. A token must not travel with a shared
# XCF, so the GIMP side keeps it out of the arguments and in this user-only file instead.

def load_token(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def save_token(path: Path, token: str) -> None:
    """Store the token readable by the user alone; an empty token removes the file."""
    if not token:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token)
