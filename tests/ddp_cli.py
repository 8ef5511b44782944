"""The `train` command for the torchrun tests, with what the tests check reported per rank.

Each rank writes its networks' final in-memory state to <dump folder>/rank-<RANK>.safetensors (the
folder is the first argument), and prints a line per training-state save and per export, so a test
sees which ranks wrote checkpoints. Everything else is the plain CLI.
"""
import os
import sys
from pathlib import Path

from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's backend, whatever is installed
from backend.cli import main  # noqa: E402
from backend.training import checkpoint, trainer  # noqa: E402

RANK = os.environ.get("RANK", "0")
methods = []


def recording(name):
    """The method class, subclassed to remember its instance (the trainer keeps it local to `run`)."""
    cls = real_get_method(name)

    class Recorded(cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            methods.append(self)

    return Recorded


def reported_save(folder, step, *args, **kwargs):
    print(f"rank {RANK}: save step {step}", flush=True)
    return save_training_state(folder, step, *args, **kwargs)


def reported_export(stem, tensors, meta):
    print(f"rank {RANK}: export step {meta['step']}", flush=True)
    return export(stem, tensors, meta)


real_get_method, save_training_state, export = trainer.get_method, checkpoint.save_training_state, checkpoint.export
trainer.get_method, checkpoint.save_training_state, checkpoint.export = recording, reported_save, reported_export

dump = Path(sys.argv[1])
code = main(sys.argv[2:])
if methods:
    dump.mkdir(parents=True, exist_ok=True)
    save_file(checkpoint.network_tensors(methods[-1].nets), str(dump / f"rank-{RANK}.safetensors"))
sys.exit(code)
