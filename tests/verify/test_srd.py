"""SRD metrics on synthetic matched catalogs with injected, known scatter.

Every statistical comparison uses the standard error of the estimator computed from the numbers of stars,
measurements or pairs of the test, and allows ``N_SIGMA`` of it (a 1e-4 two-sided false-alarm rate).
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from numpy.typing import NDArray
from scipy import stats
from scipy.spatial import cKDTree

from opendrp.qa._match import radec_to_unit_vectors
from opendrp.verify._matched import associate_sources, median_std_factor
from opendrp.verify.context import VerifyContext
from opendrp.verify.model import Status
from opendrp.verify.srd import (
    MMAG_PER_FRACTION,
    astrometric_repeatability,
    count_pairs_between,
    ellipticity_correlation,
    field_diameter_arcmin,
    photometric_repeatability,
    separation_outliers,
    shear_ellipticity,
    srd_checks_for_table,
    te_value,
)
from opendrp.verify.thresholds import load_thresholds

N_SIGMA = 4.0
MAS_PER_DEG = 3.6e6
DEC0 = 30.0


def _sd_of_median_of_std(sigma: float, n: int, n_stars: int) -> float:
    """Asymptotic standard error of the median over stars of the sample std (ddof=1) of n Gaussian draws."""
    dof = n - 1
    x_med = stats.chi2.ppf(0.5, dof)
    s_med = sigma * np.sqrt(x_med / dof)
    # pdf of s = sigma sqrt(X / dof): f_s(s) = f_X(x) dx/ds with dx/ds = 2 dof s / sigma^2.
    f_s = stats.chi2.pdf(x_med, dof) * 2.0 * dof * s_med / sigma**2
    return float(1.0 / (2.0 * f_s * np.sqrt(n_stars)))


def _grid_field(n_side: int, spacing_arcsec: float, rng: np.random.Generator) -> tuple[NDArray, NDArray]:
    """Star positions (deg) on a jittered grid centred at (150, DEC0): no two closer than spacing / 2."""
    i, j = np.meshgrid(np.arange(n_side), np.arange(n_side))
    off = rng.uniform(-0.25, 0.25, (2, i.size)) * spacing_arcsec
    x = ((i.ravel() - n_side / 2) * spacing_arcsec + off[0]) / 3600.0
    y = ((j.ravel() - n_side / 2) * spacing_arcsec + off[1]) / 3600.0
    return 150.0 + x / np.cos(np.radians(DEC0)), DEC0 + y


def _jitter(ra: NDArray, dec: NDArray, sigma_mas: float, rng: np.random.Generator) -> tuple[NDArray, NDArray]:
    """Positions moved by Gaussian offsets of sigma_mas per axis on the sky."""
    dx, dy = rng.normal(0.0, sigma_mas, (2, ra.size)) / MAS_PER_DEG
    return ra + dx / np.cos(np.radians(dec)), dec + dy


def _visits(
    ra: NDArray, dec: NDArray, n_visits: int, sigma_mas: float, rng: np.random.Generator, *, keep: float = 1.0
) -> dict[str, NDArray]:
    """One source per star and visit (a fraction ``keep`` detected), positions jittered."""
    out: dict[str, list[NDArray]] = {"star": [], "visit": [], "ra": [], "dec": []}
    for v in range(n_visits):
        det = rng.random(ra.size) < keep
        r, d = _jitter(ra[det], dec[det], sigma_mas, rng)
        out["star"].append(np.flatnonzero(det))
        out["visit"].append(np.full(det.sum(), 1000 + 2 * v))
        out["ra"].append(r)
        out["dec"].append(d)
    return {k: np.concatenate(v) for k, v in out.items()}


# --- matching --------------------------------------------------------------------------------------------


def test_association_recovers_stars_and_rejects_close_pairs() -> None:
    rng = np.random.default_rng(1)
    ra, dec = _grid_field(18, 20.0, rng)  # 324 stars, >= 10 arcsec apart
    n_single = ra.size
    # Five close pairs (1.2 arcsec: inside the 2 arcsec isolation radius) and five wide ones (4 arcsec).
    for sep, n in ((1.2, 5), (4.0, 5)):
        base = rng.choice(n_single, n, replace=False)
        ra = np.append(ra, ra[base] + sep / 3600.0 / np.cos(np.radians(dec[base])))
        dec = np.append(dec, dec[base])
    close = np.zeros(ra.size, bool)
    close[n_single : n_single + 5] = True
    close[np.flatnonzero(np.isin(np.arange(n_single), _partners(ra, dec, n_single)))] = True
    src = _visits(ra, dec, 6, 100.0, rng, keep=0.85)  # 0.1 arcsec per axis, 15 % missed detections
    order = rng.permutation(src["star"].size)  # rows in no particular order
    src = {k: v[order] for k, v in src.items()}

    group = associate_sources(
        src["ra"], src["dec"], src["visit"], match_radius_arcsec=1.0, isolation_arcsec=2.0
    )

    star = src["star"]
    assert np.all(group[close[star]] == -1), "members of close pairs must be rejected"
    kept = ~close[star]
    assert np.all(group[kept] >= 0), "every isolated star's sources must be associated"
    # One group per star and one star per group.
    pairs = np.unique(np.column_stack([group[kept], star[kept]]), axis=0)
    assert np.unique(pairs[:, 0]).size == pairs.shape[0] == np.unique(star[kept]).size
    assert group.max() + 1 == pairs.shape[0]


def _partners(ra: NDArray, dec: NDArray, n_single: int) -> NDArray:
    """Indices of the original stars that have an added companion within 2 arcsec."""
    tree = cKDTree(radec_to_unit_vectors(ra[:n_single], dec[:n_single]))
    chord = 2.0 * np.sin(np.radians(2.0 / 3600.0) / 2.0)
    d, idx = tree.query(radec_to_unit_vectors(ra[n_single:], dec[n_single:]), distance_upper_bound=chord)
    return idx[np.isfinite(d)]


# --- photometric repeatability ---------------------------------------------------------------------------


def _photometry(n_stars: int, n_visits: int, scatter_mmag: float, err_mmag: float, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(n_stars), n_visits)
    mag0 = np.repeat(rng.uniform(17.0, 20.0, n_stars), n_visits)
    mag = mag0 + rng.normal(0.0, scatter_mmag / 1000.0, group.size)
    flux = 10 ** (-0.4 * (mag - 31.4))
    return group, flux, flux * err_mmag / MMAG_PER_FRACTION


def test_pa1_pa2_pf1_recover_injected_scatter() -> None:
    n_stars, n_visits, sigma = 400, 8, 5.0
    group, flux, err = _photometry(n_stars, n_visits, sigma, sigma, seed=2)
    res = photometric_repeatability(group, flux, err, pa2_limit_mmag=15.0, pf1_limit_percent=10.0)
    assert res is not None and res.n_stars == n_stars and res.n_measurements == n_stars * n_visits

    factor = float(median_std_factor(np.array([n_visits]))[0])
    assert res.pa1 == pytest.approx(
        sigma * factor, abs=N_SIGMA * _sd_of_median_of_std(sigma, n_visits, n_stars)
    )
    # The errors alone predict the same: they are the injected scatter.
    assert res.pa1_expected == pytest.approx(sigma * factor, rel=1e-9)
    assert res.rms_expected == pytest.approx(sigma, rel=1e-9)
    dof = n_stars * (n_visits - 1)
    assert res.rms == pytest.approx(sigma, abs=N_SIGMA * sigma / np.sqrt(2 * dof))

    m = res.n_measurements
    pa2_true = sigma * stats.norm.ppf(0.95)  # 90th percentile of |N(0, sigma)|
    f_abs = 2.0 * stats.norm.pdf(pa2_true / sigma) / sigma
    assert res.pa2 == pytest.approx(pa2_true, abs=N_SIGMA * np.sqrt(0.9 * 0.1 / dof) / f_abs)
    assert res.pa2_expected == pytest.approx(pa2_true, rel=1e-6)
    p_out = 2.0 * stats.norm.sf(15.0 / sigma)
    assert res.pf1 == pytest.approx(
        100 * p_out, abs=N_SIGMA * 100 * np.sqrt(p_out * (1 - p_out) / dof) + 100 / m
    )
    assert res.pf1_expected == pytest.approx(100 * p_out, rel=1e-9)


def test_expected_noise_is_what_the_errors_predict() -> None:
    """Scatter of 6 mmag with errors reporting 3 mmag: PA1 follows the scatter, the expectation the errors."""
    n_stars, n_visits = 300, 5
    group, flux, err = _photometry(n_stars, n_visits, 6.0, 3.0, seed=3)
    res = photometric_repeatability(group, flux, err)
    assert res is not None
    factor = float(median_std_factor(np.array([n_visits]))[0])
    assert res.pa1 == pytest.approx(6.0 * factor, abs=N_SIGMA * _sd_of_median_of_std(6.0, n_visits, n_stars))
    assert res.pa1_expected == pytest.approx(3.0 * factor, rel=1e-9)
    # PF1 at 15 mmag: the 6 mmag scatter puts 1.2 % beyond, the 3 mmag errors predict 6e-5 %.
    p_out = 2.0 * stats.norm.sf(15.0 / 6.0)
    dof = n_stars * (n_visits - 1)
    assert res.pf1 == pytest.approx(100 * p_out, abs=N_SIGMA * 100 * np.sqrt(p_out * (1 - p_out) / dof))
    assert res.pf1_expected == pytest.approx(100 * 2.0 * stats.norm.sf(5.0), rel=1e-6)


def test_photometric_repeatability_needs_three_visits() -> None:
    group, flux, err = _photometry(50, 2, 5.0, 5.0, seed=4)
    assert photometric_repeatability(group, flux, err, min_visits=3) is None
    assert photometric_repeatability(group, flux, err, min_visits=2) is not None


# --- astrometric repeatability ---------------------------------------------------------------------------


def test_am1_recovers_injected_position_scatter() -> None:
    rng = np.random.default_rng(5)
    ra, dec = _grid_field(24, 75.0, rng)  # 576 stars over 30 arcmin
    n_visits, sigma = 10, 10.0
    src = _visits(ra, dec, n_visits, sigma, rng)
    res = astrometric_repeatability(
        src["star"], src["visit"], src["ra"], src["dec"], annulus_arcmin=5.0,
        pos_err_mas=np.full(src["ra"].size, sigma),
    )  # fmt: skip
    assert res is not None and res.annulus_arcmin == (4.0, 6.0) and not res.subsampled
    # The separation of two stars moves by the difference of their offsets along the pair: sqrt(2) sigma.
    sep_sigma = np.sqrt(2.0) * sigma
    factor = float(median_std_factor(np.array([n_visits]))[0])
    # Pairs share stars: the error is that of n_objects / 2 independent pairs.
    sd = _sd_of_median_of_std(sep_sigma, n_visits, res.n_objects // 2)
    assert res.amx == pytest.approx(sep_sigma * factor, abs=N_SIGMA * sd)
    assert res.amx_expected == pytest.approx(sep_sigma * factor, rel=1e-9)
    assert res.n_pairs > 5000 and res.n_pairs == res.n_pairs_annulus
    # Pure Gaussian scatter: nothing beyond AM1 + 20 mas (a 2.4 sigma_rms excursion of a 9-dof rms).
    assert res.afx < 1.0


def test_am_pairs_are_subsampled_deterministically() -> None:
    rng = np.random.default_rng(6)
    ra, dec = _grid_field(24, 75.0, rng)
    src = _visits(ra, dec, 4, 10.0, rng)
    args = (src["star"], src["visit"], src["ra"], src["dec"])
    a = astrometric_repeatability(*args, annulus_arcmin=5.0, max_pairs=500, seed=3)
    b = astrometric_repeatability(*args, annulus_arcmin=5.0, max_pairs=500, seed=3)
    assert a is not None and b is not None and a.subsampled and a.n_pairs == 500
    assert a.amx == b.amx and np.array_equal(a.pair_rms, b.pair_rms)


def test_am3_not_available_on_a_small_field() -> None:
    rng = np.random.default_rng(7)
    ra, dec = _grid_field(10, 60.0, rng)  # 10 arcmin across
    src = _visits(ra, dec, 3, 10.0, rng)
    assert (
        astrometric_repeatability(src["star"], src["visit"], src["ra"], src["dec"], annulus_arcmin=200.0)
        is None
    )
    # The field's diameter (the diagonal of a 10 arcmin square) is what the reason quotes.
    assert field_diameter_arcmin(ra, dec) == pytest.approx(9.0 * np.sqrt(2.0), abs=0.5)
    assert count_pairs_between(ra, dec, min_arcmin=199.0, max_arcmin=201.0) == 0
    xyz = radec_to_unit_vectors(ra, dec)
    theta = np.degrees(2 * np.arcsin(np.linalg.norm(xyz[:, None] - xyz[None], axis=2) / 2)) * 60.0
    brute = int(np.sum((theta > 4.0) & (theta <= 6.0)) // 2)
    assert count_pairs_between(ra, dec, min_arcmin=4.0, max_arcmin=6.0) == brute > 0


def test_am_needs_two_common_visits() -> None:
    rng = np.random.default_rng(8)
    ra, dec = _grid_field(24, 75.0, rng)
    src = _visits(ra, dec, 1, 10.0, rng)
    assert (
        astrometric_repeatability(src["star"], src["visit"], src["ra"], src["dec"], annulus_arcmin=5.0)
        is None
    )


def test_ad_af_on_a_population_with_known_outlier_fraction() -> None:
    """80 % of pairs with rms ~ N(10, 1) mas (exact quantiles), 20 % at 60 mas."""
    core = 10.0 + stats.norm.ppf((np.arange(800) + 0.5) / 800)
    rms = np.concatenate([core, np.full(200, 60.0)])
    amx = float(np.median(rms))
    assert amx == pytest.approx(10.0 + stats.norm.ppf(0.625), abs=0.01)
    adx, afx = separation_outliers(rms, amx=amx, ad_limit_mas=20.0, af_limit_percent=10.0)
    assert afx == pytest.approx(20.0)  # exactly the outliers exceed AM + 20 mas
    assert adx == pytest.approx(60.0 - amx)  # the 90th percentile lies among the outliers
    # With 5 % outliers the 90th percentile is the core's 900/950 quantile.
    rms5 = np.concatenate([10.0 + stats.norm.ppf((np.arange(950) + 0.5) / 950), np.full(50, 60.0)])
    amx5 = float(np.median(rms5))
    adx5, afx5 = separation_outliers(rms5, amx=amx5, ad_limit_mas=20.0, af_limit_percent=10.0)
    assert afx5 == pytest.approx(5.0)
    assert adx5 == pytest.approx(stats.norm.ppf(900 / 950) - stats.norm.ppf(0.5 * 1000 / 950), abs=0.01)


# --- residual ellipticity correlations --------------------------------------------------------------------


def test_shear_ellipticity_of_a_rotated_ellipse() -> None:
    a, b, theta = 3.0, 2.0, np.radians(30.0)
    ixx = a**2 * np.cos(theta) ** 2 + b**2 * np.sin(theta) ** 2
    iyy = a**2 * np.sin(theta) ** 2 + b**2 * np.cos(theta) ** 2
    ixy = (a**2 - b**2) * np.sin(theta) * np.cos(theta)
    e1, e2 = shear_ellipticity(ixx, iyy, ixy)
    e = (a - b) / (a + b)
    assert e1 == pytest.approx(e * np.cos(2 * theta), rel=1e-12)
    assert e2 == pytest.approx(e * np.sin(2 * theta), rel=1e-12)
    assert np.isnan(shear_ellipticity(1.0, 1.0, 2.0)[0])  # not positive definite


def _random_field(n: int, size_arcmin: float, rng: np.random.Generator) -> tuple[NDArray, NDArray]:
    x, y = rng.uniform(-size_arcmin / 2, size_arcmin / 2, (2, n)) / 60.0
    return 150.0 + x / np.cos(np.radians(DEC0)), DEC0 + y


def test_xip_equals_brute_force_pair_sum() -> None:
    rng = np.random.default_rng(9)
    ra, dec = _random_field(150, 12.0, rng)
    e1, e2 = rng.normal(0, 0.01, (2, 150))
    corr = ellipticity_correlation(ra, dec, e1, e2)
    xyz = radec_to_unit_vectors(ra, dec)
    theta = np.degrees(2 * np.arcsin(np.linalg.norm(xyz[:, None] - xyz[None], axis=2) / 2)) * 60.0
    prod = e1[:, None] * e1[None] + e2[:, None] * e2[None]
    iu = np.triu_indices(150, 1)
    for k, (lo, hi) in enumerate(zip(corr.bin_edges[:-1], corr.bin_edges[1:])):
        inbin = (theta[iu] > lo) & (theta[iu] <= hi)
        assert corr.n_pairs[k] == inbin.sum()
        if inbin.any():
            assert corr.xip[k] == pytest.approx(prod[iu][inbin].mean(), rel=1e-9, abs=1e-15)


def test_te_zero_for_uncorrelated_residuals() -> None:
    rng = np.random.default_rng(10)
    sigma_e = 0.01
    ra, dec = _random_field(1500, 30.0, rng)
    e1, e2 = rng.normal(0, sigma_e, (2, ra.size))
    corr = ellipticity_correlation(ra, dec, e1, e2)
    for kw in ({"max_arcmin": 1.0}, {"min_arcmin": 5.0}):
        value, err, n_pairs = te_value(corr, **kw)
        sel = (corr.bin_centres <= kw.get("max_arcmin", np.inf)) & (
            corr.bin_centres >= kw.get("min_arcmin", 0)
        )
        # Shape noise of the mean over bins of independent pair products (variance 2 sigma^4 each).
        sd = np.sqrt(np.sum(2 * sigma_e**4 / corr.n_pairs[sel])) / sel.sum()
        assert n_pairs == corr.n_pairs[sel].sum() > 1000
        assert abs(value) < N_SIGMA * sd
        assert err == pytest.approx(sd, rel=0.1)  # the reported error uses the measured sigma_e


def test_te_of_a_coherent_residual_field() -> None:
    """Every star with the same residual (0.01, -0.005): xi+ = |e|^2 = 1.25e-4 at every separation."""
    rng = np.random.default_rng(11)
    ra, dec = _random_field(400, 25.0, rng)
    corr = ellipticity_correlation(ra, dec, np.full(400, 0.01), np.full(400, -0.005))
    assert te_value(corr, max_arcmin=1.0)[0] == pytest.approx(1.25e-4, rel=1e-9)
    assert te_value(corr, min_arcmin=5.0)[0] == pytest.approx(1.25e-4, rel=1e-9)


def test_te_not_available_without_pairs_at_large_separation() -> None:
    rng = np.random.default_rng(12)
    ra, dec = _random_field(100, 3.0, rng)  # a 3 arcmin field: no pair 5 arcmin apart
    corr = ellipticity_correlation(ra, dec, *rng.normal(0, 0.01, (2, 100)))
    value, err, n_pairs = te_value(corr, min_arcmin=5.0)
    assert n_pairs == 0 and np.isnan(value) and np.isnan(err)
    assert te_value(corr, max_arcmin=1.0)[2] > 0


# --- the checks of a src table ---------------------------------------------------------------------------


def _moments(e1: NDArray, e2: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """Second moments (pixel^2) of ellipses of shear-type ellipticity (e1, e2) and area 4 pi pixel^2."""
    e = np.hypot(e1, e2)
    phi = 0.5 * np.arctan2(e2, e1)
    a2, b2 = 4.0 * (1 + e) / (1 - e), 4.0 * (1 - e) / (1 + e)
    c, s = np.cos(phi), np.sin(phi)
    return a2 * c**2 + b2 * s**2, a2 * s**2 + b2 * c**2, (a2 - b2) * s * c


def _src_table(rng: np.random.Generator, e_residual: float, e_noise: float = 0.0) -> Table:
    """A src table of 400 stars, 40 galaxies and 20 saturated stars: g in 6 visits, r in 2.

    Stars: 5 mmag photometric and 10 mas per-axis position scatter, errors reporting exactly that, and
    star moments of ellipticity (e_residual, 0) plus ``e_noise`` per component and visit on a round PSF.
    Galaxies (extendedness 1) and saturated stars (pixelFlags_saturatedCenter) scatter by 100 and 200 mmag:
    the selection must drop them.
    """
    ra, dec = _grid_field(22, 80.0, rng)  # 484 positions over 29 arcmin
    kind = np.zeros(ra.size, int)
    kind[400:440], kind[440:460] = 1, 2  # galaxies, saturated stars
    ra, dec, kind = ra[:460], dec[:460], kind[:460]
    mag0 = rng.uniform(17.0, 20.0, ra.size)
    scatter_mmag = np.choose(kind, [5.0, 100.0, 200.0])
    rows = []
    for band, visits in (("g", range(1000, 1012, 2)), ("r", (1100, 1102))):
        for v in visits:
            r, d = _jitter(ra, dec, 10.0, rng)
            mag = mag0 + rng.normal(0.0, scatter_mmag / 1000.0)
            flux = 10 ** (-0.4 * (mag - 31.4))
            n = r.size
            ixx, iyy, ixy = _moments(e_residual + rng.normal(0, e_noise, n), rng.normal(0, e_noise, n))
            rows.append(
                {
                    "coord_ra": r,
                    "coord_dec": d,
                    "coord_raErr": np.full(n, 10.0 / MAS_PER_DEG),
                    "coord_decErr": np.full(n, 10.0 / MAS_PER_DEG),
                    "psfFlux": flux,
                    "psfFluxErr": flux * 5.0 / MMAG_PER_FRACTION,
                    "extendedness": (kind == 1).astype(float),
                    "ixx": ixx,
                    "iyy": iyy,
                    "ixy": ixy,
                    "ixxPSF": np.full(n, 4.0),
                    "iyyPSF": np.full(n, 4.0),
                    "ixyPSF": np.zeros(n),
                    "pixelFlags_saturatedCenter": kind == 2,
                    "shape_flag": np.zeros(n, bool),
                    "visit": np.full(n, v),
                    "band": np.full(n, band),
                }
            )
    return Table({k: np.concatenate([row[k] for row in rows]) for k in rows[0]})


def test_srd_checks_of_a_src_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    th = load_thresholds()
    ctx = VerifyContext(tmp_path / "no-repo", "none", tmp_path)
    checks = {c.name: c for c in srd_checks_for_table(ctx, th, _src_table(np.random.default_rng(13), 0.003))}
    keys = ("PA1", "PF1", "PA2", "AM1", "AD1", "AF1", "AM2", "AD2", "AF2", "AM3", "AD3", "AF3", "TE1", "TE2")
    assert set(checks) == {f"{k}[band={b}]" for k in keys for b in "gr"}

    n_stars, n_visits, sigma = 400, 6, 5.0
    factor = float(median_std_factor(np.array([n_visits]))[0])
    pa1 = checks["PA1[band=g]"]
    assert pa1.n == n_stars  # galaxies and saturated stars dropped
    assert pa1.value == pytest.approx(
        sigma * factor, abs=N_SIGMA * _sd_of_median_of_std(sigma, n_visits, n_stars)
    )
    assert pa1.status == (Status.PASS if pa1.value <= 5.0 else Status.FAIL)
    assert ctx.metrics["PA1"]["g"]["expected"] == pytest.approx(sigma * factor, rel=1e-9)
    p_out = 2.0 * stats.norm.sf(15.0 / sigma)  # no 100-200 mmag residuals of the dropped objects
    dof = n_stars * (n_visits - 1)
    assert checks["PF1[band=g]"].value == pytest.approx(
        100 * p_out, abs=N_SIGMA * 100 * np.sqrt(p_out / dof) + 100 / (n_stars * n_visits)
    )
    for k in ("PA1", "PF1", "PA2"):
        assert checks[f"{k}[band=r]"].status == Status.NOT_AVAILABLE
        assert "only 2 visits in band r" in checks[f"{k}[band=r]"].reason

    sep_sigma = np.sqrt(2.0) * 10.0
    for x in (1, 2):
        am = checks[f"AM{x}[band=g]"]
        sd = _sd_of_median_of_std(sep_sigma, n_visits, (n_stars + 20) // 2)  # pairs share stars
        assert am.value == pytest.approx(sep_sigma * factor, abs=N_SIGMA * sd)
        assert ctx.metrics[f"AM{x}"]["g"]["expected"] == pytest.approx(sep_sigma * factor, rel=1e-9)
        assert am.status == Status.FAIL  # 12.6 mas > 10 mas
        assert checks[f"AF{x}[band=g]"].value < 1.0
    for b in "gr":
        am3 = checks[f"AM3[band={b}]"]
        assert am3.status == Status.NOT_AVAILABLE and "199-201 arcmin apart: the field is about" in am3.reason
    assert checks["AM1[band=r]"].status != Status.NOT_AVAILABLE  # two common visits suffice

    # Every star has the residual (0.003, 0): xi+ = 9e-6 at all separations; TE1 passes, TE2 fails.
    te1, te2 = checks["TE1[band=g]"], checks["TE2[band=g]"]
    assert te1.value == pytest.approx(9e-6, rel=1e-6) and te1.status == Status.PASS
    assert te2.value == pytest.approx(9e-6, rel=1e-6) and te2.status == Status.FAIL
    for name in ("srd_photometry_g", "srd_astrometry_g", "srd_te_g", "srd_astrometry_r"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 1000
    assert pa1.plot == "figures/srd_photometry_g.png"


def test_te_not_available_when_shape_noise_exceeds_the_threshold(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No residual, 0.02 ellipticity noise per visit: TE2's error (~6e-7) exceeds its 1e-7 threshold."""
    th = load_thresholds()
    ctx = VerifyContext(tmp_path / "no-repo", "none", tmp_path, make_plots=False)
    t = _src_table(np.random.default_rng(14), 0.0, e_noise=0.02)
    te2 = next(c for c in srd_checks_for_table(ctx, th, t) if c.name == "TE2[band=g]")
    metric = ctx.metrics["TE2"]["g"]
    assert metric["expected"] > th.spec("TE2").threshold
    assert abs(metric["value"]) < N_SIGMA * metric["expected"]  # consistent with no correlation
    assert te2.status == Status.NOT_AVAILABLE and "the shape noise exceeds the 1e-07 threshold" in te2.reason


def test_srd_checks_without_sources(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = VerifyContext(tmp_path / "no-repo", "none", tmp_path, make_plots=False)
    checks = srd_checks_for_table(ctx, load_thresholds(), Table())
    assert len(checks) == 14 and all(c.status == Status.NOT_AVAILABLE for c in checks)
    assert "no src catalog" in checks[0].reason
