"""Source measurement: centroids, adaptive moments, PSF, aperture, Kron, Petrosian and Gaussian fluxes, flags.

Works on calexps (electrons) and coadds (nJy) alike; with ``centroid=False`` the positions are kept fixed
(forced photometry).  Column names follow Rubin's DP1 ``Source`` schema; fluxes are in image units.
"""

from __future__ import annotations

import numpy as np
import sep
from astropy.table import Table
from scipy import ndimage

from ..image import mask_bit
from ..psf.model import PsfModel
from .centroid import psf_fit_centroids
from .moments import adaptive_moments, moments_to_ellipse
from .petrosian import petrosian_fluxes
from .psf_flux import psf_flux, psf_stamps
from .stamps import gather_stamps, stamp_grid, stamp_index, take_stamps

__all__ = ["DEFAULT_APERTURE_RADII", "aperture_column", "measure_sources", "psf_fwhm", "psf_sigma"]

#: Circular aperture radii (pixels), as Rubin's ``apNNFlux`` columns.
DEFAULT_APERTURE_RADII: tuple[float, ...] = (3.0, 6.0, 9.0, 12.0, 17.0)

_FLAG_PLANES = {
    "saturated": ("SAT",),
    "bad": ("BAD",),
    "cr": ("CR",),
    "interpolated": ("INTRP",),
    "suspect": ("SUSPECT",),
    "edge": ("EDGE", "NO_DATA"),
}


def aperture_column(radius: float) -> str:
    """Column name of a circular-aperture flux of ``radius`` pixels (``ap06Flux`` for 6, ``ap4_5Flux``...)."""
    r = float(radius)
    return f"ap{int(r):02d}Flux" if r == int(r) else f"ap{str(r).replace('.', '_')}Flux"


def psf_sigma(psf: PsfModel, x: float, y: float) -> float:
    """Gaussian-equivalent sigma (pixels) of the PSF at (x, y), from its adaptive moments."""
    k = np.asarray(psf.kernel_image(x, y), float)[None]
    am = adaptive_moments(k, np.ones_like(k, bool), sigma0=2.0, update_centroid=False)
    return float(np.sqrt(0.5 * (am.ixx[0] + am.iyy[0])))


def psf_fwhm(psf: PsfModel, x: float, y: float, *, oversample: int = 5) -> float:
    """FWHM (pixels) of the PSF at (x, y), before pixel integration.

    ``2 sqrt(A / pi)`` with ``A`` the area above half maximum of the kernel, first corrected to first order
    for the pixel response (``k - laplacian(k) / 24``), then interpolated ``oversample`` times finer; for an
    elliptical PSF this is the geometric mean of the axes' FWHM.  Accurate to ~1-2% for FWHM >= 2.5 pixels.
    """
    k = np.asarray(psf.kernel_image(x, y), float)
    k = k - ndimage.laplace(k, mode="constant") / 24.0
    n = k.shape[0]
    fine = ndimage.zoom(k, oversample, order=3)
    scale = (n * oversample - 1) / (n - 1)  # zoom maps the first and last pixel centres onto each other
    area = float(np.count_nonzero(fine >= 0.5 * fine.max())) / scale**2
    return float(2.0 * np.sqrt(area / np.pi))


def _empty_float(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def measure_sources(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    psf: PsfModel | None,
    x: np.ndarray,
    y: np.ndarray,
    *,
    centroid: bool = True,
    aperture_radii: tuple[float, ...] = DEFAULT_APERTURE_RADII,
    calib_radius: float = 12.0,
    kron_factor: float = 2.5,
    kron_min_radius: float = 3.5,
    background: np.ndarray | float | None = None,
    moments_half_size: int | None = None,
    initial_sigma: float = 2.0,
    bad_mask_planes: tuple[str, ...] = ("BAD", "SAT", "NO_DATA", "CR"),
    flag_radius: float | None = None,
    extendedness_min_frac: float = 0.05,
    extendedness_n_sigma: float = 3.0,
    segmentation: np.ndarray | None = None,
    segment_ids: np.ndarray | None = None,
    petrosian: bool = True,
) -> Table:
    """Measure sources at given positions on a background-subtracted image.

    Parameters
    ----------
    image : `numpy.ndarray`
        Background-subtracted image (electrons for visits, nJy per pixel for coadds).
    variance : `numpy.ndarray`
        Variance (image units squared).
    mask : `numpy.ndarray` [int]
        Mask bit planes (`opendrp.image.MASK_PLANES`).
    psf : `opendrp.psf.PsfModel` or `None`
        PSF model; without one, PSF fluxes, PSF moments and extendedness are NaN.
    x, y : `numpy.ndarray`
        Initial (or, with ``centroid=False``, fixed) positions, 0-based pixels.
    centroid : `bool`
        Re-centre each source (Gaussian-windowed centroid with a PSF-sized window; with a PSF, blended
        sources are PSF-fitted with their neighbours' models subtracted, `psf_fit_centroids`); `False` for
        forced photometry.
    aperture_radii : `tuple` [`float`]
        Circular aperture radii (pixels) of the ``apNNFlux`` columns.
    calib_radius : `float`
        Radius (pixels) of the aperture copied to ``calibFlux`` (added to the apertures if absent).
    kron_factor, kron_min_radius : `float`
        Kron aperture = ``kron_factor`` x the Kron radius, at least ``kron_min_radius`` pixels.
    background : `numpy.ndarray` or `float`, optional
        The subtracted background, sampled into the ``sky`` column (image units per pixel).
    moments_half_size : `int`, optional
        Half-size (pixels) of the stamps used for centroids and moments (default: 5 PSF sigma, >= 8).
    initial_sigma : `float`
        Window sigma (pixels) when there is no PSF.
    bad_mask_planes : `tuple` [`str`]
        Pixels excluded from centroids, moments and PSF fits.
    flag_radius : `float`, optional
        Radius (pixels) within which masked pixels set the ``pixelFlags_*`` columns (default 2 PSF FWHM).
    extendedness_min_frac, extendedness_n_sigma : `float`
        A source is extended when its adaptive size ``ixx + iyy`` exceeds the PSF's by more than this
        fraction and this many standard deviations (sources with a saturated centre: when their PSF flux,
        fitted to the unsaturated wings, is below half their ``calibFlux``).
    segmentation : `numpy.ndarray` [int], optional
        Segmentation map of the detections (0 = sky); with ``segment_ids`` (the segment of each source),
        pixels of other sources' segments are ignored (neighbour masking).
    segment_ids : `numpy.ndarray` [int], optional
        Segment id of each source in ``segmentation``.
    petrosian : `bool`
        Measure the Petrosian radius and flux (`opendrp.measurement.petrosian.petrosian_fluxes`).

    Returns
    -------
    sources : `astropy.table.Table`
        ``x``, ``y``, ``xErr``, ``yErr``, ``centroid_flag``, ``centroid_blended``, ``centroid_companion``
        (see `PsfCentroidResult`), ``psfFlux``, ``psfFluxErr``, ``psfFlux_flag``,
        ``psfFlux_chi2``, ``apNNFlux``/``apNNFluxErr``/``apNNFlux_flag``, ``calibFlux``, ``calibFluxErr``,
        ``kronFlux``, ``kronFluxErr``, ``kronRad``, ``kronFlux_flag``, ``gaussianFlux``, ``gaussianFluxErr``,
        ``petrosianFlux``, ``petrosianFluxErr``, ``petrosianRadius`` (pixels), ``petrosian_flag``,
        ``ixx``, ``iyy``, ``ixy``, ``shape_flag``, ``ixxPSF``, ``iyyPSF``, ``ixyPSF``, ``extendedness``,
        ``sky``, ``pixelFlags_{saturated,saturatedCenter,bad,cr,interpolated,suspect,edge}``.
    """
    x = np.atleast_1d(np.asarray(x, np.float64)).copy()
    y = np.atleast_1d(np.asarray(y, np.float64)).copy()
    n = len(x)
    ny, nx = image.shape
    data = np.ascontiguousarray(image, dtype=np.float32)
    var = np.ascontiguousarray(variance, dtype=np.float32)
    if not np.isfinite(var).all():  # copies only when needed (full-size arrays)
        var = np.where(np.isfinite(var), var, np.float32(0.0))
    bad = (np.asarray(mask) & mask_bit(*bad_mask_planes)) != 0
    finite = np.isfinite(data)
    if not finite.all():
        bad |= ~finite
        data = np.where(finite, data, np.float32(0.0))
    del finite
    cx, cy = 0.5 * (nx - 1), 0.5 * (ny - 1)
    sig_psf = psf_sigma(psf, cx, cy) if psf is not None else float(initial_sigma)
    half = int(moments_half_size) if moments_half_size else max(8, int(np.ceil(5.0 * sig_psf)))
    r_flag = float(flag_radius) if flag_radius else max(3.0, 2.0 * 2.3548 * sig_psf)
    if n == 0:
        return _empty_table(aperture_radii, calib_radius)
    out = Table()

    # ---- centroids: Gaussian-windowed, PSF-sized circular window
    ix = np.clip(np.rint(x), 0, nx - 1).astype(np.int64)
    iy = np.clip(np.rint(y), 0, ny - 1).astype(np.int64)
    flat_idx, inside = stamp_index(data.shape, ix, iy, half)
    st = take_stamps(data, flat_idx, inside)
    vst = take_stamps(var, flat_idx, inside)
    valid = inside & ~take_stamps(bad, flat_idx, inside, fill=True)
    use_seg = segmentation is not None and segment_ids is not None
    seg_ids = np.zeros(n, np.int64)
    if segmentation is not None and segment_ids is not None:
        seg_ids = np.asarray(segment_ids, np.int64)
        sst = take_stamps(segmentation, flat_idx, inside, fill=0)
        valid &= (sst == 0) | (sst == seg_ids[:, None, None])
        del sst
    # a pixel counts only if its mirror image through the stamp centre counts too: a symmetric profile then
    # keeps a symmetric window near edges, bad columns and masked neighbours (no centroid or shape bias)
    valid &= valid[:, ::-1, ::-1]
    win = adaptive_moments(
        st,
        valid,
        x0=x - ix,
        y0=y - iy,
        sigma0=sig_psf,
        variance=vst,
        update_centroid=centroid,
        adapt_shape=False,
    )
    x_err, y_err, c_flag = win.x_err, win.y_err, win.flag if centroid else np.zeros(n, bool)
    c_blended, c_companion = np.zeros(n, bool), np.zeros(n, bool)
    if centroid:
        x, y = ix + win.x, iy + win.y
        _saturated_centroids(np.asarray(mask), x, y, ix, iy, half, segmentation, seg_ids if use_seg else None)
        if psf is not None:  # blended sources: PSF fits with the neighbours' models subtracted (centroid.py)
            sat = gather_stamps((np.asarray(mask) & mask_bit("SAT")) != 0, ix, iy, 1, fill=False)[0]
            pfit = psf_fit_centroids(data, var, bad, psf, x, y, fixed=sat.any(axis=(1, 2)))
            fitted = np.isfinite(pfit.x_err) | pfit.companion
            x, y, c_flag = pfit.x, pfit.y, np.where(fitted, pfit.flag, c_flag | pfit.flag)
            x_err = np.where(np.isfinite(pfit.x_err), pfit.x_err, x_err)
            y_err = np.where(np.isfinite(pfit.y_err), pfit.y_err, y_err)
            c_blended, c_companion = pfit.blended, pfit.companion
    # ---- adaptive moments at the fixed centroid
    am = adaptive_moments(
        st, valid, x0=x - ix, y0=y - iy, sigma0=sig_psf, variance=vst, update_centroid=False
    )
    out["x"], out["y"] = x, y
    out["xErr"], out["yErr"] = x_err, y_err
    out["centroid_flag"] = c_flag
    out["centroid_blended"], out["centroid_companion"] = c_blended, c_companion

    # ---- PSF photometry and PSF moments
    if psf is not None:
        pst, pix, piy = psf_stamps(psf, x, y)
        pf = psf_flux(
            data,
            var,
            bad,
            pst,
            pix,
            piy,
            segmentation=segmentation if use_seg else None,
            segment_ids=seg_ids if use_seg else None,
        )
        out["psfFlux"], out["psfFluxErr"] = pf.flux, pf.flux_err
        out["psfFlux_flag"] = pf.flag
        out["psfFlux_chi2"] = pf.chi2
        pam = adaptive_moments(
            pst, np.ones_like(pst, bool), x0=x - pix, y0=y - piy, sigma0=sig_psf, update_centroid=False
        )
        ixx_psf, iyy_psf, ixy_psf = pam.ixx, pam.iyy, pam.ixy
    else:
        out["psfFlux"], out["psfFluxErr"] = _empty_float(n), _empty_float(n)
        out["psfFlux_flag"] = np.ones(n, bool)
        out["psfFlux_chi2"] = _empty_float(n)
        ixx_psf = iyy_psf = ixy_psf = _empty_float(n)

    # ---- circular apertures
    sep_mask = np.ascontiguousarray(((np.asarray(mask) & mask_bit("NO_DATA")) != 0) | ~np.isfinite(image))
    radii = list(dict.fromkeys([float(r) for r in aperture_radii] + [float(calib_radius)]))
    seg_kw: dict = {}
    if use_seg:
        seg_kw = {
            "segmap": np.ascontiguousarray(segmentation, dtype=np.int32),
            "seg_id": seg_ids.astype(np.int32),
        }
    for r in radii:
        f, e, fl = sep.sum_circle(data, x, y, r, var=var, mask=sep_mask, subpix=5, **seg_kw)
        name = aperture_column(r)
        out[name], out[name + "Err"] = f.astype(float), e.astype(float)
        out[name + "_flag"] = (fl & (sep.APER_TRUNC | sep.APER_HASMASKED)) != 0
    cal = aperture_column(calib_radius)
    out["calibFlux"], out["calibFluxErr"] = out[cal], out[cal + "Err"]
    out["calibFlux_flag"] = out[cal + "_flag"]

    # ---- Kron photometry (ellipse from the adaptive moments; PSF-sized circle when these failed)
    shape_ok = ~am.flag
    ixx = np.where(shape_ok, am.ixx, sig_psf**2)
    iyy = np.where(shape_ok, am.iyy, sig_psf**2)
    ixy = np.where(shape_ok, am.ixy, 0.0)
    a, b, theta = moments_to_ellipse(ixx, iyy, ixy)
    a, b = np.maximum(a, 0.5), np.maximum(b, 0.5)
    kr, kflag = sep.kron_radius(data, x, y, a, b, theta, 6.0, mask=sep_mask)
    kr = np.where(np.isfinite(kr) & (kr > 0), kr, 0.0)
    k_ell = kron_factor * kr
    use_circle = k_ell * np.sqrt(a * b) < kron_min_radius
    kflux = np.full(n, np.nan)
    kerr = np.full(n, np.nan)
    kfl = np.zeros(n, bool)
    el = ~use_circle
    if el.any():
        f, e, fl = sep.sum_ellipse(
            data, x[el], y[el], a[el], b[el], theta[el], k_ell[el], var=var, mask=sep_mask, subpix=1
        )
        kflux[el], kerr[el], kfl[el] = f, e, (fl & sep.APER_TRUNC) != 0
    if use_circle.any():
        f, e, fl = sep.sum_circle(
            data, x[use_circle], y[use_circle], kron_min_radius, var=var, mask=sep_mask, subpix=5
        )
        kflux[use_circle], kerr[use_circle], kfl[use_circle] = f, e, (fl & sep.APER_TRUNC) != 0
    out["kronFlux"], out["kronFluxErr"] = kflux, kerr
    out["kronRad"] = kr * np.sqrt(a * b)
    out["kronFlux_flag"] = kfl | (kflag != 0) | (kr <= 0)

    # ---- Petrosian radius (eta = 0.2) and flux within 2 Petrosian radii (SDSS)
    if petrosian:
        pet = petrosian_fluxes(data, x, y, variance=var, mask=sep_mask, **_petrosian_seg(seg_kw))
        out["petrosianFlux"], out["petrosianFluxErr"] = pet.flux, pet.flux_err
        out["petrosianRadius"] = pet.radius
        out["petrosian_flag"] = pet.flag

    # ---- Gaussian flux and moments
    out["gaussianFlux"], out["gaussianFluxErr"] = am.flux, am.flux_err
    out["ixx"], out["iyy"], out["ixy"] = am.ixx, am.iyy, am.ixy
    out["shape_flag"] = am.flag
    out["ixxPSF"], out["iyyPSF"], out["ixyPSF"] = ixx_psf, iyy_psf, ixy_psf

    # ---- extendedness: adaptive size significantly larger than the PSF's
    if psf is not None:
        t_obj, t_psf = am.ixx + am.iyy, ixx_psf + iyy_psf
        snr = np.abs(out["psfFlux"] / out["psfFluxErr"])
        t_err = 2.0 * t_obj / np.maximum(snr, 1e-3)
        ext = (t_obj - t_psf) > np.maximum(extendedness_min_frac * t_psf, extendedness_n_sigma * t_err)
        out["extendedness"] = np.where(am.flag | ~np.isfinite(snr), np.nan, ext.astype(float))
    else:
        out["extendedness"] = _empty_float(n)

    # ---- sky and pixel flags
    if background is None:
        out["sky"] = np.zeros(n)
    elif np.ndim(background) == 0:
        out["sky"] = np.full(n, float(background))  # type: ignore[arg-type]
    else:
        out["sky"] = np.asarray(background)[
            np.clip(np.rint(y), 0, ny - 1).astype(int), np.clip(np.rint(x), 0, nx - 1).astype(int)
        ]
    _pixel_flags(out, np.asarray(mask), x, y, r_flag)
    if psf is not None:
        # saturated sources: their moments see a hollow core; use the flux ratio instead (a star's PSF fit
        # to the wings exceeds its clipped aperture flux, a galaxy's aperture flux exceeds its PSF flux)
        sat = np.asarray(out["pixelFlags_saturatedCenter"])
        if sat.any():
            ratio_ext = np.asarray(out["psfFlux"]) < 0.5 * np.asarray(out["calibFlux"])
            ext_col = np.asarray(out["extendedness"], float)
            ext_col[sat] = np.where(
                np.asarray(out["psfFlux_flag"])[sat], np.nan, ratio_ext[sat].astype(float)
            )
            out["extendedness"] = ext_col
    return out


def _petrosian_seg(seg_kw: dict) -> dict:
    """The segmentation arguments of the circular apertures, for `petrosian_fluxes`."""
    return {"segmap": seg_kw["segmap"], "seg_id": seg_kw["seg_id"]} if seg_kw else {}


def _saturated_centroids(
    mask: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    ix: np.ndarray,
    iy: np.ndarray,
    half: int,
    segmentation: np.ndarray | None,
    seg_ids: np.ndarray | None,
) -> None:
    """Centroids (in place) of sources with a saturated centre: the mean position of their saturated pixels.

    The saturated plateau and its bleed trails spread symmetrically about the star, while a windowed centroid
    on the unsaturated pixels around a hollow core is easily pulled by a pixel or two.
    """
    sat_st, inside = gather_stamps((mask & mask_bit("SAT")) != 0, ix, iy, half, fill=False)
    centre = sat_st[:, half - 1 : half + 2, half - 1 : half + 2].any(axis=(1, 2))
    if not centre.any():
        return
    w = sat_st[centre] & inside[centre]
    if segmentation is not None and seg_ids is not None:
        sst, _ = gather_stamps(segmentation, ix[centre], iy[centre], half, fill=0)
        w &= (sst == 0) | (sst == seg_ids[centre][:, None, None])
    gx, gy = stamp_grid(half)
    cnt = w.sum(axis=(1, 2))
    ok = cnt > 0
    sx = (w * gx).sum(axis=(1, 2)) / np.maximum(cnt, 1)
    sy = (w * gy).sum(axis=(1, 2)) / np.maximum(cnt, 1)
    idx = np.flatnonzero(centre)[ok]
    x[idx] = ix[idx] + sx[ok]
    y[idx] = iy[idx] + sy[ok]


def _pixel_flags(out: Table, mask: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float) -> None:
    ny, nx = mask.shape
    half = int(np.ceil(radius))
    ix, iy = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
    mst, inside = gather_stamps(mask, ix, iy, half, fill=0)
    offs = np.arange(-half, half + 1)
    disk = (offs[None, :] ** 2 + offs[:, None] ** 2) <= radius**2
    centre = (np.abs(offs[None, :]) <= 1) & (np.abs(offs[:, None]) <= 1)
    for name, planes in _FLAG_PLANES.items():
        hit = (mst & mask_bit(*planes)) != 0
        out[f"pixelFlags_{name}"] = (hit & disk).any(axis=(1, 2))
        if name == "saturated":
            out["pixelFlags_saturatedCenter"] = (hit & centre).any(axis=(1, 2))
    near_edge = (x < radius) | (y < radius) | (x > nx - 1 - radius) | (y > ny - 1 - radius)
    out["pixelFlags_edge"] = (
        np.asarray(out["pixelFlags_edge"]) | near_edge | ~(inside & disk).any(axis=(1, 2))
    )


def _empty_table(aperture_radii: tuple[float, ...], calib_radius: float) -> Table:
    """A zero-row table with the columns of `measure_sources`."""
    one = measure_sources(
        np.zeros((32, 32), np.float32),
        np.ones((32, 32), np.float32),
        np.zeros((32, 32), np.int32),
        None,
        np.array([16.0]),
        np.array([16.0]),
        aperture_radii=aperture_radii,
        calib_radius=calib_radius,
    )
    return one[:0]
