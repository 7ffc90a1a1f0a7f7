"""Background estimation and the background model."""

from .model import BackgroundModel, estimate_background

__all__ = ["BackgroundModel", "estimate_background"]
