"""ISNet: "Interactive Separation Network for Image Inpainting" (Li et al., ICIP 2020)."""
from backend.methods.isnet.method import ISNet as METHOD

__all__ = ["METHOD"]
