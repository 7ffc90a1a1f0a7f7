"""Figures of the catalog checks (DRP-00-15, DRP-00-25), in the pipe_analysis style.

Each function takes the arrays its check used (the caller passes the same selection), draws with matplotlib's
Agg backend and writes one PNG.  Residuals of photometry are plotted in mmag or percent as labelled by the
caller; sky positions in deg; focal-plane positions in mm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from numpy.typing import ArrayLike, NDArray  # noqa: E402

from ..qa import CompletenessCurve  # noqa: E402

__all__ = [
    "plot_ccd_map",
    "plot_completeness",
    "plot_mag_residual",
    "plot_residual_map",
    "plot_stellar_locus",
    "plot_whiskers",
]

type Outline = tuple[NDArray[np.float64], NDArray[np.float64]]


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _binned_median(x: NDArray[np.float64], y: NDArray[np.float64], n_bins: int = 10) -> tuple[list, list]:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2 * n_bins:
        return [], []
    edges = np.quantile(x[ok], np.linspace(0, 1, n_bins + 1))
    idx = np.clip(np.digitize(x[ok], edges) - 1, 0, n_bins - 1)
    xs = [float(np.median(x[ok][idx == k])) for k in range(n_bins) if np.any(idx == k)]
    ys = [float(np.median(y[ok][idx == k])) for k in range(n_bins) if np.any(idx == k)]
    return xs, ys


def plot_mag_residual(
    path: Path,
    mag: ArrayLike,
    residual: ArrayLike,
    selected: ArrayLike,
    *,
    ylabel: str,
    title: str,
    limit: float | None = None,
) -> None:
    """Residual against magnitude: all matched points grey, the selection of the check coloured.

    Parameters
    ----------
    mag : array_like
        Reference magnitude (mag).
    residual : array_like
        Residual in the unit of ``ylabel``.
    selected : array_like of bool
        The rows the check used.
    limit : `float`, optional
        Draw the threshold as dashed lines at +- limit.
    """
    m, r, s = np.asarray(mag, float), np.asarray(residual, float), np.asarray(selected, bool)
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    ax.scatter(m[~s], r[~s], s=3, c="0.7", label="matched")
    ax.scatter(m[s], r[s], s=5, c="C0", label=f"check selection (N={int(s.sum())})")
    xs, ys = _binned_median(m[s], r[s])
    if xs:
        ax.plot(xs, ys, "C3-", lw=1.5, label="binned median")
    if limit is not None:
        for v in (-limit, limit):
            ax.axhline(v, ls="--", c="k", lw=0.8)
    ax.axhline(0.0, c="k", lw=0.5)
    if s.any():
        span = np.nanpercentile(np.abs(r[s]), 99) * 3 if np.isfinite(r[s]).any() else 1.0
        ax.set_ylim(-max(span, 2 * (limit or 0)), max(span, 2 * (limit or 0)))
    ax.set_xlabel("reference magnitude (mag)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="best")
    _save(fig, path)


def plot_residual_map(
    path: Path,
    x: ArrayLike,
    y: ArrayLike,
    value: ArrayLike,
    *,
    label: str,
    title: str,
    xlabel: str = "RA (deg)",
    ylabel: str = "Dec (deg)",
    outlines: Sequence[Outline] = (),
    invert_x: bool = True,
) -> None:
    """Points coloured by a residual on the sky (``invert_x``: RA to the left) or on the focal plane (mm),
    with optional CCD outlines."""
    xv, yv, v = np.asarray(x, float), np.asarray(y, float), np.asarray(value, float)
    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    for ox, oy in outlines:
        ax.plot(np.append(ox, ox[0]), np.append(oy, oy[0]), c="0.5", lw=0.6)
    ok = np.isfinite(v)
    lim = float(np.nanpercentile(np.abs(v[ok]), 95)) if ok.any() else 1.0
    sc = ax.scatter(xv[ok], yv[ok], c=v[ok], s=8, cmap="coolwarm", vmin=-lim, vmax=lim)
    fig.colorbar(sc, ax=ax, label=label)
    if invert_x:
        ax.invert_xaxis()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.set_aspect("equal", adjustable="datalim")
    _save(fig, path)


def plot_whiskers(
    path: Path,
    x: ArrayLike,
    y: ArrayLike,
    e1: ArrayLike,
    e2: ArrayLike,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    outlines: Sequence[Outline] = (),
) -> None:
    """Whiskers of an ellipticity field (e.g. star - PSF): length ``|e|``, angle ``atan2(e2, e1) / 2``.

    The whisker scale is set so that the 90th-percentile |e| spans 3 % of the field.
    """
    xv, yv = np.asarray(x, float), np.asarray(y, float)
    a, b = np.asarray(e1, float), np.asarray(e2, float)
    ok = np.isfinite(xv) & np.isfinite(yv) & np.isfinite(a) & np.isfinite(b)
    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    for ox, oy in outlines:
        ax.plot(np.append(ox, ox[0]), np.append(oy, oy[0]), c="0.5", lw=0.6)
    if ok.any():
        mod = np.hypot(a[ok], b[ok])
        theta = 0.5 * np.arctan2(b[ok], a[ok])
        span = max(float(np.ptp(xv[ok])), float(np.ptp(yv[ok])), 1e-9)
        ref = max(float(np.percentile(mod, 90)), 1e-6)
        scale = 0.03 * span / ref
        u, v = mod * np.cos(theta) * scale, mod * np.sin(theta) * scale
        ax.quiver(
            xv[ok],
            yv[ok],
            u,
            v,
            headwidth=0,
            headlength=0,
            headaxislength=0,
            pivot="middle",
            angles="xy",
            scale_units="xy",
            scale=1.0,
            width=0.003,
        )
        ax.set_title(
            f"{title} (whisker of |e| = {ref:.3g}: {0.03 * span:.3g} {xlabel.split()[-1]})", fontsize=9
        )
    else:
        ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_aspect("equal", adjustable="datalim")
    _save(fig, path)


def plot_ccd_map(
    path: Path, outlines: Sequence[Outline], values: Sequence[float], *, label: str, title: str
) -> None:
    """CCDs on the focal plane (mm) filled by one value each (e.g. zero point, seeing, astrometric rms)."""
    from matplotlib.patches import Polygon

    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    v = np.asarray(values, float)
    ok = np.isfinite(v)
    lo, hi = (float(np.min(v[ok])), float(np.max(v[ok]))) if ok.any() else (0.0, 1.0)
    norm = plt.Normalize(lo, hi if hi > lo else lo + 1e-9)
    cmap = plt.get_cmap("viridis")
    for (ox, oy), val in zip(outlines, v, strict=True):
        colour = cmap(norm(val)) if np.isfinite(val) else "white"
        ax.add_patch(Polygon(np.column_stack([ox, oy]), closed=True, fc=colour, ec="k", lw=0.5))
        ax.text(float(np.mean(ox)), float(np.mean(oy)), f"{val:.4g}", ha="center", va="center", fontsize=6)
    ax.autoscale_view()
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=label)
    ax.set_xlabel("focal plane x (mm)")
    ax.set_ylabel("focal plane y (mm)")
    ax.set_title(title, fontsize=10)
    ax.set_aspect("equal", adjustable="datalim")
    _save(fig, path)


def plot_stellar_locus(
    path: Path,
    c1: ArrayLike,
    c2: ArrayLike,
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    line: tuple[float, float, float] | None = None,
) -> None:
    """Colour-colour (or colour vs colour residual) diagram of the check's stars; ``line`` = (c1_0, c2_0,
    angle in rad) draws the fitted locus."""
    x, y = np.asarray(c1, float), np.asarray(c2, float)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.scatter(x, y, s=5, c="C0", label=f"N={int(np.sum(np.isfinite(x) & np.isfinite(y)))}")
    if line is not None and all(np.isfinite(line)):
        x0, y0, ang = line
        t = np.linspace(np.nanmin(x) - x0, np.nanmax(x) - x0, 2) / max(abs(np.cos(ang)), 1e-3)
        ax.plot(x0 + t * np.cos(ang), y0 + t * np.sin(ang), "C3-", lw=1.2, label="fitted locus")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_completeness(path: Path, curves: Mapping[str, Mapping[str, CompletenessCurve]]) -> None:
    """Completeness against true magnitude, one panel per band, one line per class (star, galaxy, all)."""
    bands = list(curves)
    fig, axes = plt.subplots(1, max(len(bands), 1), figsize=(4.0 * max(len(bands), 1), 3.5), squeeze=False)
    for ax, band in zip(axes[0], bands, strict=False):
        for cls, curve in curves[band].items():
            ax.plot(curve.bin_centers, curve.completeness, "-o", ms=3, label=cls)
        ax.axhline(0.9, ls="--", c="k", lw=0.6)
        ax.axhline(0.5, ls=":", c="k", lw=0.6)
        ax.set_xlabel(f"true {band} magnitude (mag)")
        ax.set_ylabel("completeness")
        ax.set_ylim(-0.05, 1.05)
        ax.legend(fontsize=7)
    _save(fig, path)
