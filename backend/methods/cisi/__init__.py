"""CISI-net: "Explicit Latent Content Inference and Imitated Style Rendering for Image Inpainting" (AAAI 2019)."""
from backend.methods.cisi.method import CISINet as METHOD

__all__ = ["METHOD"]
