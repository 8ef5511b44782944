"""The model picker's contents, from GET /api/v1/models: ready models first, the rest greyed with their reason."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelChoice:
    id: str
    kind: str  # classical | learned
    status: str  # ready | untrained | broken
    reason: str
    description: str
    minimum: int  # the engine's smallest input side, in px
    summary: str = ""  # a checkpoint's card in one line: against Telea, trained on what, for how long
    general: bool = True  # False: good for one setting only (e.g. small selections): listed after the general ones

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def label(self) -> str:
        if not self.ready:
            return f"{self.id} ({self.status})"
        return f"{self.id} ({self.kind})" + (f" · {self.summary}" if self.summary else "")

    @property
    def tooltip(self) -> str:
        text = self.description or self.id
        if self.summary:
            text += f"\n{self.summary}"
        return text if self.ready else f"{text}\nNot usable: {self.reason or self.status}"


def parse_models(payload: dict[str, Any]) -> tuple[str, list[ModelChoice]]:
    """(default id, choices): ready first with the default at the top, then the general engines before the
    narrow ones, then by kind and id."""
    default = str(payload.get("default") or "")
    choices = []
    for entry in payload.get("models") or []:
        if not isinstance(entry, dict) or not entry.get("id"):
            continue
        size = entry.get("size") if isinstance(entry.get("size"), dict) else {}
        choices.append(ModelChoice(
            id=str(entry["id"]), kind=str(entry.get("kind", "")), status=str(entry.get("status", "broken")),
            reason=str(entry.get("reason") or ""), description=str(entry.get("description") or ""),
            minimum=int(size.get("minimum") or 1), summary=str(entry.get("summary") or ""),
            general=entry.get("general") is not False))
    choices.sort(key=lambda c: (not c.ready, c.id != default, not c.general, c.kind != "learned", c.id))
    return default, choices


def pick(choices: list[ModelChoice], wanted: str, default: str) -> str:
    """The model to preselect: the user's last choice while it is ready, else the default, else the first ready one."""
    ready = [c.id for c in choices if c.ready]
    for candidate in (wanted, default):
        if candidate in ready:
            return candidate
    return ready[0] if ready else ""
