"""Start a local backend from the docker and stop it when Krita quits.

The command comes from settings: the installer writes the `serve` command of the
Python that ran `inpaint-backend install-plugins` (with its models folder); users may
add options such as --device. The plugin adds the loopback host and the URL's port.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import urllib.parse
from pathlib import Path


def command_line(command: str, url: str) -> list[str]:
    if os.name == "nt":  # posix=False keeps backslashes; strip the quotes it leaves in place
        args = [a.strip('"') for a in shlex.split(command, posix=False)]
    else:
        args = shlex.split(command)
    if not args:
        raise ValueError("no backend command is configured")
    parts = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
    port = parts.port or 7860
    return [*args, "--host", "127.0.0.1", "--port", str(port)]


class LocalServer:
    def __init__(self, log_path: Path | None = None):
        self.log_path = log_path or Path(tempfile.gettempdir()) / "inpaint-backend-krita.log"
        self._proc: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def start(self, command: str, url: str) -> None:
        if self.running:
            return
        args = command_line(command, url)
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # no console window on Windows
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=str(Path.home()), creationflags=flags)

    def log_tail(self, lines: int = 6) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
