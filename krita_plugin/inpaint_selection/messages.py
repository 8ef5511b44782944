"""The last error, in plain words: what went wrong and what to do about it."""
from __future__ import annotations

from .client import BackendError


class Refused(Exception):
    """A fill that is not started, for a reason the user can fix (nothing selected, no document...)."""


NO_DOCUMENT = "Open or create an image first."
NOTHING_SELECTED = "Nothing is selected. Select the area to fill first (any selection tool; soft edges are kept)."
EVERYTHING_SELECTED = ("The whole image is selected, so there is nothing to fill it from. "
                       "Select only the area to fill.")
BUSY = "A fill is already running. Wait for it or press Cancel."
NO_READY_MODEL = "The backend has no ready model. Train or download one, or pick a classical engine."
NOTHING_TO_COMPARE = "Tick at least one ready model to compare."
NO_SAMPLE_NODE = ("Sample from: a painted area needs the name of the layer or selection mask painted over the "
                  "area to copy from.")
CANCELLED = "Cancelled. Nothing was added to the image."


def explain(error: BaseException, url: str = "") -> str:
    if isinstance(error, Refused):
        return str(error)
    if not isinstance(error, BackendError):
        return f"Unexpected error: {type(error).__name__}: {error}"
    code, detail = error.code, error.detail
    where = url or "the configured address"
    if code == "not_running":
        return (f"The backend is not running at {where}. Start it with 'inpaint-backend serve' "
                "(or press Start backend), then try again.")
    if code in ("unreachable", "bad_url"):
        return f"Cannot reach the backend at {where}: {detail}. Check the server URL."
    if code == "timeout":
        return f"The backend at {where} did not answer in time. It may be busy; try again or press Cancel."
    if code == "unauthorized":
        return "The backend wants a token. Enter the token it was started with (--token) in the docker."
    if code == "model_not_ready":
        return f"That model cannot run yet: {detail}. Pick a ready model."
    if code == "unknown_model":
        return f"The backend does not know that model ({detail}). Press Refresh to reload the list."
    if code == "empty_mask":
        return ("The selection is empty (or shrank to nothing). Select the area to fill, "
                "or raise Grow (it shrinks when negative).")
    if code == "full_mask":
        return "The selection covers everything the backend was sent; lower Grow or Feather, or select less."
    if code == "source_too_small":
        return ("The sampling area leaves nothing to copy from near the selection: widen Sample width, paint a "
                "larger area, or raise Context.")
    if code == "no_transparent":
        return ("Fill transparent areas is ticked, but the layer has no fully transparent pixels (the visible "
                "image has an opaque background). Untick it, or read from the layer.")
    if code in ("image_too_large", "upload_too_large"):
        return f"The area is too large for the backend: {detail}. Select a smaller area or lower Context."
    if code == "cancelled":
        return CANCELLED
    if code == "bad_response":
        return f"The server at {where} answered something unexpected: {detail}. Is it the inpaint backend?"
    if code == "internal":
        return f"The backend failed: {detail}. Its console shows the details."
    return f"The backend refused: {detail or code}."
