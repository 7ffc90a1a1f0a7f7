"""Seeing-aware artifact rejection: how far a point source in each warp may sit from the reference.

Artifact rejection (`opendrp.coadd.assemble`) compares each warp pixel with a robust reference, the
per-pixel trimmed weighted mean of the warps.  Where the seeing differs between visits a star's core is
higher than the reference in the sharper warps and lower in the broader ones, and a fixed tolerance clips
those cores: the coadd core then holds fewer inputs than its `opendrp.psf.CoaddPsf` assumes, and the PSF
fluxes are biased by several per cent (issue 11: 2 % of bright-star core pixels clipped in the band with the
widest seeing spread).  Rubin's CompareWarp (DMTN-080) avoids this by comparing *PSF-matched* warps, in
which a star looks the same in every visit.  Here the same is reached without convolving the images: the
deviation a noiseless point source of flux ``F`` shows in warp ``i`` is exactly ``F (K_i - K_ref)``, where
``K_i`` is the warp's PSF and ``K_ref`` the PSF of the reference (the per-pixel trimmed weighted mean of the
covering warps' kernels: trimmed means commute with a common positive factor, so the reference of a star is
``F K_ref``).  With ``M`` the local maximum of ``|ref|`` over ``footprint`` x ``footprint`` pixels
(``F max_box K_ref`` near a star), the rejection tolerance of warp ``i`` gets the term ``(f_i M)**2`` with

    ``f_i = max_p |K_i(p) - K_ref(p)| / max_box(K_ref)(p)``

over the kernel pixels ``p`` where ``K_ref >= floor * max K_ref`` (fainter wings are below the noise of any
unsaturated star), and over a grid of ``grid`` x ``grid`` positions of the coadd (the largest value: the
PSFs vary across the patch and inputs start and stop).  ``f_i`` is 0 for identical PSFs, ~0.9 for a 0.55"
visit against a 0.75" reference, ~0.45 for a 1.0" one (Moffat beta = 3.5).  Positions covered by fewer
than 3 warps are not clipped and do not count.  A cosmic ray or trail on faint sky still stands out (``M``
is then the sky noise); one on a bright star's core in a visit of very different seeing is no longer
rejected, as in CompareWarp.

Cost: ``grid**2`` evaluations of every warp's PSF (kernels of ~25 x 25 pixels): milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..psf import CoaddPsf, PsfModel, pad_kernel

__all__ = ["psf_deviation_fractions", "trimmed_kernel"]


def _local_max(a: np.ndarray, half: int) -> np.ndarray:
    """Maximum over ``(2 half + 1)**2`` boxes (edges: over the part inside), by shifted maxima."""
    out = a.copy()
    for d in range(1, half + 1):
        np.maximum(out[:, d:], a[:, :-d], out=out[:, d:])
        np.maximum(out[:, :-d], a[:, d:], out=out[:, :-d])
    rows = out.copy()
    for d in range(1, half + 1):
        np.maximum(out[d:], rows[:-d], out=out[d:])
        np.maximum(out[:-d], rows[d:], out=out[:-d])
    return out


def trimmed_kernel(kernels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-pixel weighted mean of ``kernels`` (n, s, s) without the highest and lowest (n >= 3), as the
    reference of `opendrp.coadd.ReferenceAccumulator` is computed from the images."""
    k = np.asarray(kernels, float)
    w = np.asarray(weights, float)[:, None, None] * np.ones_like(k)
    if k.shape[0] < 3:
        return (w * k).sum(axis=0) / w.sum(axis=0)
    hi = np.argmax(k, axis=0)[None]
    lo = np.argmin(k, axis=0)[None]
    keep = np.ones_like(k, bool)
    np.put_along_axis(keep, hi, False, axis=0)
    np.put_along_axis(keep, lo, False, axis=0)
    if k.shape[0] == 3:  # ties: keep exactly one (the median)
        keep = np.zeros_like(k, bool)
        np.put_along_axis(keep, np.argsort(k, axis=0)[1:2], True, axis=0)
    ws = np.where(keep, w, 0.0)
    return (ws * k).sum(axis=0) / ws.sum(axis=0)


def psf_deviation_fractions(
    psfs: Sequence[PsfModel | None],
    weights: Sequence[float],
    shape: tuple[int, int],
    *,
    footprint: int = 5,
    grid: int = 3,
    floor: float = 1e-3,
) -> np.ndarray:
    """Per warp, the largest deviation ``f_i`` of a point source from the reference, in units of ``M``.

    Parameters
    ----------
    psfs : sequence of `opendrp.psf.PsfModel` or `None`
        Each warp's PSF in coadd pixel coordinates (a `CoaddPsf` with its footprints; `None`: no PSF,
        ``f_i = 0``).
    weights : sequence of `float`
        The warps' coadd weights (those of the reference).
    shape : `tuple` [`int`, `int`]
        Coadd ``(ny, nx)``.
    footprint : `int`
        Box size (pixels) of the local maximum ``M`` (the rejection's ``clip_footprint``).
    grid : `int`
        Positions per axis where the PSFs are compared (cell centres of a ``grid`` x ``grid`` cut).
    floor : `float`
        Kernel pixels fainter than this fraction of the reference kernel's peak are ignored.

    Returns
    -------
    fractions : `numpy.ndarray`
        ``f_i`` (dimensionless, >= 0) per warp; 0 where a warp never shares a position with 2 others.
    """
    n = len(psfs)
    out = np.zeros(n)
    if n < 3:
        return out
    ny, nx = shape
    half = max(int(footprint), 1) // 2
    xs = (np.arange(grid) + 0.5) * nx / grid - 0.5
    ys = (np.arange(grid) + 0.5) * ny / grid - 0.5
    w_all = np.asarray(weights, float)
    for y in ys:
        for x in xs:
            idx, kernels = [], []
            for i, psf in enumerate(psfs):
                if psf is None or w_all[i] <= 0:
                    continue
                if isinstance(psf, CoaddPsf) and psf.covering(float(x), float(y)).size == 0:
                    continue
                idx.append(i)
                kernels.append(np.asarray(psf.kernel_image(float(x), float(y)), float))
            if len(idx) < 3:
                continue
            size = max(k.shape[0] for k in kernels)
            stack = np.array([pad_kernel(k / k.sum(), size) for k in kernels])
            ref = trimmed_kernel(stack, w_all[idx])
            amp = _local_max(np.abs(ref), half)
            use = ref >= floor * ref.max()
            for j, i in enumerate(idx):
                dev = np.abs(stack[j] - ref)[use] / amp[use]
                out[i] = max(out[i], float(dev.max()))
    return out
