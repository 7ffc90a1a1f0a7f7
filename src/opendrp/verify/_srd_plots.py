"""Figures of the SRD metrics, drawn from the arrays each metric was computed on (matplotlib
`~matplotlib.figure.Figure`, never pyplot: Agg canvas, no global state, PNG).

- `plot_photometric_repeatability`: per-star rms against mean magnitude with the expected-noise curve, PA1
  and its expectation (one panel per band).
- `plot_separation_rms`: histograms of the pair-separation rms of each annulus with AMx, AMx + ADx and the
  AFx limit AMx + AD_design marked.
- `plot_ellipticity_correlation`: ``xi_+`` of the residual ellipticities against separation with the TE1 /
  TE2 ranges and thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import NDArray

__all__ = ["plot_ellipticity_correlation", "plot_photometric_repeatability", "plot_separation_rms"]


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def plot_photometric_repeatability(
    path: Path,
    *,
    band: str,
    mag: NDArray[np.float64],
    rms_mmag: NDArray[np.float64],
    expected_mmag: NDArray[np.float64],
    pa1: float,
    pa1_expected: float,
    pa1_limit: float | None,
) -> None:
    """Per-star rms (mmag) against mean magnitude (mag) with the noise the errors predict."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.scatter(mag, rms_mmag, s=6, alpha=0.6, label=f"stars ({mag.size})")
    order = np.argsort(mag)
    ax.plot(mag[order], expected_mmag[order], color="C1", lw=1.2, label="expected from errors")
    ax.axhline(pa1, color="C0", ls="--", label=f"PA1 = {pa1:.2f} mmag")
    ax.axhline(pa1_expected, color="C1", ls=":", label=f"expected {pa1_expected:.2f} mmag")
    if pa1_limit is not None:
        ax.axhline(pa1_limit, color="k", lw=0.8, label=f"design {pa1_limit:g} mmag")
    ax.set_yscale("log")
    ax.set_xlabel(f"{band} psfFlux magnitude (mag)")
    ax.set_ylabel("per-star rms (mmag)")
    ax.set_title(f"Photometric repeatability, band {band}")
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_separation_rms(
    path: Path,
    *,
    band: str,
    panels: Sequence[tuple[str, NDArray[np.float64], float, float, float | None]],
) -> None:
    """Histograms of pair-separation rms (mas); each panel is (label, rms, AMx, ADx, AD design)."""
    n = max(len(panels), 1)
    fig = Figure(figsize=(4.2 * n, 3.6))
    axes = fig.subplots(1, n, squeeze=False)
    for ax, (label, rms, amx, adx, ad_limit) in zip(axes[0], panels):
        hi = np.percentile(rms, 99.5) if rms.size else 1.0
        ax.hist(rms, bins=40, range=(0, max(hi, amx + adx) * 1.1), color="C0", alpha=0.7)
        ax.axvline(amx, color="C1", label=f"AMx {amx:.1f} mas")
        ax.axvline(amx + adx, color="C2", ls="--", label=f"AMx + ADx {amx + adx:.1f} mas")
        if ad_limit is not None:
            ax.axvline(
                amx + ad_limit, color="k", lw=0.8, ls=":", label=f"AMx + AD design {amx + ad_limit:.1f}"
            )
        ax.set_xlabel("pair separation rms (mas)")
        ax.set_title(f"{label}, band {band} ({rms.size} pairs)", fontsize=9)
        ax.legend(fontsize=7)
    _save(fig, path)


def plot_ellipticity_correlation(
    path: Path,
    *,
    band: str,
    centres_arcmin: NDArray[np.float64],
    xip: NDArray[np.float64],
    xip_err: NDArray[np.float64],
    ranges: Sequence[tuple[str, float, float, float, float | None]],
) -> None:
    """``xi_+`` (dimensionless) against separation (arcmin); ranges are (label, lo, hi, value, threshold)."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    good = np.isfinite(xip)
    ax.errorbar(centres_arcmin[good], xip[good], yerr=xip_err[good], fmt="o", ms=3, label="xi+")
    for i, (label, lo, hi, value, limit) in enumerate(ranges):
        color = f"C{i + 1}"
        if np.isfinite(value):
            ax.hlines(value, lo, hi, color=color, lw=2, label=f"{label} = {value:.2e}")
        if limit is not None:
            ax.hlines(limit, lo, hi, color=color, lw=0.8, ls=":", label=f"{label} design {limit:.0e}")
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xscale("log")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.set_xlabel("separation (arcmin)")
    ax.set_ylabel("residual ellipticity correlation xi+")
    ax.set_title(f"PSF-corrected ellipticity residuals, band {band}")
    ax.legend(fontsize=7)
    _save(fig, path)
