"""Infer-Match-Translate: "Contextual-based Image Inpainting: Infer, Match, and Translate" (ECCV 2018)."""
from backend.methods.imt.method import InferMatchTranslate as METHOD

__all__ = ["METHOD"]
