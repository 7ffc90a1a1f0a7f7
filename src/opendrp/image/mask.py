"""Mask planes of the Exposure mask (int32 bit planes, named as in Rubin's afw)."""

from __future__ import annotations

from typing import Final

import numpy as np

__all__ = ["MASK_PLANES", "mask_bit", "planes_set"]

MASK_PLANES: Final[dict[str, int]] = {
    "BAD": 0,  # defects (bad columns, hot pixels)
    "SAT": 1,  # saturated
    "INTRP": 2,  # interpolated over
    "CR": 3,  # cosmic ray
    "EDGE": 4,  # near the CCD edge, measurements unreliable
    "DETECTED": 5,  # inside a detection footprint
    "SUSPECT": 6,  # above the linearity limit, below saturation
    "NO_DATA": 7,  # no data (warps/coadds: outside the inputs)
    "STREAK": 8,  # satellite trail
    "CLIPPED": 9,  # rejected by coadd artifact rejection
    "SENSOR_EDGE": 10,  # coadd: near an input CCD edge
    "INEXACT_PSF": 11,  # coadd: PSF discontinuous here
}


def mask_bit(*names: str) -> int:
    """Bit mask for the named planes (``mask_bit("SAT", "BAD")``)."""
    value = 0
    for name in names:
        value |= 1 << MASK_PLANES[name]
    return value


def planes_set(mask: np.ndarray, *names: str) -> np.ndarray:
    """Boolean array: pixels where any of the named planes is set."""
    return (mask & mask_bit(*names)) != 0
