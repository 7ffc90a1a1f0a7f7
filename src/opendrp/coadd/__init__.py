"""Warping and coaddition: calexps resampled onto patch grids (nJy), and weighted-mean coadds with artifact
rejection.

``warp_exposure(calexp, patch_wcs, patch_shape)`` -> warp; ``assemble_coadd(warps)`` -> coadd, or stream the
warps through `CoaddAccumulator` (with a `ReferenceAccumulator` first pass for artifact rejection).
"""

from .assemble import (
    DEFAULT_BAD_MASK_PLANES,
    DEFAULT_MASK_FRACTION_THRESHOLDS,
    DEFAULT_OR_MASK_PLANES,
    CoaddAccumulator,
    LazyWarps,
    ReferenceAccumulator,
    assemble_coadd,
    warp_weight,
)
from .kernels import INTERPOLATIONS, Kernel, get_kernel, interpolate_image
from .mapping import BBox, CoordinateMap, map_pixels, overlap_bbox, pixel_jacobian
from .warp import DEFAULT_PROPAGATE_PLANES, warp_bbox, warp_exposure, warp_psf

__all__ = [
    "DEFAULT_BAD_MASK_PLANES",
    "DEFAULT_MASK_FRACTION_THRESHOLDS",
    "DEFAULT_OR_MASK_PLANES",
    "DEFAULT_PROPAGATE_PLANES",
    "INTERPOLATIONS",
    "BBox",
    "CoaddAccumulator",
    "CoordinateMap",
    "Kernel",
    "LazyWarps",
    "ReferenceAccumulator",
    "assemble_coadd",
    "get_kernel",
    "interpolate_image",
    "map_pixels",
    "overlap_bbox",
    "pixel_jacobian",
    "warp_bbox",
    "warp_exposure",
    "warp_psf",
    "warp_weight",
]
