"""Neural-features GAN: "Generative Image Inpainting With Neural Features" (Liu et al., ICIMCS 2018)."""
from backend.methods.nfgan.method import NeuralFeaturesGAN as METHOD

__all__ = ["METHOD"]
