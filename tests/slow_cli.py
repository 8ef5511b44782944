"""The inpaint-backend command with a test engine that takes as long as it is told, for load tests."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's backend, whatever is installed

from backend.classical import ENGINES  # noqa: E402
from backend.engines.base import Engine, Param  # noqa: E402


class SleepEngine(Engine):
    id = method = "sleep"
    description = "Test engine: waits `seconds`, reporting progress every 20 ms, then fills with grey."
    params = {"seconds": Param(float, 1.0, "how long the fill takes", 0, 3600)}

    def inpaint(self, image, hole, options, progress):
        seconds = options.params["seconds"]
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            progress((time.monotonic() - start) / seconds, "sleeping")
            time.sleep(0.02)
        return image * (1 - hole) + 0.5 * hole


ENGINES.append(SleepEngine)

from backend.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
