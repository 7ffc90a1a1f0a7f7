"""Checks a master calibration must pass before it is certified: is it what it says it is?

Each check returns the problems found (an empty list when the product is sound), as short phrases; the
caller names the product and refuses to certify it.

Master bias (electrons, overscan-subtracted): the residual level is a few electrons at most.  A median
beyond ``max_bias_level_sigma`` times the median read noise (default 5, ~22 e- for HSC) means light reached
the detector (sky, a flat or a science frame taken as a bias).  A bias with no finite pixel is refused.

Master flat (relative response, normalized to a mean of 1 over good pixels): its header's ``FILTER01``
must be the physical filter of its data ID (a flat of another band would be applied to this band's
science); its median over good pixels must lie in ``[0.5, 2]`` (an all-zero or unnormalized flat); its
pixel-to-pixel spread must exceed ``min_flat_rms`` (default 1e-4: a real flat carries photon noise and
response variations at the percent level, a constant array is synthetic).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["check_bias", "check_flat"]

#: flat median (over good pixels) outside this range: not a normalized flat
FLAT_MEDIAN_RANGE = (0.5, 2.0)
#: default lowest pixel-to-pixel rms of a master flat (relative response)
MIN_FLAT_RMS = 1.0e-4
#: default highest |median| of a master bias, in units of the median read noise
MAX_BIAS_LEVEL_SIGMA = 5.0


def _good(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    good = np.isfinite(image)
    if mask is not None:
        good &= mask == 0
    return image[good]


def check_bias(
    image: np.ndarray,
    mask: np.ndarray | None,
    *,
    read_noise_e: float,
    max_level_sigma: float = MAX_BIAS_LEVEL_SIGMA,
) -> list[str]:
    """Problems of a master bias (electrons).

    Parameters
    ----------
    image, mask : `numpy.ndarray`
        The master bias (electrons) and its mask (0 = good).
    read_noise_e : `float`
        Median read noise of the detector's amplifiers (electrons).
    max_level_sigma : `float`
        Largest acceptable |median| in read-noise units.
    """
    pixels = _good(image, mask)
    if pixels.size == 0:
        return ["no good pixel"]
    level = float(np.median(pixels))
    limit = max_level_sigma * read_noise_e
    if abs(level) > limit:
        return [
            f"median level {level:.1f} e- is beyond {limit:.1f} e- ({max_level_sigma:g} x read noise): "
            "light (sky, a flat) in the bias frames"
        ]
    return []


def check_flat(
    image: np.ndarray,
    mask: np.ndarray | None,
    metadata: Mapping[str, Any],
    *,
    physical_filter: str,
    min_rms: float = MIN_FLAT_RMS,
) -> list[str]:
    """Problems of a master flat (relative response) certified for ``physical_filter``.

    Parameters
    ----------
    image, mask : `numpy.ndarray`
        The master flat and its mask (0 = good).
    metadata : mapping
        Its header (``FILTER01``: the filter of the exposures it was made from).
    physical_filter : `str`
        The physical filter of its data ID.
    min_rms : `float`
        Smallest acceptable pixel-to-pixel rms over good pixels.
    """
    problems = []
    header_filter = metadata.get("FILTER01")
    if header_filter is not None and str(header_filter).strip() != physical_filter:
        problems.append(f"its header says FILTER01={header_filter!r}, its data ID {physical_filter!r}")
    pixels = _good(image, mask)
    if pixels.size == 0:
        return [*problems, "no good pixel"]
    median = float(np.median(pixels))
    low, high = FLAT_MEDIAN_RANGE
    if not low <= median <= high:
        problems.append(f"median response {median:.3g} is outside [{low:g}, {high:g}] (zero, not normalized)")
    rms = float(np.std(pixels))
    if rms < min_rms:
        problems.append(f"pixel-to-pixel rms {rms:.2g} < {min_rms:g}: a constant array, not a measured flat")
    return problems
