"""The catalog statistics of DRP-00-15 / DRP-00-25 recover injected offsets, scatters, outliers and widths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from tests.qa.qa_synth import DDEC_MAS, DRA_MAS, FLUX_NOISE, FLUX_OFFSET, JITTER_MAS, make_survey

from opendrp.qa import match_catalogs
from opendrp.verify.cases.object_catalog import join_catalogs
from opendrp.verify.cases.source_catalog import RefMatch, apcorr_checks, reference_checks
from opendrp.verify.catalogs import (
    FWHM_PER_SIGMA,
    bright_star_mask,
    cell_residual_stats,
    colour,
    ellipticity,
    fit_locus,
    flux_residuals,
    group_indices,
    has_neighbour,
    position_residual_stats,
    psf_residual_stats,
    residual_stats,
    trace_radius,
)
from opendrp.verify.context import VerifyContext
from opendrp.verify.model import Status
from opendrp.verify.thresholds import load_thresholds


def test_residual_stats_recovers_offset_scatter_outliers_and_pulls() -> None:
    rng = np.random.default_rng(3)
    n = 20000
    r = 0.01 + 0.02 * rng.standard_normal(n)
    out = rng.random(n) < 0.03
    r[out] = 0.3 * rng.choice([-1.0, 1.0], out.sum())
    err = np.full(n, 0.02)
    st = residual_stats(r, err, outlier_sigma=5.0, outlier_min=0.05)
    assert st.n == n
    assert st.median == pytest.approx(0.01, abs=0.001)
    assert st.robust_scatter == pytest.approx(0.02 * 1.03, rel=0.05)  # 3 % outliers widen the MAD slightly
    assert st.outlier_fraction == pytest.approx(0.03, abs=0.004)
    assert st.std > 0.05  # unclipped: the outliers dominate
    assert st.expected_scatter == pytest.approx(0.02)
    assert st.pull_scatter == pytest.approx(1.03, rel=0.05)
    assert st.tail_fraction == pytest.approx(0.03 + 0.0027, abs=0.004)


def test_residual_stats_empty_and_without_errors() -> None:
    st = residual_stats([np.nan, np.inf])
    assert st.n == 0 and np.isnan(st.median)
    st = residual_stats([1.0, 2.0, 3.0])
    assert st.median == 2.0 and np.isnan(st.expected_scatter) and np.isnan(st.pull_scatter)


def test_flux_residuals_propagate_both_errors() -> None:
    frac, err = flux_residuals([110.0], [3.0], [100.0], [4.0])
    assert frac[0] == pytest.approx(0.1)
    assert err[0] == pytest.approx(np.hypot(3.0 / 110.0, 0.04))
    frac, _ = flux_residuals([1.0], [1.0], [0.0])
    assert np.isnan(frac[0])


def test_position_residual_stats() -> None:
    rng = np.random.default_rng(5)
    n = 20000
    dra = 3.0 + 10.0 * rng.standard_normal(n)
    ddec = -8.0 + 10.0 * rng.standard_normal(n)
    far = rng.random(n) < 0.02
    dra[far] += 500.0
    st = position_residual_stats(dra, ddec, err_mas=np.full(n, 10.0), outlier_mas=100.0)
    assert st.dra_median == pytest.approx(3.0, abs=0.4)
    assert st.ddec_median == pytest.approx(-8.0, abs=0.4)
    assert st.offset == pytest.approx(8.0, abs=0.4)
    expect_rms = np.sqrt(0.5 * (np.mean(dra**2) + np.mean(ddec**2)))
    assert st.rms == pytest.approx(expect_rms)
    assert st.rms > 50.0  # the 2 % at 500 mas count in the unclipped rms
    assert st.robust_scatter == pytest.approx(10.0, rel=0.06)
    assert st.outlier_fraction == pytest.approx(0.02, abs=0.003)
    assert st.expected_scatter == 10.0


def test_shapes_of_known_moments() -> None:
    e1, e2 = ellipticity([4.0], [2.0], [1.0])
    assert e1[0] == pytest.approx(1.0 / 3.0) and e2[0] == pytest.approx(1.0 / 3.0)
    assert trace_radius([4.0], [2.0])[0] == pytest.approx(np.sqrt(3.0))
    assert FWHM_PER_SIGMA == pytest.approx(2.3548, abs=1e-4)


def _moments(sigma: np.ndarray, e1: np.ndarray, e2: np.ndarray) -> tuple[np.ndarray, ...]:
    """Moments with trace radius ``sigma`` and distortion (e1, e2)."""
    tr = 2.0 * sigma**2
    return 0.5 * tr * (1 + e1), 0.5 * tr * (1 - e1), 0.5 * tr * e2


def test_psf_residual_stats_recovers_injected_ellipticity_and_size() -> None:
    rng = np.random.default_rng(7)
    n = 5000
    p1, p2 = 0.05 * rng.standard_normal(n), 0.05 * rng.standard_normal(n)
    sig_psf = rng.uniform(1.5, 2.5, n)
    psf = _moments(sig_psf, p1, p2)
    star = _moments(sig_psf * 1.02, p1 + 0.01 + 0.003 * rng.standard_normal(n), p2)
    st = psf_residual_stats(*star, *psf)
    assert st.de1_median == pytest.approx(0.01, abs=3e-4)
    assert st.de2_median == pytest.approx(0.0, abs=1e-9)
    assert st.size_median == pytest.approx(0.02, rel=1e-6)
    assert st.e_rms == pytest.approx(np.sqrt(0.5 * (0.01**2 + 0.003**2)), rel=0.05)


@pytest.mark.parametrize("systematic", [0.0, 0.006])
def test_cell_residual_stats_separates_psf_error_from_shape_noise(systematic: float) -> None:
    rng = np.random.default_rng(11)
    n_cells, per_cell, noise = 200, 50, 0.02
    cell = np.repeat(np.arange(n_cells), per_cell)
    # a PSF-model error coherent over each cell, rms `systematic` per component
    s1, s2 = systematic * rng.standard_normal((2, n_cells))
    de1 = s1[cell] + noise * rng.standard_normal(cell.size)
    de2 = s2[cell] + noise * rng.standard_normal(cell.size)
    st = cell_residual_stats(de1, de2, cell, min_per_cell=5)
    assert st.n_cells == n_cells and st.n == cell.size
    assert st.noise == pytest.approx(noise / np.sqrt(per_cell), rel=0.05)
    assert st.rms == pytest.approx(np.sqrt(systematic**2 + st.noise**2), rel=0.08)
    # the 0.005 threshold: a perfect PSF model passes despite 0.02 shape noise per star, 0.006 fails
    assert (st.rms <= 0.005) == (systematic == 0.0)


def test_cell_residual_stats_ignores_small_cells() -> None:
    st = cell_residual_stats([0.1, 0.1, 0.0], [0.0, 0.0, 0.0], [1, 1, 2], min_per_cell=2)
    assert st.n_cells == 1 and st.n == 2 and st.rms == pytest.approx(np.sqrt(0.5 * 0.01))


def test_has_neighbour_by_group_and_radius() -> None:
    pts = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [0.0, 0.0], [50.0, 50.0], [np.nan, 0.0]])
    group = np.array([0, 0, 0, 1, 1, 1])
    out = has_neighbour(pts, radius=3.0, group=group)
    assert out.tolist() == [True, True, False, False, False, False]
    # per-group radius: group 0 with radius 1 has no pair, group 1 with radius 100 has one
    out = has_neighbour(pts, radius=[1.0, 100.0], group=group)
    assert out.tolist() == [False, False, False, True, True, False]


def test_fit_locus_recovers_slope_and_width_despite_outliers() -> None:
    rng = np.random.default_rng(13)
    n = 4000
    t = rng.uniform(0.2, 1.4, n)
    angle = np.arctan(0.5)
    perp = 0.02 * rng.standard_normal(n)
    c1 = t * np.cos(angle) - perp * np.sin(angle)
    c2 = 0.1 + t * np.sin(angle) + perp * np.cos(angle)
    bad = rng.random(n) < 0.05
    c2[bad] += rng.uniform(0.3, 1.0, bad.sum())
    locus = fit_locus(c1, c2)
    assert locus.angle == pytest.approx(angle, abs=0.01)
    assert locus.width == pytest.approx(0.02, rel=0.08)
    assert locus.n == pytest.approx(0.95 * n, rel=0.02)
    d = locus.perpendicular(c1[~bad], c2[~bad])
    assert np.median(d) == pytest.approx(0.0, abs=0.002)


def test_colour_and_its_error() -> None:
    c, e = colour([100.0], [10 ** (0.4 * 0.3) * 100.0], [1.0], [2.0])
    assert c[0] == pytest.approx(0.3)
    assert e[0] == pytest.approx(2.5 / np.log(10) * np.hypot(0.01, 2.0 / (10 ** (0.4 * 0.3) * 100.0)))


def test_bright_star_mask() -> None:
    flux = np.array([1000.0, 1000.0, 1000.0, 1000.0, 10.0, 1000.0])
    err = np.ones(6)
    ext = np.array([0.0, 1.0, 0.0, 0.0, 0.0, np.nan])
    bad = np.array([False, False, True, False, False, False])
    crowded = np.array([False, False, False, True, False, False])
    out = bright_star_mask(flux, err, ext, snr_min=50.0, bad=bad, crowded=crowded)
    assert out.tolist() == [True, False, False, False, False, False]


def test_group_indices() -> None:
    g = group_indices(np.array(["r", "g", "r"]), np.array([1, 1, 2]))
    assert list(g) == [("g", 1), ("r", 1), ("r", 2)]
    assert g[("r", 1)].tolist() == [0]


# --------------------------------------------------------------------------- the reference-catalog checks
def _context(tmp_path: Path) -> VerifyContext:
    return VerifyContext(tmp_path / "no-repo", "none", tmp_path, make_plots=False)


def _synthetic_match(zero_point: float) -> tuple[RefMatch, Table]:
    """qa_synth's survey (1 % flux offset, 3 % scatter, 20/-10 mas offset, 30 mas jitter, g-band reference
    with 1 % errors) with a zero-point error multiplying every flux."""
    s = make_survey(seed=2)
    obj = s.objects[s.objects["detect_isPrimary"]].reset_index(drop=True)
    ref = Table.from_pandas(s.refcat)
    io, ir, _ = match_catalogs(
        obj["coord_ra"], obj["coord_dec"], ref["coord_ra"], ref["coord_dec"], radius_arcsec=0.5
    )
    ref_index = np.full(len(obj), -1, np.intp)
    ref_index[io] = ir
    flux = obj["g_psfFlux"].to_numpy() * (1.0 + zero_point)
    err = obj["g_psfFluxErr"].to_numpy()
    sel = (ref_index >= 0) & (obj["refExtendedness"].to_numpy() == 0) & (flux / err > 50)
    m = RefMatch(
        ra=obj["coord_ra"].to_numpy(),
        dec=obj["coord_dec"].to_numpy(),
        flux=flux,
        flux_err=err,
        err_mas=np.full(len(obj), 5.0 * np.sqrt(2)),
        ref_index=ref_index,
        selected=sel,
        crowded_bright=np.zeros(len(obj), bool),
        isolated_bright=sel,
    )
    return m, ref


def _by_name(checks: list) -> dict:
    return {c.name: c for c in checks}


def test_reference_checks_recover_the_injected_survey(tmp_path: Path) -> None:
    th = load_thresholds()
    ctx = _context(tmp_path)
    m, ref = _synthetic_match(0.0)
    checks = _by_name(reference_checks(ctx, th, "obj", "g", np.zeros(len(m.ra), int), m, ref))
    scope = "[band=g, tract=0]"
    off = checks[f"obj_ref_phot_offset{scope}"]
    # 1 % injected offset; the reference's 1 % errors widen the 3 % scatter to sqrt(3**2 + 1**2) %
    assert off.value == pytest.approx(FLUX_OFFSET, abs=0.004)
    assert off.status == (Status.PASS if abs(off.value) <= 0.01 else Status.FAIL)
    scat = checks[f"obj_ref_phot_scatter{scope}"]
    assert scat.value == pytest.approx(np.hypot(FLUX_NOISE, 0.01), rel=0.12)
    assert scat.status == Status.FAIL  # 3.2 % > 2 %
    rms = checks[f"obj_ref_astrom_rms{scope}"]
    expect = np.sqrt(0.5 * (DRA_MAS**2 + DDEC_MAS**2) + JITTER_MAS**2 + 5.0**2)
    assert rms.value == pytest.approx(expect, rel=0.08)
    assert rms.status == Status.FAIL  # 35 mas > 20 mas
    # radial offsets beyond 100 mas of an offset (20, -10) mas with sqrt(30**2 + 5**2) mas per axis
    rng = np.random.default_rng(0)
    sig = np.hypot(JITTER_MAS, 5.0)
    expect_far = np.mean(
        np.hypot(DRA_MAS + sig * rng.standard_normal(10**6), DDEC_MAS + sig * rng.standard_normal(10**6))
        > 100
    )
    assert checks[f"obj_ref_astrom_outliers{scope}"].value == pytest.approx(expect_far, abs=0.006)
    assert ctx.metrics["obj_ref_phot_expected_scatter"]["g/0"]["value"] == pytest.approx(
        np.hypot(0.015, 0.01), rel=0.05
    )


def test_reference_checks_fail_a_five_percent_zero_point(tmp_path: Path) -> None:
    """The broken configuration (c) of the issue: every flux 5 % high must fail the offset check."""
    th = load_thresholds()
    m, ref = _synthetic_match(0.05)
    off = _by_name(reference_checks(_context(tmp_path), th, "src", "g", np.zeros(len(m.ra), int), m, ref))
    check = off["src_ref_phot_offset[band=g, tract=0]"]
    assert check.value == pytest.approx((1 + FLUX_OFFSET) * 1.05 - 1, abs=0.005)
    assert check.status == Status.FAIL


def test_reference_checks_without_reference_flux_are_not_available(tmp_path: Path) -> None:
    th = load_thresholds()
    m, ref = _synthetic_match(0.0)
    checks = reference_checks(_context(tmp_path), th, "obj", "r", np.zeros(len(m.ra), int), m, ref)
    phot = [c for c in checks if c.name.startswith("obj_ref_phot")]
    assert phot and all(c.status == Status.NOT_AVAILABLE for c in phot)


def test_apcorr_checks_detect_an_uncorrected_flux(tmp_path: Path) -> None:
    rng = np.random.default_rng(17)
    n = 500
    psf = rng.uniform(1e4, 1e5, n)
    cat = Table(
        {
            "g_psfFlux": psf,
            "g_psfFluxErr": psf / 200,
            "g_kronFlux": psf * (1 + 0.002 * rng.standard_normal(n)),
            "g_gaussianFlux": psf * 0.9,  # a missing 10 % aperture correction
        }
    )
    cols = {a: f"g_{a}" for a in ("kronFlux", "gaussianFlux", "calibFlux", "psfFlux")}
    checks = _by_name(
        apcorr_checks(_context(tmp_path), load_thresholds(), "obj", "g", cat, np.ones(n, bool), columns=cols)
    )
    assert checks["obj_apcorr_consistency[band=g, flux=kronFlux]"].status == Status.PASS
    gauss = checks["obj_apcorr_consistency[band=g, flux=gaussianFlux]"]
    assert gauss.value == pytest.approx(-0.1) and gauss.status == Status.FAIL and gauss.partial_ok
    assert checks["obj_apcorr_consistency[band=g, flux=calibFlux]"].status == Status.NOT_AVAILABLE


def test_join_catalogs_by_id_and_by_position() -> None:
    a = Table(
        {"objectId": [5, 6, 7], "x": [10.0, 20.0, 30.0], "y": [0.0] * 3, "tract": [0] * 3, "patch": [1, 1, 2]}
    )
    b = Table({"objectId": [7, 5], "x": [30.0, 10.0], "y": [0.0, 0.0], "tract": [0, 0], "patch": [2, 1]})
    ia, ib = join_catalogs(a, b, radius_pix=1.0)
    assert sorted(zip(ia.tolist(), ib.tolist(), strict=True)) == [(0, 1), (2, 0)]
    del b["objectId"]
    b["patch"] = [1, 1]  # the object at x = 30 is now in another patch: not joined
    ia, ib = join_catalogs(a, b, radius_pix=1.0)
    assert list(zip(ia.tolist(), ib.tolist(), strict=True)) == [(0, 1)]
