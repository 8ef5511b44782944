"""Local inpainting backend: one process hosting every engine for the Krita and GIMP plugins."""

__version__ = "0.1.0"
