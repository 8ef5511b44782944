"""Semantic inpainting: "Semantic Image Inpainting with Deep Generative Models" (Yeh et al., CVPR 2017)."""
from backend.methods.semantic.method import SemanticInpainting as METHOD

__all__ = ["METHOD"]
