"""Source detection."""

from .detect import DEFAULT_DETECTION_MASK_PLANES, detect_sources, gaussian_kernel

__all__ = ["DEFAULT_DETECTION_MASK_PLANES", "detect_sources", "gaussian_kernel"]
