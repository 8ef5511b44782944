"""Build the zip for Krita's Tools > Scripts > Import Python Plugin from File.

    python krita_plugin/build_zip.py [--out dist/inpaint_selection-0.1.0.zip]

Krita's importer finds `<name>.desktop`, the `<name>/` package beside it (it must hold
__init__.py) and an optional `<name>.action` (shortcuts). `plugin_files()` is also what
`inpaint-backend install-plugins --krita` copies, so both installs get the same files.
"""
from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAME = "inpaint_selection"
SKIP_PARTS = {"__pycache__"}
SKIP_SUFFIXES = {".pyc", ".pyo"}


def version() -> str:
    text = (HERE / NAME / "__init__.py").read_text()
    return re.search(r'__version__ = "([^"]+)"', text).group(1)


def plugin_files() -> list[tuple[Path, str]]:
    """(source file, path relative to Krita's resource folder) for everything a user installs."""
    files = [(HERE / f"{NAME}.desktop", f"pykrita/{NAME}.desktop"), (HERE / f"{NAME}.action", f"actions/{NAME}.action")]
    for path in sorted((HERE / NAME).rglob("*")):
        if path.is_file() and not SKIP_PARTS & set(path.parts) and path.suffix not in SKIP_SUFFIXES:
            files.append((path, f"pykrita/{NAME}/{path.relative_to(HERE / NAME).as_posix()}"))
    return files


def build(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for source, target in plugin_files():
            name = target.split("/", 1)[1]  # the importer sorts files into pykrita/ and actions/ itself
            # Folder entries too: the importer only recognises a package by its "inpaint_selection/" entry.
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                folder = "/".join(parts[:i]) + "/"
                if folder not in written:
                    zf.writestr(folder, b"")
                    written.add(folder)
            zf.write(source, name)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "dist" / f"{NAME}-{version()}.zip")
    args = parser.parse_args(argv)
    print(build(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
