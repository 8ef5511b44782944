"""Installers that copy the editor plugins into the user's Krita or GIMP profile.

Each module here exposes install(dest: Path | None) -> list[Path] and returns what it wrote.
"""
