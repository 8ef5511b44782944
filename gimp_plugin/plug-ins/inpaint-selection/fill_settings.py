"""What one "Inpaint Selection" run asks for: the choices of the dialog (or of a PDB caller), as plain data."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from enum import Enum
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:7860"
AUTO = -1  # context: let the backend pick about half the region's size
TOKEN_ENV = "INPAINT_BACKEND_TOKEN"  # read when the token field is empty, so it need not be stored in GIMP's profile


class Source(str, Enum):
    LAYER = "layer"  # the active drawable's own pixels
    VISIBLE = "visible"  # what the canvas shows: for groups, text layers, or filling behind several layers


@dataclass(frozen=True)
class FillSettings:
    model: str = ""  # "" = the server's default engine
    grow: int = 2
    feather: int = 2
    context: int = AUTO
    source: Source = Source.LAYER
    url: str = DEFAULT_URL
    token: str = ""

    @classmethod
    def from_values(cls, get) -> "FillSettings":
        """Settings from a getter by argument name, e.g. a GIMP procedure config's get_property.

        GIMP hands an empty string argument over as None once its registration comes from the
        pluginrc cache (every start after the first), so strings are coerced.
        """
        text = {name: get(name) or "" for name in ("model", "url", "token")}
        return cls(grow=get("grow"), feather=get("feather"), context=get("context"),
                   source=Source(get("source") or Source.LAYER.value), **text)

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
        token = self.token.strip() or os.environ.get(TOKEN_ENV, "").strip()
        return FillSettings(self.model.strip(), self.grow, self.feather, self.context, Source(self.source), url, token)

    def form_fields(self) -> dict[str, str]:
        """The multipart fields of POST /api/v1/jobs besides the image and the mask."""
        fields = {"output": "layer", "grow": str(self.grow), "feather": str(self.feather),
                  "context": "auto" if self.context < 0 else str(self.context)}
        if self.model:
            fields["model"] = self.model
        return fields


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
