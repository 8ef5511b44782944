"""The one interface every inpainting engine implements, classical or learned.

An engine sees only the crop the region pipeline prepared for it: an RGB tensor
at its working size and a binary hole mask. Everything about whole images
(selections, grow/feather, scaling, blending, pasting) lives in region.py, so
an engine is a pure function from (image, hole) to a filled image.
"""
from __future__ import annotations

import math
import re
import reprlib
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch

Kind = Literal["classical", "learned"]
Status = Literal["ready", "untrained", "broken"]


class Cancelled(Exception):
    """Raised inside engine work when the job that asked for it was cancelled."""


class OutOfTime(Exception):
    """Raised inside engine work when its job has run past the server's time budget."""


class OptionError(ValueError):
    """An engine-specific option is unknown or out of range (reported as HTTP 400)."""


_NUMERALS = {int: re.compile(r"[+-]?[0-9]+"), float: re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")}


def to_number(value: Any, kind: type) -> int | float:
    """`value` as an int or float; ValueError for anything else. Strings must be plain ASCII numerals: Python's
    int() and float() also take "1_000", Arabic-Indic digits and padding, which no client means as a number."""
    if isinstance(value, str):
        if not _NUMERALS[kind].fullmatch(value):
            raise ValueError(value)
        value = kind(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(value)
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(value)
    return float(value)  # OverflowError for an int too large for a float


def shown(value: Any) -> str:
    """A value for an error message: short, whatever its size or nesting."""
    return reprlib.repr(value)


@dataclass(frozen=True)
class SizeRules:
    """What input sizes an engine accepts.

    multiple: width and height must be multiples of this (padding is added).
    minimum:  width and height must be at least this (padding is added).
    native:   the resolution the engine works best at; crops whose longer side
              exceeds it are scaled down to it and the result scaled back up.
              None means the engine works at any resolution.
    fixed:    the engine takes exactly native x native (a fully connected
              bottleneck, say): every crop is made square with real context
              where the image has it and scaled to that size, up or down.
    """

    multiple: int = 1
    minimum: int = 1
    native: int | None = None
    fixed: bool = False

    def __post_init__(self):
        if self.fixed and not self.native:
            raise ValueError("a fixed input size needs native")

    def as_dict(self) -> dict[str, Any]:
        return {"multiple": self.multiple, "minimum": self.minimum, "native": self.native, "fixed": self.fixed}


@dataclass(frozen=True)
class Param:
    """One engine-specific option, declared so the API can validate and list it."""

    type: type  # int, float or str
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    odd: bool = False  # an int that must be odd (a patch with a centre pixel)

    def parse(self, name: str, value: Any) -> Any:
        try:
            v = to_number(value, self.type) if self.type in (int, float) else self.type(value)
        except (TypeError, ValueError, OverflowError):
            raise OptionError(f"option '{name}' must be {self.type.__name__}, got {shown(value)}") from None
        if self.type is float and not math.isfinite(v):
            raise OptionError(f"option '{name}' must be a finite number, got {shown(value)}")
        if self.choices is not None and v not in self.choices:
            raise OptionError(f"option '{name}' must be one of {', '.join(self.choices)}, got {shown(v)}")
        if self.minimum is not None and v < self.minimum:
            raise OptionError(f"option '{name}' must be >= {self.minimum}, got {v}")
        if self.maximum is not None and v > self.maximum:
            raise OptionError(f"option '{name}' must be <= {self.maximum}, got {v}")
        if self.odd and v % 2 == 0:
            raise OptionError(f"option '{name}' must be odd, got {v}")
        return v

    def as_dict(self) -> dict[str, Any]:
        d = {"type": self.type.__name__, "default": self.default, "help": self.help}
        for key in ("minimum", "maximum", "choices"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        if self.odd:
            d["odd"] = True
        return d


def parse_params(params: dict[str, Param], given: dict[str, Any] | None, owner: str) -> dict[str, Any]:
    """Validate `given` against declared options (OptionError on unknown names or bad values); defaults fill the rest."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(params))
    if unknown:
        known = ", ".join(sorted(params)) or "none"
        raise OptionError(f"unknown option(s) for '{owner}': {', '.join(unknown)} (known: {known})")
    return {k: p.parse(k, given[k]) if k in given else p.default for k, p in params.items()}


@dataclass
class InpaintOptions:
    """What one engine call gets besides pixels: a seed and its validated parameters.

    choices: an engine that picks a method per connected region of the hole
    appends one id per region here, so the response can say what ran where.
    """

    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    source: torch.Tensor | None = None  # (1, 1, H, W), 1 where patches may be copied from; None = anywhere known
    choices: list[str] = field(default_factory=list)

    def generator(self, device: torch.device | str) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(self.seed)


class Progress:
    """Progress reporting and cancellation, handed down from a job to an engine.

    Calling it reports a fraction in 0..1 of the current span and raises
    Cancelled once the job is cancelled, or OutOfTime once time.monotonic()
    passes `deadline`, so engines only need to call it now and then (e.g.
    once per pyramid level or iteration).
    """

    def __init__(
        self,
        report: Callable[[float, str], None] | None = None,
        cancel: threading.Event | None = None,
        start: float = 0.0,
        span: float = 1.0,
        deadline: float | None = None,
    ):
        self._report = report
        self._cancel = cancel
        self._start = start
        self._span = span
        self._deadline = deadline

    def __call__(self, fraction: float, message: str = "") -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled("cancelled")
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise OutOfTime("past the time budget")
        if self._report is not None:
            f = min(max(fraction, 0.0), 1.0)
            self._report(self._start + self._span * f, message)

    def span(self, start: float, span: float) -> "Progress":
        """A child reporting into [start, start+span] of this one's range."""
        return Progress(self._report, self._cancel, self._start + self._span * start, self._span * span, self._deadline)

    @property
    def cancelled(self) -> bool:
        return self._cancel is not None and self._cancel.is_set()


class Engine(ABC):
    """Base class of every engine. Subclasses set the class attributes and implement inpaint()."""

    id: str = ""  # unique id in the registry, e.g. "patchmatch" or a checkpoint's name
    method: str = ""  # method id: patchmatch, diffusion, isnet, imt, cisi, nfgan, semantic
    kind: Kind = "classical"
    description: str = ""
    size: SizeRules = SizeRules()
    params: dict[str, Param] = {}
    needs_gradients: bool = False  # True: inpainting itself optimises (a latent search), so autograd stays on
    blends_itself: bool = False  # True: the engine joins its fill to the photo by an option of its own (no tone match)
    copies_patches: bool = False  # True: the engine copies known patches, so a sampling area (options.source) applies

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)

    def status(self) -> tuple[Status, str]:
        """(status, reason); reason is empty when ready."""
        return "ready", ""

    def info(self) -> dict[str, Any]:
        """Extra facts for GET /api/v1/models (training summary, metrics...)."""
        return {}

    def parse_params(self, given: dict[str, Any] | None) -> dict[str, Any]:
        return parse_params(self.params, given, self.id)

    @abstractmethod
    def inpaint(self, image: torch.Tensor, hole: torch.Tensor, options: InpaintOptions, progress: Progress) -> torch.Tensor:
        """Fill the hole.

        image: (1, 3, H, W) float32 in [0, 1] on self.device, H and W obeying self.size.
        hole:  (1, 1, H, W) float32, 1 where pixels must be generated, 0 where known.
               Pixels under the hole in `image` carry no information (may be anything).
        Returns (1, 3, H, W) in [0, 1]. Only pixels under the hole are used.
        """
