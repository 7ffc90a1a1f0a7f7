"""Coadd assembly: inverse-variance weighted mean of warps, with streaming two-pass artifact rejection.

Rules (all documented choices):

* **Weights**: one per warp, ``1 / <variance>``, the 3-sigma-clipped mean variance of its good pixels.
* **Contributing pixels**: not NO_DATA and none of ``bad_mask_planes`` (default BAD, SAT), finite positive
  variance, and not clipped.
* **Value**: ``sum(w I) / sum(w)`` over the contributing pixels (nJy per pixel); variance
  ``sum(w**2 var) / sum(w)**2``.  Where every *covering* warp (not NO_DATA) is excluded, the value falls back
  to the weighted mean of the covering warps and the variance to ``1 / sum(w)`` (flagged by the bad planes).
  Where no warp covers a pixel: image 0, variance +inf, ``NO_DATA``.
* **Artifact rejection** (``clip_sigma`` set, pixels with >= 3 contributing inputs): a first pass builds a
  robust reference, the weighted mean with the highest and lowest input removed per pixel (the median for 3
  inputs), and the weighted scatter ``s**2`` of those remaining inputs; a second pass rejects a warp pixel
  when
  ``(I - ref)**2 > clip_sigma**2 (var + var_ref + s**2) + (clip_fraction M)**2`` where ``M`` is the maximum of
  ``|ref|`` over ``clip_footprint`` x ``clip_footprint`` pixels.  The last two terms protect real sources: the
  scatter term the intrinsic spread between inputs, the ``M`` term (SWarp's CLIPPED combine uses ``|ref|``;
  the local maximum also covers the wings) star cores and wings under different seeing.  An artifact in one
  input (cosmic ray, trail) on faint sky stands out; one within a few pixels of a bright source may not be
  rejected.  Rejected pixels are marked ``CLIPPED`` and ``INEXACT_PSF`` in the coadd.
* **Mask**: ``or_mask_planes`` (CR, INTRP, EDGE, SUSPECT, STREAK, SENSOR_EDGE) are OR-ed over contributing
  inputs; a plane in ``mask_fraction_thresholds`` (default ``{"SAT": 0.1}``, Rubin's rule) is set where the
  weight fraction of covering inputs having it exceeds the threshold; bad planes are also set where every
  covering input was excluded; ``INEXACT_PSF`` where an input was excluded or clipped; ``NO_DATA`` where no
  input covers the pixel.
* **PSF**: `opendrp.psf.CoaddPsf` combining the warps' PSFs with the warp weights: at each position the
  weighted mean of the kernels of the warps covering it.

Memory (``n`` = pixels of the coadd): pass 1 holds 5 float32, 1 float64 and 3 uint16 arrays (34 n bytes),
pass 2 the reference (2 float32) and 7 accumulators (36 n bytes), plus one warp at a time (12 n bytes):
~0.8 GB for 4000 x 4000.
The warps are visited twice (once without clipping), so a lazy sequence that reads each warp from disk on
access keeps only one warp in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from astropy.wcs import WCS
from scipy import ndimage

from ..errors import ConfigurationError
from ..image.exposure import Exposure
from ..image.mask import mask_bit
from ..image.photo_calib import PhotoCalib
from ..psf import CoaddPsf, PsfModel
from .mapping import BBox
from .warp import warp_bbox

__all__ = [
    "DEFAULT_BAD_MASK_PLANES",
    "DEFAULT_MASK_FRACTION_THRESHOLDS",
    "DEFAULT_OR_MASK_PLANES",
    "CoaddAccumulator",
    "ReferenceAccumulator",
    "assemble_coadd",
    "warp_weight",
]

#: Warp pixels with these planes do not contribute to the coadd.
DEFAULT_BAD_MASK_PLANES: tuple[str, ...] = ("BAD", "SAT")
#: Planes OR-ed over the contributing inputs.
DEFAULT_OR_MASK_PLANES: tuple[str, ...] = ("CR", "INTRP", "EDGE", "SUSPECT", "STREAK", "SENSOR_EDGE")
#: Planes set where the weight fraction of covering inputs having them exceeds the threshold.
DEFAULT_MASK_FRACTION_THRESHOLDS: Mapping[str, float] = {"SAT": 0.1}

_CHUNK_PIXELS = 65536
_NO_DATA = mask_bit("NO_DATA")


def _row_chunks(bbox: BBox) -> list[tuple[int, int]]:
    step = max(1, _CHUNK_PIXELS // max(bbox.width, 1))
    return [(r, min(r + step, bbox.y1)) for r in range(bbox.y0, bbox.y1, step)]


def warp_weight(warp: Exposure, *, bad_mask_planes: Sequence[str] = DEFAULT_BAD_MASK_PLANES) -> float:
    """Inverse of the 3-sigma-clipped mean variance (nJy**-2) of a warp's good pixels; 0 if it has none."""
    bbox = warp_bbox(warp)
    rows, cols = bbox.slices
    var = warp.variance[rows, cols][::2, ::2]
    mask = warp.mask[rows, cols][::2, ::2]
    good = ((mask & mask_bit("NO_DATA", *bad_mask_planes)) == 0) & np.isfinite(var) & (var > 0)
    values = var[good].astype(np.float64)
    if values.size == 0:
        return 0.0
    for _ in range(3):
        mean, std = values.mean(), values.std()
        keep = np.abs(values - mean) <= 3.0 * std
        if keep.all() or keep.sum() < 10:
            break
        values = values[keep]
    return float(1.0 / values.mean())


class ReferenceAccumulator:
    """First pass of artifact rejection: per-pixel weighted mean without the highest and lowest input.

    Parameters
    ----------
    shape : `tuple` [`int`, `int`]
        Coadd ``(ny, nx)``.
    bad_mask_planes : sequence of `str`
        Warp pixels with these planes (and NO_DATA) are ignored.
    """

    def __init__(self, shape: tuple[int, int], *, bad_mask_planes: Sequence[str] = DEFAULT_BAD_MASK_PLANES):
        self.shape = (int(shape[0]), int(shape[1]))
        self._bad = mask_bit("NO_DATA", *bad_mask_planes)
        self._sum = np.zeros(self.shape, np.float32)
        self._sum_sq = np.zeros(self.shape, np.float64)
        self._weight = np.zeros(self.shape, np.float32)
        self._var = np.zeros(self.shape, np.float32)
        self._hi = np.full(self.shape, -np.inf, np.float32)
        self._lo = np.full(self.shape, np.inf, np.float32)
        self._hi_idx = np.zeros(self.shape, np.uint16)
        self._lo_idx = np.zeros(self.shape, np.uint16)
        self._count = np.zeros(self.shape, np.uint16)
        self._weights: list[float] = []

    def add(self, warp: Exposure, weight: float) -> None:
        """Accumulate one warp with its weight."""
        if len(self._weights) >= np.iinfo(np.uint16).max:
            raise ValueError("too many inputs for one coadd")
        if warp.shape != self.shape:
            raise ValueError(f"warp shape {warp.shape} differs from the coadd shape {self.shape}")
        idx = len(self._weights)
        self._weights.append(float(weight))
        if weight <= 0:
            return
        w = np.float32(weight)
        bbox = warp_bbox(warp)
        for r0, r1 in _row_chunks(bbox):
            sl = (slice(r0, r1), slice(bbox.x0, bbox.x1))
            img, var, msk = warp.image[sl], warp.variance[sl], warp.mask[sl]
            ok = ((msk & self._bad) == 0) & (var > 0) & (var < np.inf)
            wimg = img * w
            np.add(self._sum[sl], wimg, out=self._sum[sl], where=ok)
            np.add(self._sum_sq[sl], wimg.astype(np.float64) * img, out=self._sum_sq[sl], where=ok)
            np.add(self._weight[sl], w, out=self._weight[sl], where=ok)
            np.add(self._var[sl], var * (w * w), out=self._var[sl], where=ok)
            np.add(self._count[sl], 1, out=self._count[sl], where=ok, casting="unsafe")
            hi = ok & (img > self._hi[sl])
            np.copyto(self._hi[sl], img, where=hi)
            np.copyto(self._hi_idx[sl], idx, where=hi, casting="unsafe")
            lo = ok & (img <= self._lo[sl])
            np.copyto(self._lo[sl], img, where=lo)
            np.copyto(self._lo_idx[sl], idx, where=lo, casting="unsafe")

    def finish(
        self, *, clip_sigma: float = 3.0, clip_fraction: float = 0.3, clip_footprint: int = 5
    ) -> tuple[np.ndarray, np.ndarray]:
        """The reference image (nJy) and its tolerance variance (nJy**2).

        The tolerance variance is the variance of the trimmed mean plus the weighted scatter of the trimmed
        inputs plus ``(clip_fraction M / clip_sigma)**2`` (``M``: local maximum of ``|ref|``); +inf where
        fewer than 3 inputs.  The accumulators are released.
        """
        weights = np.asarray(self._weights + [0.0], np.float32)
        w_hi = np.where(self._count >= 3, weights[self._hi_idx], 0).astype(np.float32)
        w_lo = np.where(self._count >= 3, weights[self._lo_idx], 0).astype(np.float32)
        hi = np.where(w_hi > 0, self._hi, 0).astype(np.float32)
        lo = np.where(w_lo > 0, self._lo, 0).astype(np.float32)
        w_trim = self._weight - w_hi - w_lo
        has = (self._count >= 3) & (w_trim > 0)
        ref = np.zeros(self.shape, np.float32)
        np.divide(self._sum - w_hi * hi - w_lo * lo, w_trim, out=ref, where=has)
        s2 = self._sum_sq - w_hi * hi.astype(np.float64) ** 2 - w_lo * lo.astype(np.float64) ** 2
        scatter = np.zeros(self.shape, np.float64)
        np.divide(s2, w_trim, out=scatter, where=has)
        scatter -= ref.astype(np.float64) ** 2
        np.maximum(scatter, 0.0, out=scatter)
        # variance of the trimmed mean, assuming var_i ~ c / w_i with c from the untrimmed sums
        tol_var = np.full(self.shape, np.inf, np.float32)
        np.divide(self._var, self._weight * w_trim, out=tol_var, where=has)
        np.add(tol_var, scatter.astype(np.float32), out=tol_var, where=has)
        if clip_fraction > 0:
            amp = ndimage.maximum_filter(np.abs(ref), size=max(int(clip_footprint), 1), mode="nearest")
            amp *= clip_fraction / clip_sigma
            amp *= amp
            np.add(tol_var, amp, out=tol_var, where=has)
        # where clipping is off (< 3 inputs) the reference is the plain mean
        plain = ~has & (self._weight > 0)
        np.divide(self._sum, self._weight, out=ref, where=plain)
        for name in ("_sum", "_sum_sq", "_weight", "_var", "_hi", "_lo", "_hi_idx", "_lo_idx", "_count"):
            setattr(self, name, None)
        return ref, tol_var


class CoaddAccumulator:
    """Streaming weighted-mean coadd: ``add`` warps one at a time, then ``finish``.

    Parameters
    ----------
    shape : `tuple` [`int`, `int`]
        Coadd ``(ny, nx)`` (the warps' full shape).
    wcs : `astropy.wcs.WCS`, optional
        Coadd WCS (default: the first warp's).
    reference : `tuple` [`numpy.ndarray`, `numpy.ndarray`], optional
        ``(ref, tolerance variance)`` from `ReferenceAccumulator.finish`; enables artifact rejection.
    clip_sigma : `float`
        Rejection threshold: ``(I - ref)**2 > clip_sigma**2 (var + tolerance variance)``.
    bad_mask_planes, or_mask_planes, mask_fraction_thresholds
        Mask rules, see the module notes.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        wcs: WCS | None = None,
        *,
        reference: tuple[np.ndarray, np.ndarray] | None = None,
        clip_sigma: float = 3.0,
        bad_mask_planes: Sequence[str] = DEFAULT_BAD_MASK_PLANES,
        or_mask_planes: Sequence[str] = DEFAULT_OR_MASK_PLANES,
        mask_fraction_thresholds: Mapping[str, float] = DEFAULT_MASK_FRACTION_THRESHOLDS,
    ) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.wcs = wcs
        self.reference = reference
        self.clip_sigma = float(clip_sigma)
        self._bad_planes = mask_bit(*bad_mask_planes) if bad_mask_planes else 0
        self._or_planes = mask_bit(*or_mask_planes) if or_mask_planes else 0
        self._thresholds = {mask_bit(k): float(v) for k, v in mask_fraction_thresholds.items()}
        self._sum = np.zeros(self.shape, np.float32)
        self._weight = np.zeros(self.shape, np.float32)
        self._var = np.zeros(self.shape, np.float32)
        self._sum_cover = np.zeros(self.shape, np.float32)
        self._weight_cover = np.zeros(self.shape, np.float32)
        self._mask = np.zeros(self.shape, np.int32)
        self._plane_weight = {bit: np.zeros(self.shape, np.float32) for bit in self._thresholds}
        self.inputs: list[dict] = []
        self._psfs: list[tuple[PsfModel, float, BBox]] = []
        self.n_clipped = 0

    def add(self, warp: Exposure, weight: float | None = None) -> float:
        """Accumulate one warp; returns the weight used (`warp_weight` by default)."""
        if warp.shape != self.shape:
            raise ValueError(f"warp shape {warp.shape} differs from the coadd shape {self.shape}")
        if weight is None:
            weight = warp_weight(warp)
        if self.wcs is None:
            self.wcs = warp.wcs
        bbox = warp_bbox(warp)
        self.inputs.append(
            {
                "visit": warp.metadata.get("visit"),
                "detector": warp.metadata.get("detector"),
                "weight": float(weight),
            }
        )
        if weight <= 0:
            return float(weight)
        if warp.psf is not None:
            self._psfs.append((warp.psf, float(weight), bbox))
        w = np.float32(weight)
        clip_bits = mask_bit("CLIPPED", "INEXACT_PSF")
        inexact = mask_bit("INEXACT_PSF")
        excluded_bits = self._bad_planes & ~_NO_DATA
        for r0, r1 in _row_chunks(bbox):
            sl = (slice(r0, r1), slice(bbox.x0, bbox.x1))
            img, var, msk = warp.image[sl], warp.variance[sl], warp.mask[sl]
            cover = ((msk & _NO_DATA) == 0) & (var > 0) & (var < np.inf)
            ok = cover & ((msk & self._bad_planes) == 0)
            if self.reference is not None:
                ref = self.reference[0][sl]
                resid = img - ref
                resid *= resid
                tol = var + self.reference[1][sl]
                tol *= self.clip_sigma**2
                clipped = ok & (resid > tol)
                n_clip = int(np.count_nonzero(clipped))
                if n_clip:
                    self.n_clipped += n_clip
                    ok &= ~clipped
                    np.bitwise_or(self._mask[sl], clip_bits, out=self._mask[sl], where=clipped)
            wimg = img * w
            np.add(self._sum[sl], wimg, out=self._sum[sl], where=ok)
            np.add(self._weight[sl], w, out=self._weight[sl], where=ok)
            np.add(self._var[sl], var * (w * w), out=self._var[sl], where=ok)
            np.add(self._sum_cover[sl], wimg, out=self._sum_cover[sl], where=cover)
            np.add(self._weight_cover[sl], w, out=self._weight_cover[sl], where=cover)
            np.bitwise_or(self._mask[sl], msk & self._or_planes, out=self._mask[sl], where=ok)
            excluded = cover & ~ok
            np.bitwise_or(self._mask[sl], (msk & excluded_bits) | inexact, out=self._mask[sl], where=excluded)
            for bit, acc in self._plane_weight.items():
                np.add(acc[sl], w, out=acc[sl], where=cover & ((msk & bit) != 0))
        return float(weight)

    def finish(self) -> Exposure:
        """The coadd `opendrp.image.Exposure` (nJy; ``photo_calib = PhotoCalib(1.0)``)."""
        weight, cover = self._weight, self._weight_cover
        has = weight > 0
        fallback = ~has & (cover > 0)
        image = np.zeros(self.shape, np.float32)
        np.divide(self._sum, weight, out=image, where=has)
        np.divide(self._sum_cover, cover, out=image, where=fallback)
        variance = np.full(self.shape, np.inf, np.float32)
        np.divide(self._var, weight * weight, out=variance, where=has)
        np.divide(1.0, cover, out=variance, where=fallback)
        mask = self._mask & ~(self._bad_planes & ~_NO_DATA)  # bad planes: only by the rules below
        mask |= np.where(fallback, self._mask & self._bad_planes, 0).astype(np.int32)
        mask &= ~np.where(has, 0, mask_bit("INEXACT_PSF")).astype(np.int32)
        for bit, acc in self._plane_weight.items():
            threshold = self._thresholds[bit]
            with np.errstate(invalid="ignore", divide="ignore"):
                frac = np.where(cover > 0, acc / cover, 0.0)
            hit = frac >= 1.0 - 1e-6 if threshold >= 1.0 else frac > threshold
            mask[hit] |= bit
        mask[cover == 0] = _NO_DATA
        visits = sorted({int(i["visit"]) for i in self.inputs if i["visit"] is not None})
        metadata = {
            "NINPUTS": sum(1 for i in self.inputs if i["weight"] > 0),
            "NVISITS": len(visits),
            "visits": visits,
            "inputs": list(self.inputs),
            "NCLIPPED": int(self.n_clipped),
        }
        return Exposure(
            image,
            mask,
            variance,
            wcs=self.wcs,
            psf=_combine_psfs(self._psfs),
            photo_calib=PhotoCalib(1.0),
            metadata=metadata,
        )


def _combine_psfs(parts: Sequence[tuple[PsfModel, float, BBox]]) -> CoaddPsf | None:
    """`CoaddPsf` of the warps' PSFs with their weights (a non-CoaddPsf covers its warp's box)."""
    if not parts:
        return None
    pieces: list[tuple[PsfModel, float]] = []
    for psf, weight, bbox in parts:
        if not isinstance(psf, CoaddPsf):
            xc, yc = 0.5 * (bbox.x0 + bbox.x1 - 1), 0.5 * (bbox.y0 + bbox.y1 - 1)
            x0, x1, y0, y1 = bbox.x0 - 0.5, bbox.x1 - 0.5, bbox.y0 - 0.5, bbox.y1 - 0.5
            polygon = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
            psf = CoaddPsf(psf.kernel_image(xc, yc)[np.newaxis], np.ones(1), [polygon])
        pieces.append((psf, weight))
    return CoaddPsf.combine(pieces)


def assemble_coadd(
    warps: Sequence[Exposure],
    *,
    statistic: str = "mean",
    clip_sigma: float | None = 3.0,
    clip_fraction: float = 0.3,
    clip_footprint: int = 5,
    weights: Sequence[float] | None = None,
    bad_mask_planes: Sequence[str] = DEFAULT_BAD_MASK_PLANES,
    or_mask_planes: Sequence[str] = DEFAULT_OR_MASK_PLANES,
    mask_fraction_thresholds: Mapping[str, float] = DEFAULT_MASK_FRACTION_THRESHOLDS,
) -> Exposure:
    """Coadd warps of one patch and band (see the module notes for every rule).

    Parameters
    ----------
    warps : sequence of `opendrp.image.Exposure`
        Warps on the same grid (nJy); may be a lazy sequence: each warp is read once per pass.
    statistic : `str`
        ``mean``: inverse-variance weighted mean (the only statistic of v0).
    clip_sigma : `float` or `None`
        Artifact rejection threshold (noise sigmas); `None` disables the first pass and the rejection.
    clip_fraction : `float`
        Extra rejection tolerance as a fraction of the local maximum of the reference.
    clip_footprint : `int`
        Size (pixels) of the box over which that maximum is taken.
    weights : sequence of `float`, optional
        Weights per warp (default: `warp_weight`, inverse mean variance).
    bad_mask_planes, or_mask_planes, mask_fraction_thresholds
        Mask rules.

    Returns
    -------
    coadd : `opendrp.image.Exposure`
        Image in nJy per pixel, variance nJy**2, `CoaddPsf`, ``PhotoCalib(1.0)``, the warps' WCS; metadata
        ``NINPUTS``, ``NVISITS``, ``NCLIPPED``, ``visits`` (list), ``inputs`` (list of dicts).
    """
    if statistic != "mean":
        raise ConfigurationError(f"unknown statistic {statistic!r}", where="statistic", fix="use 'mean'")
    if len(warps) == 0:
        raise ValueError("assemble_coadd: no warps")
    if weights is not None and len(weights) != len(warps):
        raise ValueError(f"{len(weights)} weights for {len(warps)} warps")
    first = warps[0]
    shape, wcs = first.shape, first.wcs
    del first  # a lazy sequence then holds at most one warp at a time
    reference = None
    weight_list: list[float] = []
    if clip_sigma is not None and len(warps) >= 3:
        ref_acc = ReferenceAccumulator(shape, bad_mask_planes=bad_mask_planes)
        for k in range(len(warps)):
            warp = warps[k]
            w = warp_weight(warp, bad_mask_planes=bad_mask_planes) if weights is None else float(weights[k])
            weight_list.append(w)
            ref_acc.add(warp, w)
            del warp
        reference = ref_acc.finish(
            clip_sigma=clip_sigma, clip_fraction=clip_fraction, clip_footprint=clip_footprint
        )
        del ref_acc
    elif weights is not None:
        weight_list = [float(w) for w in weights]
    acc = CoaddAccumulator(
        shape,
        wcs,
        reference=reference,
        clip_sigma=clip_sigma if clip_sigma is not None else 3.0,
        bad_mask_planes=bad_mask_planes,
        or_mask_planes=or_mask_planes,
        mask_fraction_thresholds=mask_fraction_thresholds,
    )
    for k in range(len(warps)):
        acc.add(warps[k], weight_list[k] if weight_list else None)
    return acc.finish()
