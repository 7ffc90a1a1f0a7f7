"""QA figures (matplotlib, Agg, PNG). Figures are built with `matplotlib.figure.Figure`, never pyplot,
so that no global state or display is involved."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from .config import QAConfig

if TYPE_CHECKING:
    from .report import _BandPlotData

__all__ = ["make_figures"]


def _grid(n: int) -> tuple[int, int]:
    ncol = min(n, 3)
    return (n + ncol - 1) // ncol, ncol


def _flux_residuals(path: Path, data: dict[str, _BandPlotData], cfg: QAConfig) -> None:
    nrow, ncol = _grid(len(data))
    fig = Figure(figsize=(4.6 * ncol, 3.6 * nrow), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, (band, d) in zip(axes, data.items()):
        y = 100.0 * d.star_frac_offset
        fin = np.isfinite(d.star_mag_true) & np.isfinite(y)
        sel = fin & d.star_selected
        ax.scatter(
            d.star_mag_true[fin & ~sel],
            y[fin & ~sel],
            s=3,
            c="0.6",
            alpha=0.5,
            lw=0,
            label=f"stars, S/N <= {cfg.snr_min:g}",
            rasterized=True,
        )
        ax.scatter(
            d.star_mag_true[sel],
            y[sel],
            s=4,
            c="C0",
            lw=0,
            label=f"stars, S/N > {cfg.snr_min:g} (n={int(sel.sum())})",
            rasterized=True,
        )
        if fin.any():
            edges = np.arange(np.floor(d.star_mag_true[fin].min()), d.star_mag_true[fin].max() + 0.5, 0.5)
            which = np.digitize(d.star_mag_true[fin], edges)
            yb = y[fin]
            cen = [0.5 * (edges[k - 1] + edges[k]) for k in range(1, edges.size) if np.sum(which == k) >= 5]
            binned = [np.median(yb[which == k]) for k in range(1, edges.size) if np.sum(which == k) >= 5]
            ax.plot(cen, binned, "k-o", ms=3, lw=1, label="median in 0.5 mag bins (all stars)")
        lim = 100.0 * cfg.max_abs_flux_offset
        ax.axhspan(-lim, lim, color="C2", alpha=0.12, label=f"+/- {lim:g}% (offset threshold)")
        ax.axhline(0.0, c="k", lw=0.8)
        if sel.any():
            med = float(np.median(y[sel]))
            ax.axhline(med, c="C3", lw=1.2, ls="--", label=f"median (S/N cut) {med:+.2f}%")
            span = max(5 * 1.4826 * float(np.median(np.abs(y[sel] - med))), 3 * lim)
        else:
            span = 10 * lim
        ax.set_ylim(-min(span, 100.0), min(span, 100.0))
        ax.set_xlabel(f"true {band} magnitude [AB mag]")
        ax.set_ylabel("(psfFlux - true flux) / true flux [%]")
        ax.set_title(f"{band}: PSF flux residuals of true stars")
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    for ax in axes[len(data) :]:
        ax.set_visible(False)
    fig.savefig(path, dpi=90)


def _astrometry(path: Path, data: dict[str, _BandPlotData], cfg: QAConfig) -> None:
    nrow, ncol = _grid(len(data))
    fig = Figure(figsize=(4.2 * ncol, 4.2 * nrow), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, (band, d) in zip(axes, data.items()):
        ok = np.isfinite(d.dra_mas) & np.isfinite(d.ddec_mas)
        x, y = d.dra_mas[ok], d.ddec_mas[ok]
        ax.scatter(x, y, s=4, c="C0", lw=0, alpha=0.7, rasterized=True)
        r = cfg.max_coord_scatter_mas
        t = np.linspace(0, 2 * np.pi, 200)
        ax.plot(r * np.cos(t), r * np.sin(t), c="C2", lw=1, label=f"{r:g} mas (scatter threshold)")
        ax.axhline(0, c="k", lw=0.6)
        ax.axvline(0, c="k", lw=0.6)
        if x.size:
            ax.plot(
                np.median(x),
                np.median(y),
                "r+",
                ms=12,
                mew=2,
                label=f"median ({np.median(x):+.1f}, {np.median(y):+.1f}) mas",
            )
            lim = max(2.0 * r, float(np.percentile(np.hypot(x, y), 99)) * 1.1)
        else:
            lim = 2.0 * r
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xlabel("RA cos(Dec) offset, object - truth [mas]")
        ax.set_ylabel("Dec offset, object - truth [mas]")
        ax.set_title(f"{band}: true stars S/N > {cfg.snr_min:g} (n={x.size})")
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    for ax in axes[len(data) :]:
        ax.set_visible(False)
    fig.savefig(path, dpi=90)


def _completeness(path: Path, data: dict[str, _BandPlotData]) -> None:
    nrow, ncol = _grid(len(data))
    fig = Figure(figsize=(4.6 * ncol, 3.4 * nrow), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, (band, d) in zip(axes, data.items()):
        for cls, label, color in (("star", "stars", "C0"), ("galaxy", "galaxies", "C1")):
            c = d.curves[cls]
            lims = [
                f"{int(100 * lv)}% at {d.limits[cls][k]:.2f}"
                for k, lv in (("mag_90", 0.9), ("mag_50", 0.5))
                if np.isfinite(d.limits[cls][k])
            ]
            lab = label + (f" ({', '.join(lims)})" if lims else "")
            ax.step(c.bin_centers, c.completeness, where="mid", c=color, label=lab)
        ax.axhline(0.9, c="0.5", ls=":", lw=0.8)
        ax.axhline(0.5, c="0.5", ls="--", lw=0.8)
        ax.set_ylim(-0.03, 1.05)
        ax.set_xlabel(f"true {band} magnitude [AB mag]")
        ax.set_ylabel("completeness (fraction matched)")
        ax.set_title(f"{band}: completeness in the footprint")
        ax.legend(fontsize=7, loc="lower left")
        ax.grid(alpha=0.3)
    for ax in axes[len(data) :]:
        ax.set_visible(False)
    fig.savefig(path, dpi=90)


def _sky(path: Path, sky: dict[str, Any]) -> None:
    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    ax = fig.subplots()
    m = sky["obj_matched"]
    ax.scatter(
        sky["obj_ra"][m],
        sky["obj_dec"][m],
        s=1,
        c="C0",
        lw=0,
        alpha=0.5,
        label=f"primary objects matched to truth ({int(m.sum())})",
        rasterized=True,
    )
    ax.scatter(
        sky["obj_ra"][~m],
        sky["obj_dec"][~m],
        s=3,
        c="C3",
        lw=0,
        label=f"primary objects unmatched ({int((~m).sum())})",
        rasterized=True,
    )
    ax.scatter(
        sky["missed_ra"],
        sky["missed_dec"],
        s=3,
        c="0.3",
        marker="x",
        lw=0.5,
        label=f"truth in footprint, missed ({len(sky['missed_ra'])})",
        rasterized=True,
    )
    ax.invert_xaxis()
    dec0 = np.nanmedian(sky["obj_dec"]) if len(sky["obj_dec"]) else 0.0
    ax.set_aspect(1.0 / max(np.cos(np.radians(dec0)), 1e-3))
    ax.set_xlabel("RA [deg]")
    ax.set_ylabel("Dec [deg]")
    ax.set_title("Sky map of primary objects")
    ax.legend(fontsize=7, loc="upper left", markerscale=4)
    fig.savefig(path, dpi=90)


def make_figures(
    outdir: Path, data: dict[str, _BandPlotData], cfg: QAConfig, *, sky: dict[str, Any]
) -> dict[str, str]:
    """Write the QA figures into ``outdir``.

    Returns
    -------
    figures : `dict` of `str`
        Figure name -> PNG file name (relative to ``outdir``).
    """
    names = {
        "flux_residuals": "flux_residuals.png",
        "astrometry": "astrometry_offsets.png",
        "completeness": "completeness.png",
        "sky_map": "sky_map.png",
    }
    _flux_residuals(outdir / names["flux_residuals"], data, cfg)
    _astrometry(outdir / names["astrometry"], data, cfg)
    _completeness(outdir / names["completeness"], data)
    _sky(outdir / names["sky_map"], sky)
    return names
