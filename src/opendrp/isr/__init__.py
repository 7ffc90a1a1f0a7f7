"""Instrument signature removal: overscan, gain, assembly, bias, dark, flat, saturation, variance, defects."""

from .assemble import assemble_ccd, grow_mask, overscan_levels
from .cosmic_rays import find_cosmic_rays, repair_cosmic_rays
from .interpolate import interpolate_rows
from .isr import raw_metadata, read_noise_image, run_isr

__all__ = [
    "assemble_ccd",
    "find_cosmic_rays",
    "grow_mask",
    "interpolate_rows",
    "overscan_levels",
    "raw_metadata",
    "read_noise_image",
    "repair_cosmic_rays",
    "run_isr",
]
