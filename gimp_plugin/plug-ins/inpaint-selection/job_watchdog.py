"""Cancels the plug-in's backend jobs if GIMP kills the plug-in.

The Cancel button of GIMP's progress bar does not notify a plug-in: GIMP kills its process
(app/plug-in/gimpplugin-progress.c), so no code of ours runs afterwards. This small helper process
holds the read end of a pipe from the plug-in; when the pipe closes without a "quit" line, the
plug-in is gone and every job it started but did not finish is cancelled with DELETE /api/v1/jobs/<id>.

Protocol on stdin, one line each: the server URL, the token (may be empty), then "+<id>" when a job
starts, "-<id>" when it ends, and "quit" on a normal exit.
"""
from __future__ import annotations

import os
import subprocess
import sys


class Watchdog:
    """The plug-in's end of the pipe. Every method is a no-op if the helper could not start."""

    def __init__(self, url: str, token: str):
        try:
            self._proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                # Own session: GIMP kills the plug-in's process group when it has its own one.
                start_new_session=(os.name == "posix"))
            self._send(url, token)
        except OSError:
            self._proc = None

    def _send(self, *lines: str) -> None:
        if self._proc is None:
            return
        try:
            self._proc.stdin.write("".join(line + "\n" for line in lines).encode())
            self._proc.stdin.flush()
        except OSError:
            self._proc = None

    def started(self, job_id: str) -> None:
        self._send("+" + job_id)

    def finished(self, job_id: str) -> None:
        self._send("-" + job_id)

    def close(self) -> None:
        """Normal exit: the helper ends without cancelling anything."""
        if self._proc is not None:
            self._send("quit")
            try:
                self._proc.stdin.close()
                self._proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self._proc = None


def watch(lines, cancel) -> list[str]:
    """Read job lines until the pipe ends; cancel(job_id) what was left running. Returns those ids."""
    running: list[str] = []
    for line in lines:
        line = line.strip()
        if line == "quit":
            return []
        if line.startswith("+"):
            running.append(line[1:])
        elif line.startswith("-") and line[1:] in running:
            running.remove(line[1:])
    for job_id in running:
        cancel(job_id)
    return running


def main() -> None:
    from backend_client import Backend, BackendError

    lines = (raw.decode("utf-8", "replace") for raw in sys.stdin.buffer)
    url, token = next(lines, "").strip(), next(lines, "").strip()
    backend = Backend(url, token, timeout=10)

    def cancel(job_id: str) -> None:
        try:
            backend.cancel(job_id)
        except BackendError:
            pass  # the server is gone too: nothing left to cancel

    watch(lines, cancel)


if __name__ == "__main__":  # run as a script, so the plug-in folder is sys.path[0]
    main()
