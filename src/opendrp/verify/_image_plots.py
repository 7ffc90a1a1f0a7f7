"""Figures of DRP-00-30 and DRP-00-35 in the pipe_analysis style (matplotlib Agg, PNG files).

Each function takes the arrays its check used and writes one PNG; none computes a metric.

* `plot_focal_plane_map`: one value per detector drawn at the detector's place on the focal plane (mm, from
  the camera), coloured by value (pipe_analysis' per-CCD focal-plane plots).
* `plot_annulus_profiles`: mean residual sky (sigma per pixel) against radius (arcsec) around bright
  sources, one line per band, with the +-0.1 sigma band of the threshold.
* `plot_feature_cutouts`: for single-epoch features, the warp with the feature, the mean of the other warps
  and the coadd, on a common stretch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

__all__ = ["plot_annulus_profiles", "plot_feature_cutouts", "plot_focal_plane_map"]


def plot_focal_plane_map(
    camera: Any, values: Mapping[int, float], path: Path, *, title: str, label: str
) -> None:
    """Detectors of ``camera`` as rectangles on the focal plane (mm), coloured by ``values[detector]``.

    Detectors without a value are drawn empty.
    """
    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    vals = np.array([v for v in values.values() if np.isfinite(v)])
    lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    cmap = plt.get_cmap("viridis")
    norm = matplotlib.colors.Normalize(lo, hi)
    size = camera.pixel_size_mm
    xs, ys = [], []
    for det_id, det in camera.detectors.items():
        w, h = det.nx * size, det.ny * size
        if int(round(det.rotation_deg)) % 180 == 90:
            w, h = h, w
        v = values.get(det_id)
        face = cmap(norm(v)) if v is not None and np.isfinite(v) else "none"
        ax.add_patch(
            Rectangle((det.x_mm - w / 2, det.y_mm - h / 2), w, h, facecolor=face, edgecolor="k", lw=0.5)
        )
        xs += [det.x_mm - w / 2, det.x_mm + w / 2]
        ys += [det.y_mm - h / 2, det.y_mm + h / 2]
        if len(camera.detectors) <= 30:
            ax.text(det.x_mm, det.y_mm, str(det_id), ha="center", va="center", fontsize=7)
    pad = 0.05 * max(max(xs) - min(xs), max(ys) - min(ys), 1.0)
    ax.set_xlim(min(xs) - pad, max(xs) + pad)
    ax.set_ylim(min(ys) - pad, max(ys) + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("focal plane x (mm)")
    ax.set_ylabel("focal plane y (mm)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=label)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_annulus_profiles(
    by_band: Mapping[str, Sequence[Any]],
    path: Path,
    *,
    pixel_scale: float,
    title: str,
    threshold: float = 0.1,
) -> None:
    """Mean residual (sigma per pixel) per ring against radius (arcsec), pixel-weighted over the
    `opendrp.verify.images.AnnulusResult` of each band; ``pixel_scale`` in arcsec per pixel."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for band, results in sorted(by_band.items()):
        if not results:
            continue
        n = np.sum([r.profile_n for r in results], axis=0)
        s = np.sum([np.nan_to_num(r.profile) * r.profile_n for r in results], axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            prof = np.where(n > 0, s / np.maximum(n, 1), np.nan)
        ax.plot(results[0].radii * pixel_scale, prof, "o-", label=f"{band} ({len(results)} images)")
    ax.axhspan(-threshold, threshold, color="0.85", zorder=0, label=f"+-{threshold:g} sigma")
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlabel("radius from bright source (arcsec)")
    ax.set_ylabel("mean residual sky (sigma per pixel)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_feature_cutouts(
    cutouts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, str]], path: Path, *, title: str
) -> None:
    """Rows of (warp with the feature, mean of the other warps, coadd, caption), each on the stretch of its
    row (the other warps' mean +- 5 times its robust scatter, and up to the feature's peak)."""
    n = max(len(cutouts), 1)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n), squeeze=False)
    for row, (warp, others, coadd, caption) in zip(axes, cutouts, strict=False):
        finite = others[np.isfinite(others)]
        med = float(np.median(finite)) if finite.size else 0.0
        mad = float(np.median(np.abs(finite - med)) * 1.4826) if finite.size else 1.0
        top = float(np.nanmax(warp)) if np.isfinite(warp).any() else med + 5 * mad
        vmin, vmax = med - 3 * mad, max(med + 5 * mad, top)
        for ax, img, name in zip(
            row, (warp, others, coadd), ("warp with feature", "other warps' mean", "coadd"), strict=True
        ):
            ax.imshow(img, origin="lower", cmap="gray_r", vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name, fontsize=8)
        row[0].set_ylabel(caption, fontsize=7)
    if not cutouts:
        axes[0, 1].text(0.5, 0.5, "no single-epoch feature", ha="center", va="center")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
