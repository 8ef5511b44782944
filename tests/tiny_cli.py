"""The inpaint-backend command with the tiny test method registered, for subprocess and torchrun tests."""
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).resolve().parents[1])]  # and this checkout's backend
import tiny_method  # noqa: E402,F401

from backend.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
