"""The simulated sky (stars along a stellar locus, bulge + disk galaxies) and the reference catalogue.

Positions are drawn uniformly in a tangent-plane rectangle about the field centre; magnitudes from
power-law number counts ``dN/dm ~ 10**(slope * m)`` in a reference band, the other bands from colours.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..astrometry.tangent import tangent_to_sky
from ..image.photo_calib import mag_to_njy
from .config import KNOWN_BANDS, GalaxyConfig, RefcatConfig, SimConfig, StarConfig

__all__ = [
    "STELLAR_LOCUS",
    "SkyFootprint",
    "TruthCatalog",
    "draw_power_law_mags",
    "make_refcat",
    "make_truth_catalog",
    "stellar_colors",
]

#: Stellar locus (HSC/PS1-like): columns g-r, r-i, i-z, z-y (mag).
STELLAR_LOCUS = np.array(
    [
        [0.10, 0.02, -0.02, -0.01],
        [0.20, 0.06, 0.00, 0.00],
        [0.30, 0.09, 0.02, 0.01],
        [0.40, 0.13, 0.04, 0.02],
        [0.50, 0.17, 0.06, 0.03],
        [0.60, 0.21, 0.08, 0.04],
        [0.70, 0.25, 0.10, 0.05],
        [0.80, 0.30, 0.12, 0.06],
        [0.90, 0.35, 0.15, 0.07],
        [1.00, 0.42, 0.18, 0.09],
        [1.10, 0.50, 0.22, 0.11],
        [1.20, 0.62, 0.28, 0.13],
        [1.30, 0.80, 0.36, 0.17],
        [1.40, 1.10, 0.50, 0.24],
        [1.50, 1.50, 0.68, 0.33],
        [1.55, 1.90, 0.85, 0.40],
    ]
)


@dataclasses.dataclass(frozen=True)
class SkyFootprint:
    """A tangent-plane rectangle (deg) about ``(ra0, dec0)`` in which sources are drawn."""

    ra0: float
    dec0: float
    xi_min: float
    xi_max: float
    eta_min: float
    eta_max: float

    @property
    def area_deg2(self) -> float:
        return (self.xi_max - self.xi_min) * (self.eta_max - self.eta_min)


@dataclasses.dataclass
class TruthCatalog:
    """The simulated sources as arrays (one entry per source).

    Attributes
    ----------
    id : int64 array
    ra, dec : float arrays (deg)
    is_star : bool array
    mags : dict band -> float array
        AB magnitudes in every band the simulator knows.
    disk_hlr, bulge_hlr : float arrays (arcsec; 0 for stars)
    bulge_fraction : float array (fraction of the flux in the bulge; 0 for stars)
    e1, e2 : float arrays
        Intrinsic ellipticity (distortion ``(a^2-b^2)/(a^2+b^2)``) in the (east, north) frame.
    """

    id: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    is_star: np.ndarray
    mags: dict[str, np.ndarray]
    disk_hlr: np.ndarray
    bulge_hlr: np.ndarray
    bulge_fraction: np.ndarray
    e1: np.ndarray
    e2: np.ndarray

    def __len__(self) -> int:
        return len(self.id)

    def concat(self, other: TruthCatalog) -> TruthCatalog:
        """This catalogue followed by ``other`` (e.g. the blind insertions, for drawing)."""
        return TruthCatalog(
            id=np.concatenate([self.id, other.id]),
            ra=np.concatenate([self.ra, other.ra]),
            dec=np.concatenate([self.dec, other.dec]),
            is_star=np.concatenate([self.is_star, other.is_star]),
            mags={b: np.concatenate([self.mags[b], other.mags[b]]) for b in self.mags},
            disk_hlr=np.concatenate([self.disk_hlr, other.disk_hlr]),
            bulge_hlr=np.concatenate([self.bulge_hlr, other.bulge_hlr]),
            bulge_fraction=np.concatenate([self.bulge_fraction, other.bulge_fraction]),
            e1=np.concatenate([self.e1, other.e1]),
            e2=np.concatenate([self.e2, other.e2]),
        )

    def to_dataframe(self, bands: list[str]) -> pd.DataFrame:
        """The ``truth.parquet`` table: fluxes (nJy) and magnitudes for ``bands`` and shape columns."""
        cols: dict[str, np.ndarray] = {
            "id": self.id.astype(np.int64),
            "ra": self.ra,
            "dec": self.dec,
            "is_star": self.is_star.astype(bool),
        }
        for band in bands:
            cols[f"{band}_flux"] = mag_to_njy(self.mags[band])
        for band in bands:
            cols[f"{band}_mag"] = self.mags[band]
        cols["disk_hlr_arcsec"] = self.disk_hlr
        cols["bulge_hlr_arcsec"] = self.bulge_hlr
        cols["bulge_fraction"] = self.bulge_fraction
        cols["e1"] = self.e1
        cols["e2"] = self.e2
        return pd.DataFrame(cols)


def draw_power_law_mags(
    rng: np.random.Generator, n: int, mag_min: float, mag_max: float, slope: float
) -> np.ndarray:
    """Magnitudes with ``dN/dm ~ 10**(slope * m)`` on ``[mag_min, mag_max]`` (inverse CDF)."""
    u = rng.random(n)
    if abs(slope) < 1e-9:
        return mag_min + u * (mag_max - mag_min)
    a, b = 10.0 ** (slope * mag_min), 10.0 ** (slope * mag_max)
    return np.log10(a + u * (b - a)) / slope


def stellar_colors(g_r: np.ndarray) -> dict[str, np.ndarray]:
    """Colours ``g-r, r-i, i-z, z-y`` (mag) on the stellar locus for given g-r."""
    g_r = np.clip(g_r, STELLAR_LOCUS[0, 0], STELLAR_LOCUS[-1, 0])
    return {
        "g-r": g_r,
        "r-i": np.interp(g_r, STELLAR_LOCUS[:, 0], STELLAR_LOCUS[:, 1]),
        "i-z": np.interp(g_r, STELLAR_LOCUS[:, 0], STELLAR_LOCUS[:, 2]),
        "z-y": np.interp(g_r, STELLAR_LOCUS[:, 0], STELLAR_LOCUS[:, 3]),
    }


def _mags_from_colors(
    ref_band: str, ref_mag: np.ndarray, colors: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Magnitudes in g, r, i, z, y from a reference-band magnitude and adjacent-band colours."""
    # offsets of each band relative to g, then shift so that the reference band has ref_mag
    rel = {"g": np.zeros_like(ref_mag)}
    rel["r"] = rel["g"] - colors["g-r"]
    rel["i"] = rel["r"] - colors["r-i"]
    rel["z"] = rel["i"] - colors["i-z"]
    rel["y"] = rel["z"] - colors["z-y"]
    shift = ref_mag - rel[ref_band]
    return {b: rel[b] + shift for b in KNOWN_BANDS}


def _draw_positions(rng: np.random.Generator, n: int, fp: SkyFootprint) -> tuple[np.ndarray, np.ndarray]:
    xi = fp.xi_min + rng.random(n) * (fp.xi_max - fp.xi_min)
    eta = fp.eta_min + rng.random(n) * (fp.eta_max - fp.eta_min)
    return tangent_to_sky(xi, eta, fp.ra0, fp.dec0)


def _make_stars(rng: np.random.Generator, cfg: StarConfig, fp: SkyFootprint) -> dict[str, np.ndarray]:
    n = int(rng.poisson(cfg.density_per_deg2 * fp.area_deg2))
    ra, dec = _draw_positions(rng, n, fp)
    ref_mag = draw_power_law_mags(rng, n, cfg.mag_min, cfg.mag_max, cfg.count_slope)
    red = rng.random(n) < cfg.red_fraction
    g_r = np.where(red, rng.uniform(1.0, 1.55, n), rng.normal(0.45, 0.15, n))
    colors = stellar_colors(g_r)
    for key in ("r-i", "i-z", "z-y"):  # intrinsic scatter about the locus
        colors[key] = colors[key] + rng.normal(0.0, 0.02, n)
    zeros = np.zeros(n)
    return {
        "ra": ra,
        "dec": dec,
        "is_star": np.ones(n, bool),
        **{f"mag_{b}": m for b, m in _mags_from_colors(cfg.reference_band, ref_mag, colors).items()},
        "disk_hlr": zeros,
        "bulge_hlr": zeros,
        "bulge_fraction": zeros,
        "e1": zeros,
        "e2": zeros,
    }


def _make_galaxies(rng: np.random.Generator, cfg: GalaxyConfig, fp: SkyFootprint) -> dict[str, np.ndarray]:
    n = int(rng.poisson(cfg.density_per_deg2 * fp.area_deg2))
    ra, dec = _draw_positions(rng, n, fp)
    ref_mag = draw_power_law_mags(rng, n, cfg.mag_min, cfg.mag_max, cfg.count_slope)
    red = rng.random(n) < cfg.red_fraction
    colors = {
        "g-r": np.where(red, rng.normal(1.3, 0.15, n), rng.normal(0.5, 0.2, n)),
        "r-i": np.where(red, rng.normal(0.6, 0.1, n), rng.normal(0.3, 0.15, n)),
        "i-z": np.where(red, rng.normal(0.3, 0.08, n), rng.normal(0.15, 0.1, n)),
        "z-y": np.where(red, rng.normal(0.15, 0.05, n), rng.normal(0.05, 0.08, n)),
    }
    log_hlr = (
        np.log10(cfg.hlr_arcsec_at_mag22)
        - cfg.hlr_mag_slope * (ref_mag - 22.0)
        + rng.normal(0.0, cfg.hlr_scatter_dex, n)
    )
    disk_hlr = np.clip(10.0**log_hlr, cfg.hlr_min_arcsec, cfg.hlr_max_arcsec)
    if cfg.model == "bulge_disk":
        bulge_fraction = np.where(red, rng.uniform(0.4, 0.9, n), rng.uniform(0.0, 0.3, n))
        bulge_fraction[ref_mag > cfg.bulge_mag_max] = 0.0
        bulge_hlr = np.where(
            bulge_fraction > 0, np.maximum(disk_hlr * cfg.bulge_size_ratio, cfg.hlr_min_arcsec), 0.0
        )
    else:
        bulge_fraction = np.zeros(n)
        bulge_hlr = np.zeros(n)
    e1 = rng.normal(0.0, cfg.ellipticity_sigma, n)
    e2 = rng.normal(0.0, cfg.ellipticity_sigma, n)
    emod = np.hypot(e1, e2)
    scale = np.where(emod > cfg.ellipticity_max, cfg.ellipticity_max / np.maximum(emod, 1e-12), 1.0)
    return {
        "ra": ra,
        "dec": dec,
        "is_star": np.zeros(n, bool),
        **{f"mag_{b}": m for b, m in _mags_from_colors(cfg.reference_band, ref_mag, colors).items()},
        "disk_hlr": disk_hlr,
        "bulge_hlr": bulge_hlr,
        "bulge_fraction": bulge_fraction,
        "e1": e1 * scale,
        "e2": e2 * scale,
    }


def make_truth_catalog(config: SimConfig, footprint: SkyFootprint, rng: np.random.Generator) -> TruthCatalog:
    """Draw the stars and galaxies of a simulation inside a footprint.

    Parameters
    ----------
    config : `SimConfig`
        Uses the ``stars`` and ``galaxies`` sections.
    footprint : `SkyFootprint`
        Tangent-plane rectangle (deg) covering every simulated CCD, with a margin.
    rng : `numpy.random.Generator`
        Source of randomness.

    Returns
    -------
    truth : `TruthCatalog`
        Stars first, then galaxies, then the extra bright stars (``stars.bright_density_per_deg2``); ids
        are ``1..N``.
    """
    parts = [_make_stars(rng, config.stars, footprint), _make_galaxies(rng, config.galaxies, footprint)]
    if config.stars.bright_density_per_deg2 > 0.0:  # drawn last: the other sources do not depend on it
        bright = dataclasses.replace(
            config.stars,
            density_per_deg2=config.stars.bright_density_per_deg2,
            mag_min=config.stars.bright_mag_min,
            mag_max=config.stars.mag_min,
        )
        parts.append(_make_stars(rng, bright, footprint))
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = len(cat["ra"])
    return TruthCatalog(
        id=np.arange(1, n + 1, dtype=np.int64),
        ra=cat["ra"],
        dec=cat["dec"],
        is_star=cat["is_star"],
        mags={b: cat[f"mag_{b}"] for b in KNOWN_BANDS},
        disk_hlr=cat["disk_hlr"],
        bulge_hlr=cat["bulge_hlr"],
        bulge_fraction=cat["bulge_fraction"],
        e1=cat["e1"],
        e2=cat["e2"],
    )


def reference_errors(cfg: RefcatConfig, mag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Astrometric error (mas) and fractional flux error of reference stars of given magnitude.

    The position error scales as ``flux**-1/2`` from ``astrometric_error_mas`` at ``mag_max``, with a floor;
    the flux error is ``hypot(floor, 0.2 * 10**(0.4 * (mag - depth)))`` (5 sigma at the depth).
    """
    pos = np.hypot(cfg.astrometric_floor_mas, cfg.astrometric_error_mas * 10.0 ** (0.2 * (mag - cfg.mag_max)))
    floor = 10.0 ** (0.4 * cfg.phot_error_floor_mag) - 1.0
    frac = np.hypot(floor, 0.2 * 10.0 ** (0.4 * (mag - cfg.phot_depth_mag)))
    return pos, frac


def make_refcat(
    truth: TruthCatalog, cfg: RefcatConfig, bands: list[str], rng: np.random.Generator
) -> pd.DataFrame:
    """A reference catalogue: the stars within a magnitude range, with realistic errors applied.

    Returns
    -------
    refcat : `pandas.DataFrame`
        ``id`` (the truth id), ``coord_ra``, ``coord_dec`` (deg, perturbed), ``coord_raErr``,
        ``coord_decErr`` (deg; the RA error is an on-sky angle, i.e. of RA*cos(Dec)), ``{band}_flux`` and
        ``{band}_fluxErr`` (nJy, the flux perturbed by its error) for every band.
    """
    ref_mag = truth.mags[cfg.reference_band]
    sel = truth.is_star & (ref_mag >= cfg.mag_min) & (ref_mag <= cfg.mag_max)
    n = int(sel.sum())
    pos_err_mas, _ = reference_errors(cfg, ref_mag[sel])
    err_deg = pos_err_mas / 3.6e6
    dec = truth.dec[sel] + rng.normal(0.0, 1.0, n) * err_deg
    ra = (truth.ra[sel] + rng.normal(0.0, 1.0, n) * err_deg / np.cos(np.radians(truth.dec[sel]))) % 360.0
    cols: dict[str, np.ndarray] = {
        "id": truth.id[sel],
        "coord_ra": ra,
        "coord_dec": dec,
        "coord_raErr": err_deg,
        "coord_decErr": err_deg.copy(),
    }
    for band in bands:
        mag = truth.mags[band][sel]
        flux = mag_to_njy(mag)
        _, frac = reference_errors(cfg, mag)
        err = frac * flux
        cols[f"{band}_flux"] = flux + rng.normal(0.0, 1.0, n) * err
        cols[f"{band}_fluxErr"] = err
    return pd.DataFrame(cols)
