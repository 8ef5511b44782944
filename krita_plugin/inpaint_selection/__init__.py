"""Inpaint Selection: fill the selection with a local inpainting backend, as a new layer.

Inside Krita this registers the extension (menu actions) and the docker. Outside
Krita (unit tests, the zip builder) importing the package does nothing.
"""
__version__ = "0.1.0"

from . import krita_api  # noqa: E402 - the version must be readable without importing anything

if krita_api.IN_KRITA:
    from .docker import InpaintDocker
    from .extension import InpaintExtension

    krita_api.register(InpaintExtension, InpaintDocker)
