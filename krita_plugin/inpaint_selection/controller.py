"""The plugin's state and actions, shared by the docker(s) and the menu actions; no Qt, no Krita.

Blocking work (HTTP, PNG encoding, waiting for a started server) runs on a daemon
thread; its outcome comes back through `post`, which the Qt side makes run on the UI
thread. Tests pass a queue they pump themselves.
"""
from __future__ import annotations

import enum
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import fill, messages
from .client import BackendError, Client, is_loopback
from .fill import DocumentAccess
from .models import ModelChoice, parse_models, pick
from .pixels import Rgba
from .server_process import LocalServer
from .settings import MAX_SEED, MAX_VARIATIONS, Settings


class Connection(str, enum.Enum):
    UNKNOWN = "unknown"
    CHECKING = "checking"
    STARTING = "starting"
    CONNECTED = "connected"
    DOWN = "down"  # nothing answers at the URL
    ERROR = "error"  # something answers, but not usefully (token, wrong server...)


@dataclass
class Status:
    connection: Connection = Connection.UNKNOWN
    server: str = ""  # "inpaint-backend 0.1.0" when connected, else why not
    device: str = ""
    models: list[ModelChoice] = field(default_factory=list)
    default_model: str = ""
    can_start: bool = False
    busy: bool = False
    progress: float = 0.0
    progress_text: str = ""
    error: str = ""  # the last error, in plain words
    info: str = ""  # the last success
    last_crop: tuple[int, int, int, int] | None = None  # what the last fill read (shown, and checked in tests)


class Controller:
    def __init__(self, settings: Settings, save_settings: Callable[[Settings], None],
                 post: Callable[[Callable[[], None]], None], current_document: Callable[[], DocumentAccess | None],
                 decode_png: Callable[[bytes], Rgba], server: LocalServer | None = None):
        self.settings = settings
        self.status = Status()
        self._save = save_settings
        self._post = post
        self._current_document = current_document
        self._decode = decode_png
        self.server = server or LocalServer()
        self._listeners: list[Callable[[Status], None]] = []
        self._finished: list[Callable[[bool, str], None]] = []
        self._cancel = threading.Event()
        self._check_id = 0  # answers of superseded connection checks are dropped

    # -- observers -------------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[Status], None]) -> None:
        self._listeners.append(listener)
        listener(self.status)

    def unsubscribe(self, listener: Callable[[Status], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def on_finished(self, callback: Callable[[bool, str], None]) -> None:
        """callback(ok, message) after every fill or compare, refused ones included."""
        self._finished.append(callback)

    def _changed(self) -> None:
        s = self.status
        s.can_start = (s.connection is Connection.DOWN and bool(self.settings.backend_command)
                       and is_loopback(self.settings.url) and not self.server.running)
        for listener in list(self._listeners):
            listener(s)

    def _done(self, ok: bool, message: str, fill_ended: bool = False) -> None:
        """Report how a fill ended, or why one was refused before it started (a refusal leaves a running fill alone)."""
        s = self.status
        if fill_ended:
            s.busy = False
        s.error, s.info = ("", message) if ok else (message, "")
        self._changed()
        for callback in list(self._finished):
            callback(ok, message)

    def _error(self, message: str) -> None:
        self.status.error, self.status.info = message, ""
        self._changed()

    def _spawn(self, work: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        def body() -> None:
            try:
                result = work()
            except BaseException as e:  # noqa: BLE001 - every failure is reported in the docker
                self._post(lambda e=e: done(None, e))
            else:
                self._post(lambda: done(result, None))

        threading.Thread(target=body, name="inpaint-selection", daemon=True).start()

    def client(self) -> Client:
        return Client(self.settings.url, self.settings.token)

    def update_settings(self, **changes: Any) -> None:
        reconnect = any(k in changes and changes[k] != getattr(self.settings, k) for k in ("url", "token"))
        for key, value in changes.items():
            setattr(self.settings, key, value)
        self._save(self.settings)
        if reconnect:
            self.check_connection()
        else:
            self._changed()  # e.g. a new backend command changes whether Start backend is offered

    # -- connection ------------------------------------------------------------------------------
    def check_connection(self) -> None:
        self._check_id += 1
        check_id, client = self._check_id, self.client()
        self.status.connection = Connection.CHECKING
        self._changed()

        def work():
            return client.health(), client.models()

        def done(answer, error):
            if check_id != self._check_id:
                return
            s = self.status
            if error is None:
                health, listing = answer
                device = health.get("device") or {}
                s.connection = Connection.CONNECTED
                s.server = f"inpaint-backend {health.get('version', '?')}"
                s.device = f"{device.get('name', '?')} ({device.get('type', '?')})"
                s.default_model, s.models = parse_models(listing)
                self.settings.model = pick(s.models, self.settings.model, s.default_model)
                ready = {m.id for m in s.models if m.ready}
                self.settings.compare = [m for m in self.settings.compare if m in ready]
                if s.error.startswith("The backend is not running"):
                    s.error = ""
            else:
                down = isinstance(error, BackendError) and error.code == "not_running"
                s.connection = Connection.DOWN if down else Connection.ERROR
                s.server, s.device, s.models = messages.explain(error, client.url), "", []
            self._changed()

        self._spawn(work, done)

    def start_server(self, timeout: float = 120.0) -> None:
        """Start the configured local backend, then wait on a worker until it answers."""
        if not self.settings.backend_command:
            self._error("No local backend is configured: run 'inpaint-backend install-plugins --krita' "
                        "from the backend's environment, or start the backend yourself.")
            return
        try:
            self.server.start(self.settings.backend_command, self.settings.url)
        except (OSError, ValueError) as e:
            self._error(f"Could not start the backend ({self.settings.backend_command}): {e}")
            return
        self._check_id += 1
        self.status.connection, self.status.server = Connection.STARTING, "starting the local backend..."
        self._changed()
        client, server = self.client(), self.server

        def work():
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not server.running:
                    raise BackendError("server_exited", f"the backend stopped (exit code {server.exit_code}):\n"
                                                        f"{server.log_tail()}")
                try:
                    return client.health()
                except BackendError:
                    time.sleep(0.5)
            raise BackendError("timeout", f"the backend did not answer within {timeout:.0f} s")

        def done(_, error):
            if error is not None:
                detail = error.detail if isinstance(error, BackendError) else str(error)
                self.status.connection = Connection.DOWN
                self._error(f"Could not start the backend: {detail}")
                return
            self.check_connection()

        self._spawn(work, done)

    def shutdown(self) -> None:
        """Krita is closing: stop a backend this plugin started."""
        self._cancel.set()
        self.server.stop()

    # -- filling ---------------------------------------------------------------------------------
    def _models_for(self, compare: bool) -> list[str]:
        known = {m.id: m for m in self.status.models}
        if not compare:
            model = self.settings.model
            if model in known and not known[model].ready:
                raise messages.Refused(f"The model '{model}' is {known[model].status}: {known[model].reason}. "
                                       "Pick a ready model.")
            return [model]
        chosen = [m for m in self.settings.compare if m not in known or known[m].ready]
        if not chosen:
            raise messages.Refused(messages.NOTHING_TO_COMPARE)
        return chosen

    def fill(self, compare: bool = False) -> bool:
        """Start a fill (or compare) of the current document's selection; False if refused right away."""
        if self.status.busy:
            self._done(False, messages.BUSY)
            return False
        started = time.monotonic()
        try:
            models = self._models_for(compare)
            minimum = max((m.minimum for m in self.status.models if m.id in models), default=1)
            snapshot = fill.capture(self._current_document(), self.settings, minimum)
        except messages.Refused as e:
            self._done(False, str(e))
            return False
        c = snapshot.crop
        s = self.status
        s.busy, s.progress, s.progress_text, s.error, s.info = True, 0.0, "reading the selection", "", ""
        s.last_crop = (c.x, c.y, c.w, c.h)
        self._changed()
        self._cancel = cancel = threading.Event()
        client, settings = self.client(), Settings(**vars(self.settings))  # a copy: the UI may change meanwhile
        # One fill without a seed of its own lets the backend pick; variations need known, consecutive seeds.
        several = settings.variations > 1
        seeds = settings.seeds(secrets.randbelow(MAX_SEED - MAX_VARIATIONS)) if several or settings.seed >= 0 else None
        if compare:
            group = fill.group_name(len(models))
        else:
            group = fill.variations_group_name(len(seeds)) if several else None

        def progress(fraction: float, text: str) -> None:
            self._post(lambda: self._progress(fraction, text))

        def work():
            return fill.run(snapshot, client, settings, models, self._decode, progress, cancel, seeds)

        def done(layers, error):
            if error is None:
                try:
                    fill.apply(snapshot, layers, group)
                except Exception as e:  # noqa: BLE001 - a closed document, or Krita refusing the layer
                    error = e
            if error is not None:
                self._done(False, messages.explain(error, client.url), fill_ended=True)
                return
            names = ", ".join(layer.name for layer in layers)
            self._done(True, f"Added {names} in {time.monotonic() - started:.1f} s "
                             f"(read {c.w}x{c.h} px at {c.x},{c.y}).", fill_ended=True)

        self._spawn(work, done)
        return True

    def _progress(self, fraction: float, text: str) -> None:
        if self.status.busy:
            self.status.progress, self.status.progress_text = fraction, text
            self._changed()

    def cancel(self) -> None:
        if self.status.busy:
            self._cancel.set()
            self.status.progress_text = "cancelling..."
            self._changed()
