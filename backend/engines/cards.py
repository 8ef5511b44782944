"""What a checkpoint's card says in one line, for the editors' model pickers.

The card (NAME.json beside the weights) holds the training facts the trainer
wrote and, once `inpaint-backend eval --into-cards` has scored the checkpoint,
its eval table beside the baselines of the same run. The pickers show how it
does against Telea there, what it was trained on and for how long, so a user
can tell a checkpoint worth picking from one that is not.
"""
from __future__ import annotations

from typing import Any

REFERENCE = "telea"  # the smooth baseline every learned checkpoint must beat


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def reference_margin(evaluation: Any, name: str) -> tuple[float, int] | None:
    """(mean hole PSNR of `name` minus Telea's over the card's eval buckets, the number of buckets), if it has them."""
    if not isinstance(evaluation, dict) or not isinstance(evaluation.get("summary"), dict):
        return None
    margins = []
    for row in evaluation["summary"].values():
        if not isinstance(row, dict):
            continue
        own, ref = row.get(name), row.get(REFERENCE)
        if isinstance(own, dict) and isinstance(ref, dict):
            a, b = _number(own.get("psnr")), _number(ref.get("psnr"))
            if a is not None and b is not None:
                margins.append(a - b)
    return (sum(margins) / len(margins), len(margins)) if margins else None


def summary(name: str, card: dict[str, Any]) -> str:
    """e.g. 'small selections, up to about 64 px · +0.8 dB vs Telea (5 buckets, 512 px) · 56 photos · 3,144 steps · 6.2 h'."""
    parts = []
    if isinstance(card.get("good_for"), str) and card["good_for"].strip():
        parts.append(card["good_for"].strip())
    margin = reference_margin(card.get("eval"), name)
    if margin is not None:
        size = _number(card["eval"].get("size"))
        where = f"{margin[1]} bucket{'s' if margin[1] != 1 else ''}" + (f", {size:.0f} px" if size else "")
        parts.append(f"{margin[0]:+.1f} dB vs Telea ({where})")
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    data = training.get("data") if isinstance(training.get("data"), dict) else {}
    photos, steps, hours = _number(data.get("train_photos")), _number(training.get("steps")), _number(training.get("hours"))
    if photos:
        parts.append(f"{photos:.0f} photos")
    if steps:
        parts.append(f"{steps:,.0f} steps")
    if hours:
        parts.append(f"{hours:.1f} h")
    return " · ".join(parts)
