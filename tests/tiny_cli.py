"""The inpaint-backend command with the tiny test method registered, for subprocess and torchrun tests."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import tiny_method  # noqa: E402,F401

from backend.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
