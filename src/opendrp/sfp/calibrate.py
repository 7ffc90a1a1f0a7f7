"""Single-frame characterization and calibration of a post-ISR exposure.

background -> detection -> first measurement -> PSF star selection -> PSF model -> measurement ->
astrometric match and TAN-SIP fit -> zero point -> Source catalog in nJy.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from ..astrometry.match import AstrometryResult, fit_wcs_to_refcat
from ..background import BackgroundModel, estimate_background
from ..detection import detect_sources, significance_mask
from ..errors import AlgorithmError, ConfigurationError
from ..image import Exposure, PhotoCalib, mask_bit
from ..isr import find_cosmic_rays, grow_mask, repair_cosmic_rays
from ..measurement import aperture_column, measure_sources, psf_fwhm, psf_sigma
from ..measurement.apcorr import apply_aperture_corrections, fit_aperture_corrections
from ..photometry import ColourTerm, fit_zero_point, library_colour_terms, reference_colour
from ..psf.fit import fit_psf, min_stars_for_degree
from .star_selection import select_psf_stars

__all__ = ["FLUX_COLUMNS", "CalibrateConfig", "CalibrateResult", "calibrate_exposure", "source_id_base"]


@dataclasses.dataclass
class CalibrateConfig:
    """Configuration of `calibrate_exposure` (pixels, arcsec and S/N unless stated)."""

    background_bin_size: int = 128
    """Background mesh cell size (pixels)."""
    background_subsample: int = 2
    """Background cells are sampled every this many pixels in x and y (speed)."""
    background_mask_threshold: float = 3.0
    """Pixels above this significance (filtered image, sigma) are masked for the second background."""
    background_mask_grow: int = 4
    """The masked source pixels are grown by this many pixels before the second background estimate."""
    do_cosmic_rays: bool = True
    """Find, mask (``CR``) and interpolate cosmic rays before detection."""
    cr_min_fwhm: float = 2.0
    """FWHM (pixels) of the sharpest PSF the data can have: anything sharper is a cosmic ray."""
    cr_threshold: float = 6.0
    """Only pixels above this significance (sigma) can be cosmic rays."""
    cr_psf_fwhm_fraction: float = 0.7
    """Second cosmic-ray pass once the PSF is known: pixels sharper than a PSF of this fraction of the model's
    FWHM (when larger than ``cr_min_fwhm``) are cosmic rays too (finds them on bright objects); 0: no pass."""
    detection_threshold: float = 5.0
    """Detection threshold (standard deviations of the PSF-filtered image)."""
    detection_min_area: int = 5
    """Minimum footprint area (pixels)."""
    detection_kernel_fwhm: float = 3.0
    """FWHM (pixels) of the Gaussian detection filter (about the expected seeing)."""
    aperture_radii: tuple[float, ...] = (3.0, 6.0, 9.0, 12.0, 17.0)
    """Radii (pixels) of the ``apNNFlux`` circular apertures."""
    calib_radius: float = 12.0
    """Radius (pixels) of the aperture copied to ``calibFlux``."""
    do_aperture_correction: bool = True
    """Scale psfFlux, gaussianFlux and kronFlux to calibFlux with corrections fitted on the PSF stars."""
    aperture_correction_degree: int = 2
    """Polynomial degree in the CCD position of the aperture corrections (lowered when stars are few)."""
    psf_size: int = 25
    """PSF model stamp size (pixels, odd)."""
    psf_degree: int = 2
    """Spatial polynomial degree of the PSF (lowered automatically when stars are few)."""
    psf_min_snr: float = 50.0
    """Minimum S/N of PSF stars."""
    psf_max_stars: int = 300
    """Most PSF stars used (the brightest)."""
    psf_min_stars: int = 5
    """Fewest PSF stars: fewer raise AlgorithmError."""
    psf_isolation_radius: float = 12.0
    """PSF stars have no detected neighbour brighter than 2% of them within this radius (pixels)."""
    astrometry_order: int = 3
    """TAN-SIP polynomial order."""
    astrometry_min_snr: float = 10.0
    """Minimum PSF-flux S/N of sources used for astrometric matching."""
    astrometry_min_matches: int = 6
    """Fewest astrometric matches: fewer raise AlgorithmError."""
    max_offset_arcsec: float = 20.0
    """Largest pointing error searched by the matcher (arcsec)."""
    max_rotation_deg: float = 0.3
    """Largest rotation error searched by the matcher (degrees)."""
    match_radius_arcsec: float = 1.0
    """Final matching radius (arcsec)."""
    photometry_min_snr: float = 20.0
    """Minimum S/N (source and reference) of zero-point stars."""
    photometry_min_stars: int = 3
    """Fewest zero-point stars: fewer raise AlgorithmError."""
    photometry_gradient_min_stars: int = 30
    """With at least this many zero-point stars spread over the CCD, the zero point is a plane in the CCD
    position (transparency changing across the field); 0: always a constant."""
    colour_terms: dict[str, str] = dataclasses.field(default_factory=dict)
    """Band -> ``"primary,secondary,c0,c1,c2"``: the reference fluxes are transformed into the instrument's
    passband (`opendrp.photometry.ColourTerm`) before the zero point; bands without one use the reference
    band's flux as it is.  These override the ``colour_term_library`` terms of the same band."""
    colour_term_library: str = ""
    """Built-in per-band colour terms ``"instrument/reference"`` (`opendrp.photometry.COLOUR_TERM_LIBRARY`):
    ``"hsc/ps1"`` for HSC calibrated against Pan-STARRS1, ``"hsc/sdss"`` against SDSS; ``""`` (default) for a
    reference catalogue already in the instrument's passbands (the simulator's)."""

    def resolved_colour_terms(self) -> dict[str, str]:
        """Band -> colour term: the library's, overridden by ``colour_terms``."""
        return {**library_colour_terms(self.colour_term_library), **self.colour_terms}

    def validate(self) -> None:
        """Raise ConfigurationError naming the first invalid field."""
        checks = [
            ("background_bin_size", self.background_bin_size >= 8, "must be >= 8"),
            ("detection_threshold", self.detection_threshold > 0, "must be > 0"),
            ("detection_min_area", self.detection_min_area >= 1, "must be >= 1"),
            ("psf_size", self.psf_size % 2 == 1 and self.psf_size >= 7, "must be odd and >= 7"),
            ("psf_degree", 0 <= self.psf_degree <= 4, "must be in [0, 4]"),
            ("astrometry_order", 1 <= self.astrometry_order <= 5, "must be in [1, 5]"),
            ("calib_radius", self.calib_radius > 0, "must be > 0"),
            ("cr_psf_fwhm_fraction", 0 <= self.cr_psf_fwhm_fraction < 1, "must be in [0, 1)"),
            ("aperture_correction_degree", 0 <= self.aperture_correction_degree <= 4, "must be in [0, 4]"),
            ("aperture_radii", len(self.aperture_radii) > 0 and min(self.aperture_radii) > 0, "must be > 0"),
            ("match_radius_arcsec", self.match_radius_arcsec > 0, "must be > 0"),
            ("photometry_gradient_min_stars", self.photometry_gradient_min_stars >= 0, "must be >= 0"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise ConfigurationError(f"{name}={getattr(self, name)!r} {why}", where="CalibrateConfig")
        for term in self.resolved_colour_terms().values():
            ColourTerm.parse(term)


@dataclasses.dataclass
class CalibrateResult:
    """Outputs of `calibrate_exposure`."""

    calexp: Exposure
    background: BackgroundModel
    src: Table
    metrics: dict[str, Any]


#: Flux columns converted from instrumental units to nJy (with their ``Err``).
FLUX_COLUMNS = ("psfFlux", "calibFlux", "kronFlux", "gaussianFlux", "petrosianFlux")


def source_id_base(metadata: dict[str, Any]) -> int:
    """First source id of an exposure: ``(exposure id * 1000 + detector) << 20`` (2**20 sources per CCD)."""
    expid = int(metadata.get("VISIT", metadata.get("EXPID", 0)) or 0)
    det = int(metadata.get("DETECTOR", metadata.get("DET-ID", 0)) or 0)
    return ((expid * 1000 + det) << 20) if expid >= 0 and det >= 0 else 0


def _pixel_scale_arcsec(wcs: WCS) -> float:
    return float(np.mean(proj_plane_pixel_scales(wcs.celestial))) * 3600.0


def _initial_sigma(det: Table) -> float:
    """Rough PSF sigma (pixels) from the isophotal sizes of the brightest compact detections."""
    if len(det) == 0:
        return 1.5
    snr_order = np.argsort(-np.asarray(det["peak"]))[: max(20, len(det) // 5)]
    size = np.sqrt(np.asarray(det["a"])[snr_order] * np.asarray(det["b"])[snr_order])
    size = size[np.isfinite(size) & (size > 0.3)]
    if size.size == 0:
        return 1.5
    return float(np.clip(np.percentile(size, 25), 0.7, 6.0))


def calibrate_exposure(
    exposure: Exposure,
    refcat: Table,
    *,
    band: str,
    config: CalibrateConfig | None = None,
    id_base: int | None = None,
) -> CalibrateResult:
    """Characterize and calibrate one post-ISR CCD exposure.

    Parameters
    ----------
    exposure : `opendrp.image.Exposure`
        Post-ISR exposure in electrons (sky not subtracted), with an approximate WCS from the pointing.
    refcat : `astropy.table.Table`
        Reference catalog: ``coord_ra``, ``coord_dec`` (deg), ``{band}_flux``, ``{band}_fluxErr`` (nJy).
    band : `str`
        Band of the exposure (selects the reference flux column).
    config : `CalibrateConfig`, optional
        Configuration (defaults if not given).
    id_base : `int`, optional
        First ``sourceId`` minus one (default: from the ``VISIT``/``EXPID`` and ``DETECTOR``/``DET-ID``
        metadata, see `source_id_base`).

    Returns
    -------
    `CalibrateResult`
        ``calexp`` (background-subtracted, electrons, with WCS, PSF and PhotoCalib), ``background``,
        ``src`` (DP1 Source-like columns, fluxes in nJy) and ``metrics``.

    Raises
    ------
    AlgorithmError
        No sources, too few PSF stars, no astrometric solution or too few photometric stars.
    """
    cfg = config or CalibrateConfig()
    cfg.validate()
    if exposure.wcs is None:
        raise AlgorithmError("the exposure has no initial WCS (needed to match the reference catalog)")
    flux_col, err_col = f"{band}_flux", f"{band}_fluxErr"
    for col in ("coord_ra", "coord_dec", flux_col):
        if col not in refcat.colnames:
            raise AlgorithmError(f"reference catalog has no column {col!r} (columns: {refcat.colnames[:8]})")
    ny, nx = exposure.shape
    image = np.asarray(exposure.image, np.float32)
    variance = np.array(exposure.variance, np.float32, copy=True)  # the calexp's (repaired) variance
    mask = exposure.mask.copy()

    cpu: dict[str, float] = {}
    clock = time.process_time()
    # ---- background, cosmic rays, detection (full-size arrays are few and modified in place: memory)
    unusable = (mask & mask_bit("BAD", "SAT", "NO_DATA", "CR", "STREAK")) != 0
    bkg_kw = dict(bin_size=cfg.background_bin_size, subsample=cfg.background_subsample)
    background = estimate_background(image, bad=unusable, **bkg_kw)  # type: ignore[arg-type]
    sub = image - background.evaluate()
    n_cr = 0
    cr = None
    if cfg.do_cosmic_rays:
        cr = find_cosmic_rays(
            sub, variance, bad=unusable, min_fwhm=cfg.cr_min_fwhm, n_sigma=cfg.cr_threshold, inplace=True
        )
        n_cr = int(cr.sum())
        if n_cr:
            repair_cosmic_rays(sub, variance, cr, inplace=True)
            mask[cr] |= mask_bit("CR", "INTRP")
    # mask sources (at a lower threshold than detection: their wings bias the sky) and estimate again
    sources = significance_mask(
        sub, variance, threshold=cfg.background_mask_threshold, kernel_fwhm=cfg.detection_kernel_fwhm
    )
    detected = grow_mask(sources, cfg.background_mask_grow)
    del sources
    if cr is not None and n_cr:
        detected |= cr
    del cr
    sub += background.evaluate()  # the cosmic-ray-repaired image
    background = estimate_background(sub, bad=unusable | detected, **bkg_kw)  # type: ignore[arg-type]
    del detected
    bkg_image = background.evaluate()
    sub -= bkg_image
    # ISR interpolated the defects and the cosmic rays were repaired: detection sees those pixels (a star on
    # a bad column stays one detection instead of two halves); only pixels without data are ignored
    det_kw = dict(
        min_area=cfg.detection_min_area,
        kernel_fwhm=cfg.detection_kernel_fwhm,
        return_segmentation=True,
        mask_planes=("NO_DATA",),
    )
    det, seg = detect_sources(sub, variance, mask, threshold=cfg.detection_threshold, **det_kw)  # type: ignore[arg-type,misc]
    if len(det) == 0:
        raise AlgorithmError(f"no sources detected above {cfg.detection_threshold} sigma")
    mask[seg > 0] |= mask_bit("DETECTED")
    seg_ids = np.arange(1, len(det) + 1)

    cpu["background_detection"], clock = time.process_time() - clock, time.process_time()
    # ---- PSF: first measurement of the brighter detections, star selection, fit
    sigma0 = _initial_sigma(det)
    # first measurement only for detections that may pass the PSF-star S/N cut
    sky_var = float(np.median(variance[::4, ::4]))
    noise_var = np.minimum(variance[np.asarray(det["y_peak"]), np.asarray(det["x_peak"])], sky_var)
    iso_snr = np.asarray(det["iso_flux"]) / np.sqrt(
        np.asarray(det["footprint_area"]) * np.maximum(noise_var, 1e-30)
    )
    bright = np.flatnonzero(iso_snr > 0.5 * cfg.psf_min_snr)
    m0 = measure_sources(
        sub,
        variance,
        mask,
        None,
        det["x"][bright],
        det["y"][bright],
        initial_sigma=sigma0,
        aperture_radii=(cfg.calib_radius,),
        calib_radius=cfg.calib_radius,
        segmentation=seg,
        segment_ids=seg_ids[bright],
        petrosian=False,
    )
    m0["deblended"] = np.asarray(det["deblended"])[bright]
    stars = select_psf_stars(
        m0,
        min_snr=cfg.psf_min_snr,
        max_stars=cfg.psf_max_stars,
        isolation_radius=cfg.psf_isolation_radius,
        shape=(ny, nx),
        edge_margin=cfg.psf_size // 2 + 1,
    )
    n_cand = int(stars.sum())
    if n_cand < cfg.psf_min_stars:
        raise AlgorithmError(f"only {n_cand} PSF stars found (need {cfg.psf_min_stars})")
    degree = cfg.psf_degree
    while degree > 0 and n_cand < min_stars_for_degree(degree):
        degree -= 1
    psf_fit = fit_psf(
        sub,
        variance,
        mask,
        m0["x"][stars],
        m0["y"][stars],
        size=cfg.psf_size,
        degree=degree,
        x_range=(0.0, float(nx - 1)),
        y_range=(0.0, float(ny - 1)),
        segmentation=seg,
        segment_ids=seg_ids[bright][stars],
    )
    psf = psf_fit.psf
    fwhm_c = psf_fwhm(psf, 0.5 * (nx - 1), 0.5 * (ny - 1))
    # ---- second cosmic-ray pass with the seeing known (more sensitive on top of stars, galaxies and trails)
    min_fwhm2 = cfg.cr_psf_fwhm_fraction * fwhm_c
    if cfg.do_cosmic_rays and np.isfinite(min_fwhm2) and min_fwhm2 > cfg.cr_min_fwhm:
        known = unusable | ((mask & mask_bit("CR")) != 0)
        cr2 = find_cosmic_rays(
            sub, variance, bad=known, min_fwhm=min_fwhm2, n_sigma=cfg.cr_threshold, inplace=True
        )
        n_cr2 = int(cr2.sum())
        if n_cr2:
            repair_cosmic_rays(sub, variance, cr2, inplace=True)
            mask[cr2] |= mask_bit("CR", "INTRP")
            n_cr += n_cr2
        del cr2, known

    cpu["psf"], clock = time.process_time() - clock, time.process_time()
    # ---- measurement of all detections with the PSF
    src = measure_sources(
        sub,
        variance,
        mask,
        psf,
        det["x"],
        det["y"],
        aperture_radii=cfg.aperture_radii,
        calib_radius=cfg.calib_radius,
        background=bkg_image,
        segmentation=seg,
        segment_ids=seg_ids,
    )
    psf_used = np.zeros(len(src), bool)
    psf_used[bright[np.flatnonzero(stars)[psf_fit.used]]] = True
    # ---- aperture corrections to calibFlux, fitted on the PSF stars, applied before the zero point
    apcorr = (
        fit_aperture_corrections(src, psf_used, shape=(ny, nx), degree=cfg.aperture_correction_degree)
        if cfg.do_aperture_correction
        else {}
    )
    apply_aperture_corrections(src, apcorr)

    cpu["measurement"], clock = time.process_time() - clock, time.process_time()
    # ---- astrometry
    snr = np.asarray(src["psfFlux"]) / np.asarray(src["psfFluxErr"])
    clean = (
        np.isfinite(snr)
        & (snr > cfg.astrometry_min_snr)
        & ~np.asarray(src["centroid_flag"])
        & ~np.asarray(src["centroid_companion"])  # one star of an unresolved pair: the refcat may have either
        & ~np.asarray(src["pixelFlags_saturatedCenter"])
        & ~np.asarray(src["pixelFlags_edge"])
    )
    point = clean & (np.asarray(src["extendedness"]) == 0)
    cand = np.flatnonzero(point if point.sum() >= 3 * cfg.astrometry_min_matches else clean)
    ref_ok = np.isfinite(np.asarray(refcat["coord_ra"], float)) & np.isfinite(
        np.asarray(refcat["coord_dec"], float)
    )
    ref_idx = np.flatnonzero(ref_ok)
    ref_flux = np.asarray(refcat[flux_col], float)
    xerr = np.hypot(np.asarray(src["xErr"]), np.asarray(src["yErr"])) / np.sqrt(2)
    astro: AstrometryResult = fit_wcs_to_refcat(
        np.asarray(src["x"])[cand],
        np.asarray(src["y"])[cand],
        np.asarray(refcat["coord_ra"], float)[ref_idx],
        np.asarray(refcat["coord_dec"], float)[ref_idx],
        exposure.wcs,
        shape=(ny, nx),
        src_flux=np.asarray(src["psfFlux"])[cand],
        ref_flux=ref_flux[ref_idx],
        src_err=xerr[cand],
        order=cfg.astrometry_order,
        max_offset_arcsec=cfg.max_offset_arcsec,
        max_rotation_deg=cfg.max_rotation_deg,
        match_radius_arcsec=cfg.match_radius_arcsec,
        min_matches=cfg.astrometry_min_matches,
    )
    wcs = astro.wcs
    m_src = cand[astro.src_index]
    m_ref = ref_idx[astro.ref_index]
    astrom_used = np.zeros(len(src), bool)
    astrom_used[m_src] = True

    cpu["astrometry"], clock = time.process_time() - clock, time.process_time()
    # ---- photometric zero point from point-like, unsaturated matched stars
    phot_ok = (
        ~np.asarray(src["psfFlux_flag"])[m_src]
        & ~np.asarray(src["pixelFlags_saturated"])[m_src]
        & (np.asarray(src["extendedness"])[m_src] == 0)
    )
    ref_err = np.asarray(refcat[err_col], float)[m_ref] if err_col in refcat.colnames else None
    phot_ref = ref_flux[m_ref]
    colour_terms = cfg.resolved_colour_terms()
    if band in colour_terms:  # the reference fluxes in the instrument's passband
        term = ColourTerm.parse(colour_terms[band])
        t_flux, t_err = term.transform(refcat[m_ref])
        phot_ref, ref_err = t_flux, t_err
    ref_colour = reference_colour(refcat, band)
    zp = fit_zero_point(
        np.where(phot_ok, np.asarray(src["psfFlux"])[m_src], np.nan),
        np.asarray(src["psfFluxErr"])[m_src],
        phot_ref,
        ref_err,
        min_snr=cfg.photometry_min_snr,
        min_stars=cfg.photometry_min_stars,
        colour=None if ref_colour is None else ref_colour[0][m_ref],
        x=np.asarray(src["x"])[m_src] if cfg.photometry_gradient_min_stars > 0 else None,
        y=np.asarray(src["y"])[m_src] if cfg.photometry_gradient_min_stars > 0 else None,
        gradient_min_stars=max(cfg.photometry_gradient_min_stars, 3),
    )
    phot_used = np.zeros(len(src), bool)
    phot_used[m_src[zp.used]] = True
    photo_calib: PhotoCalib = zp.photo_calib

    cpu["photometry"], clock = time.process_time() - clock, time.process_time()
    # ---- catalog in nJy with sky coordinates
    out = _finalize_catalog(src, det, wcs, photo_calib, cfg, exposure.metadata, id_base)
    out["calib_psf_candidate"] = np.zeros(len(out), bool)
    out["calib_psf_candidate"][bright[np.flatnonzero(stars)]] = True
    out["calib_psf_used"] = psf_used
    out["calib_astrometry_used"] = astrom_used
    out["calib_photometry_used"] = phot_used

    scale = _pixel_scale_arcsec(wcs)
    sig_c = psf_sigma(psf, 0.5 * (nx - 1), 0.5 * (ny - 1))
    exptime = float(exposure.metadata.get("EXPTIME", 0.0) or 0.0)
    mesh = background.mesh
    metrics: dict[str, Any] = {
        "n_sources": len(out),
        "n_cosmic_ray_pixels": n_cr,
        "background_mean": float(np.mean(mesh)),
        "background_rms": float(np.sqrt(np.median(variance[~unusable])))
        if (~unusable).any()
        else float("nan"),
        "psf_n_stars": psf_fit.n_used,
        "psf_n_candidates": n_cand,
        "psf_degree": psf.degree,
        "psf_fwhm_pixels": fwhm_c,
        "psf_fwhm_arcsec": fwhm_c * scale,
        "psf_sigma_pixels": sig_c,
        "astrom_n_matches": astro.n_matches,
        "astrom_rms_mas": astro.rms_mas,
        "astrom_median_mas": float(np.median(astro.residuals_mas)),
        "astrom_order": astro.order,
        "astrom_offset_arcsec": float(np.hypot(*astro.offset_pixels) * scale),
        "astrom_rotation_deg": astro.rotation_deg,
        "photom_n_stars": zp.n_used,
        "zero_point": zp.zero_point,
        "zero_point_err": zp.zero_point_err,
        "zero_point_1s": zp.zero_point - 2.5 * np.log10(exptime) if exptime > 0 else float("nan"),
        "photom_scatter_mag": zp.scatter_mag,
        "photom_colour_slope": zp.colour_slope,
        "photom_colour_slope_err": zp.colour_slope_err,
        "photom_colour_term": colour_terms.get(band, ""),
        "photom_gradient_x": photo_calib.gradient_x,
        "photom_gradient_y": photo_calib.gradient_y,
        "pixel_scale_arcsec": scale,
    }
    for alg, corr in apcorr.items():
        metrics[f"apcorr_{alg}_median"] = float(np.median(np.asarray(src[alg + "_apCorr"])))
        metrics[f"apcorr_{alg}_n_stars"] = corr.n_stars
        metrics[f"apcorr_{alg}_rms"] = corr.rms
    cpu["catalog"] = time.process_time() - clock
    metrics.update({f"cpu_{k}": v for k, v in cpu.items()})
    meta = dict(exposure.metadata)
    meta.update(
        {
            "BUNIT": "electron",
            "ZEROPT": metrics["zero_point"],
            "PSF_FWHM": metrics["psf_fwhm_arcsec"],
            "ASTRMRMS": metrics["astrom_rms_mas"],
            "NSOURCES": metrics["n_sources"],
            "BGMEAN": metrics["background_mean"],
        }
    )
    for corr in apcorr.values():
        meta.update(corr.to_metadata())
    calexp = Exposure(
        sub.astype(np.float32, copy=False),
        mask,
        variance,
        wcs=wcs,
        psf=psf,
        photo_calib=photo_calib,
        metadata=meta,
    )
    return CalibrateResult(calexp=calexp, background=background, src=out, metrics=metrics)


def _finalize_catalog(
    src: Table,
    det: Table,
    wcs: WCS,
    photo_calib: PhotoCalib,
    cfg: CalibrateConfig,
    metadata: dict[str, Any],
    id_base: int | None,
) -> Table:
    n = len(src)
    base = source_id_base(metadata) if id_base is None else int(id_base)
    out = Table()
    out["sourceId"] = (base + np.arange(1, n + 1)).astype(np.int64)
    ra, dec = wcs.all_pix2world(np.asarray(src["x"]), np.asarray(src["y"]), 0)
    out["coord_ra"], out["coord_dec"] = ra, dec
    scale_deg = _pixel_scale_arcsec(wcs) / 3600.0
    err = np.hypot(np.asarray(src["xErr"]), np.asarray(src["yErr"])) / np.sqrt(2)
    out["coord_raErr"] = err * scale_deg
    out["coord_decErr"] = err * scale_deg
    flux_cols = list(FLUX_COLUMNS) + [aperture_column(r) for r in cfg.aperture_radii]
    sx, sy = np.asarray(src["x"], float), np.asarray(src["y"], float)
    for name in src.colnames:
        col = np.asarray(src[name])
        if name in flux_cols:
            out[name] = photo_calib.instflux_to_njy(col, sx, sy)
        elif name.endswith("Err") and name[:-3] in flux_cols:
            out[name] = photo_calib.instflux_err_to_njy(np.asarray(src[name[:-3]]), col, sx, sy)
        else:
            out[name] = col
    out["footprintArea"] = np.asarray(det["footprint_area"], np.int32)
    out["deblend_blended"] = np.asarray(det["deblended"], bool)
    out["parentSourceId"] = np.zeros(n, np.int64)
    out["detect_isPrimary"] = np.ones(n, bool)
    for name in FLUX_COLUMNS:
        out[name].unit = "nJy"
        out[name + "Err"].unit = "nJy"
    return out
