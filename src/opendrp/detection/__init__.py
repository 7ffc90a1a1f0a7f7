"""Source detection."""

from .detect import DEFAULT_DETECTION_MASK_PLANES, detect_sources, gaussian_kernel, significance_mask

__all__ = ["DEFAULT_DETECTION_MASK_PLANES", "detect_sources", "gaussian_kernel", "significance_mask"]
