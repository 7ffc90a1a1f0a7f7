"""Configuration of the QA report."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from opendrp.errors import ConfigurationError

__all__ = ["QAConfig"]


@dataclass
class QAConfig:
    """Configuration of `run_qa`.

    Defaults follow the checks of the openDRP issue "spine": stars with S/N > 50 must have
    ``|median psfFlux offset| < 2%``, psfFlux scatter < 5% and coordinate scatter < 50 mas.
    """

    match_radius_arcsec: float = 0.5
    """Maximum separation of a match between catalogs (arcsec)."""

    snr_min: float = 50.0
    """Minimum psfFlux / psfFluxErr of the stars used for photometric and astrometric metrics."""

    snr_min_star_galaxy: float = 20.0
    """Minimum S/N (in ``refBand`` if present, else the best band) for the star/galaxy separation metric."""

    mag_bin_width: float = 0.5
    """Width of the true-magnitude bins of the completeness curves (mag)."""

    mag_range: tuple[float, float] | None = None
    """(bright, faint) range of the completeness bins (mag); default: the range of the truth."""

    min_bin_count: int = 5
    """Minimum number of truth sources in a bin for it to enter the 50% / 90% completeness magnitudes."""

    footprint_cell_arcsec: float | None = None
    """Cell size of the occupancy grid of primary objects that defines the surveyed footprint (arcsec);
    default: chosen so that a cell holds ~10 primary objects on average (20-900 arcsec)."""

    max_abs_flux_offset: float = 0.02
    """Threshold on |median fractional psfFlux offset| of S/N > snr_min stars (fraction)."""

    max_flux_scatter: float = 0.05
    """Threshold on the robust scatter of the fractional psfFlux offset of S/N > snr_min stars (fraction)."""

    max_coord_scatter_mas: float = 50.0
    """Threshold on the coordinate scatter (quadrature mean of the per-axis robust scatters) (mas)."""

    check_refcat: bool = False
    """Also apply the three thresholds to the comparison with the reference catalog (whose own errors add
    to the scatter; off by default, the metrics are reported either way)."""

    make_plots: bool = True
    """Write the PNG figures and show them in the HTML page."""

    def validate(self) -> None:
        """Raise `ConfigurationError` naming the first invalid field."""
        positive = (
            "match_radius_arcsec",
            "mag_bin_width",
            "max_abs_flux_offset",
            "max_flux_scatter",
            "max_coord_scatter_mas",
        )
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigurationError(
                    f"must be a positive number, got {value!r}", where=f"QAConfig.{name}"
                )
        cell = self.footprint_cell_arcsec
        if cell is not None and not (isinstance(cell, int | float) and math.isfinite(cell) and cell > 0):
            raise ConfigurationError(
                f"must be a positive number or None, got {cell!r}", where="QAConfig.footprint_cell_arcsec"
            )
        for name in ("snr_min", "snr_min_star_galaxy"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigurationError(f"must be a number >= 0, got {value!r}", where=f"QAConfig.{name}")
        if self.min_bin_count < 1:
            raise ConfigurationError(
                f"must be >= 1, got {self.min_bin_count!r}", where="QAConfig.min_bin_count"
            )
        if self.mag_range is not None:
            lo, hi = self.mag_range
            if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
                raise ConfigurationError(
                    f"must be (bright, faint) with faint > bright, got {self.mag_range!r}",
                    where="QAConfig.mag_range",
                )

    def to_dict(self) -> dict[str, Any]:
        """Fields as a JSON-serialisable dict."""
        d = asdict(self)
        if d["mag_range"] is not None:
            d["mag_range"] = list(d["mag_range"])
        return d
