"""The truth checks (``opendrp verify --truth``) recover the injected flux, position, classification,
completeness and purity of synthetic catalogs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table
from tests.qa.qa_synth import (
    DDEC_MAS,
    DEC0,
    DRA_MAS,
    FLUX_NOISE,
    FLUX_OFFSET,
    JITTER_MAS,
    RA0,
    STAR_MISCLASSIFIED,
    make_survey,
)

from opendrp.qa import match_catalogs
from opendrp.qa._footprint import PolygonFootprint
from opendrp.verify import truth
from opendrp.verify.context import VerifyContext
from opendrp.verify.model import Status
from opendrp.verify.thresholds import load_thresholds


def _ctx(tmp_path: Path, truth_table: Table | None = None) -> VerifyContext:
    path = None
    if truth_table is not None:
        path = tmp_path / "truth.parquet"
        truth_table.write(path, overwrite=True)
    return VerifyContext(tmp_path / "no-repo", "none", tmp_path, truth_path=path, make_plots=False)


@pytest.fixture(scope="module")
def survey() -> tuple[Table, Table]:
    s = make_survey(seed=4)
    prim = Table.from_pandas(s.objects[s.objects["detect_isPrimary"]].reset_index(drop=True))
    return prim, Table.from_pandas(s.truth)


def test_coadd_flux_checks_recover_offset_and_scatter(tmp_path: Path, survey: tuple[Table, Table]) -> None:
    prim, tru = survey
    i_obj, i_tru, _ = match_catalogs(
        prim["coord_ra"], prim["coord_dec"], tru["ra"], tru["dec"], radius_arcsec=0.5
    )
    snr = np.asarray(prim["g_psfFlux"] / prim["g_psfFluxErr"])
    ctx = _ctx(tmp_path)
    checks = {
        c.name: c
        for c in truth._coadd_flux_checks(
            ctx, load_thresholds(), prim, tru, "g", i_obj, i_tru, snr, np.zeros(len(prim), bool)
        )
    }
    off = checks["truth_coadd_psf_flux_offset[band=g]"]
    scat = checks["truth_coadd_psf_flux_scatter[band=g]"]
    assert off.value == pytest.approx(FLUX_OFFSET, abs=0.004)
    assert scat.value == pytest.approx(FLUX_NOISE, rel=0.12)
    assert scat.status == Status.FAIL  # 3 % > 1 %
    # the reported errors are 1.5 % where the scatter is 3 %: pulls of 2
    assert ctx.metrics["truth_coadd_psf_flux_std"]["g"]["pull_scatter"] == pytest.approx(2.0, rel=0.12)


def test_position_check_is_the_unclipped_rms(survey: tuple[Table, Table], tmp_path: Path) -> None:
    prim, tru = survey
    ctx = VerifyContext(tmp_path, "HSC/runs/drp", tmp_path)
    i_obj, i_tru, _ = match_catalogs(
        prim["coord_ra"], prim["coord_dec"], tru["ra"], tru["dec"], radius_arcsec=0.5
    )
    best = np.asarray(prim["g_psfFlux"] / prim["g_psfFluxErr"])
    check = truth._position_check(
        ctx,
        load_thresholds(),
        np.asarray(prim["coord_ra"]),
        np.asarray(prim["coord_dec"]),
        np.asarray(tru["ra"]),
        np.asarray(tru["dec"]),
        i_obj,
        i_tru,
        np.asarray(tru["is_star"], bool),
        best,
        np.zeros(len(prim), bool),
    )
    expect = np.sqrt(0.5 * (DRA_MAS**2 + DDEC_MAS**2) + JITTER_MAS**2)
    assert check.value == pytest.approx(expect, rel=0.08)
    assert check.status == Status.FAIL  # 34 mas > 20 mas
    robust = ctx.metrics["truth_position_robust_scatter"]["all"]["value"]
    assert robust == pytest.approx(np.sqrt(JITTER_MAS**2 + 0.5 * (DRA_MAS**2 + DDEC_MAS**2)), rel=0.15)
    # a 30 mas Gaussian jitter per axis on top of a 22 mas offset: about a third beyond 50 mas
    assert 0.05 < ctx.metrics["truth_position_beyond_50mas"]["all"]["value"] < 0.6


def test_star_galaxy_check_counts_misclassified_stars(tmp_path: Path, survey: tuple[Table, Table]) -> None:
    prim, tru = survey
    i_obj, i_tru, _ = match_catalogs(
        prim["coord_ra"], prim["coord_dec"], tru["ra"], tru["dec"], radius_arcsec=0.5
    )
    snr = {b: np.asarray(prim[f"{b}_psfFlux"] / prim[f"{b}_psfFluxErr"]) for b in ("g", "r")}
    best = np.fmax(snr["g"], snr["r"])
    ctx = _ctx(tmp_path)
    check = truth._star_galaxy_check(
        ctx, load_thresholds(), prim, snr, best, i_obj, np.asarray(tru["is_star"])[i_tru]
    )
    assert check.value == pytest.approx(1 - STAR_MISCLASSIFIED, abs=0.03)
    assert ctx.metrics["truth_galaxy_classified_extended"]["all"]["value"] == pytest.approx(1.0)


def _depth_survey(seed: int = 0) -> tuple[Table, Table, float]:
    """Truth stars 18-26 mag; objects with a sky-limited error of 100 nJy (S/N 10 at 23.9 mag); every star
    brighter than 23.5 detected, every other one of 23.5-24.5, none fainter; 40 spurious objects."""
    rng = np.random.default_rng(seed)
    n = 6000
    mag = rng.uniform(18.0, 26.0, n)
    ra = RA0 + rng.uniform(-0.1, 0.1, n)
    dec = DEC0 + rng.uniform(-0.1, 0.1, n)
    flux = 10 ** (-0.4 * (mag - 31.4))
    tru = Table({"id": np.arange(n), "ra": ra, "dec": dec, "is_star": np.ones(n, bool), "g_flux": flux})
    det = mag < 23.5
    mid = np.flatnonzero((mag >= 23.5) & (mag < 24.5))
    det[mid[::2]] = True
    n_sp = 40
    o_ra = np.concatenate([ra[det], RA0 + rng.uniform(-0.09, 0.09, n_sp)])
    o_dec = np.concatenate([dec[det], DEC0 + rng.uniform(-0.09, 0.09, n_sp)])
    o_flux = np.concatenate([flux[det], np.full(n_sp, 2000.0)]) + 100.0 * rng.standard_normal(
        det.sum() + n_sp
    )
    prim = Table(
        {"coord_ra": o_ra, "coord_dec": o_dec, "g_psfFlux": o_flux, "g_psfFluxErr": np.full(o_ra.size, 100.0)}
    )
    return prim, tru, 10 ** (-0.4 * (23.9 - 31.4)) / 100.0


def test_completeness_counts_the_detectable_true_stars_in_the_footprint(tmp_path: Path) -> None:
    prim, tru, _ = _depth_survey()
    i_obj, i_tru, _ = match_catalogs(
        prim["coord_ra"], prim["coord_dec"], tru["ra"], tru["dec"], radius_arcsec=0.5
    )
    snr = {"g": np.asarray(prim["g_psfFlux"] / prim["g_psfFluxErr"])}
    # the footprint: the western half of the field only
    fp = PolygonFootprint.from_polygons(
        [
            (
                np.array([RA0 - 0.2, RA0, RA0, RA0 - 0.2]),
                np.array([DEC0 - 0.2, DEC0 - 0.2, DEC0 + 0.2, DEC0 + 0.2]),
            )
        ]
    )
    ctx = _ctx(tmp_path, tru)
    check = truth._completeness_checks(ctx, load_thresholds(), prim, tru, ["g"], i_tru, snr, fp)[0]
    mag = 31.4 - 2.5 * np.log10(np.asarray(tru["g_flux"]))
    matched = np.zeros(len(tru), bool)
    matched[i_tru] = True
    west = np.asarray(tru["ra"]) < RA0
    sel = west & (mag <= 23.9)
    assert check.n == int(sel.sum())
    assert check.value == pytest.approx(np.mean(matched[sel]), abs=1e-12)
    # by construction: all brighter than 23.5, half of 23.5-23.9
    frac_mid = np.mean(mag[sel] >= 23.5)
    assert check.value == pytest.approx(1 - 0.5 * frac_mid, abs=0.02)
    # 90 %: between the bin centres 23.25 (complete) and 23.75 (half complete), interpolated
    assert ctx.metrics["truth_completeness_mag90_star"]["g"]["value"] == pytest.approx(23.35, abs=0.03)


def test_sky_flux_error_and_expected_snr() -> None:
    flux = np.array([500.0, 800.0, 1500.0, 1e6])
    err = np.array([100.0, 100.0, 100.0, 1000.0])  # the last is source-noise dominated, S/N 1000
    assert truth.sky_flux_error(flux, err) == 100.0
    assert truth.expected_snr(np.array([1000.0]), 100.0)[0] == 10.0


def test_purity_counts_unmatched_detections() -> None:
    prim, tru, _ = _depth_survey()
    i_obj, _, _ = match_catalogs(
        prim["coord_ra"], prim["coord_dec"], tru["ra"], tru["dec"], radius_arcsec=0.5
    )
    matched = np.zeros(len(prim), bool)
    matched[i_obj] = True
    snr = np.asarray(prim["g_psfFlux"] / prim["g_psfFluxErr"])
    value, n = truth.purity(snr >= 10, matched)
    n_spurious_bright = int(np.sum((snr >= 10)[-40:] & ~matched[-40:]))
    assert n_spurious_bright > 30
    assert value == pytest.approx(1 - n_spurious_bright / n, abs=1e-12)


def test_single_visit_truth_checks_per_band(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    n = 3000
    tru = Table(
        {
            "id": np.arange(n),
            "ra": RA0 + rng.uniform(-0.1, 0.1, n),
            "dec": DEC0 + rng.uniform(-0.1, 0.1, n),
            "is_star": rng.random(n) < 0.5,
            "g_flux": rng.uniform(2e4, 2e5, n),
        }
    )
    visits = 3
    idx = np.tile(np.arange(n), visits)
    flux = np.asarray(tru["g_flux"])[idx] * (1 + 0.004 + 0.006 * rng.standard_normal(idx.size))
    src = Table(
        {
            "coord_ra": np.asarray(tru["ra"])[idx],
            "coord_dec": np.asarray(tru["dec"])[idx],
            "psfFlux": flux,
            "psfFluxErr": flux / 200.0,
            "band": np.full(idx.size, "g"),
        }
    )
    ctx = _ctx(tmp_path, tru)
    checks = {
        c.name: c
        for c in truth.source_truth_checks(
            ctx, load_thresholds(), src, clean=np.ones(len(src), bool), radius_arcsec=0.5
        )
    }
    assert checks["truth_src_psf_flux_offset[band=g]"].value == pytest.approx(0.004, abs=0.0006)
    assert checks["truth_src_psf_flux_scatter[band=g]"].value == pytest.approx(0.006, rel=0.06)
    assert ctx.metrics["truth_src_flux_scatter"]["g"]["value"] == pytest.approx(0.006, rel=0.06)
    assert ctx.metrics["truth_src_repeatability"]["g"]["value"] == pytest.approx(
        1.0857 * 6.0 * np.sqrt(np.log(2.0)), rel=0.05
    )  # the median of 3-visit sample rms: sigma sqrt(ln 2)


def test_blind_insertions_are_scored_and_explain_unmatched_objects(tmp_path: Path) -> None:
    prim, tru, _ = _depth_survey()
    # the last 40 objects match no truth: 25 of them are blind insertions (sealed away from the truth)
    blind = pd.DataFrame(
        {
            "ra": np.asarray(prim["coord_ra"])[-40:-15],
            "dec": np.asarray(prim["coord_dec"])[-40:-15],
            "kind": ["constant"] * 25,
            "g_flux": np.full(25, 2000.0),
        }
    )
    (tmp_path / "sealed").mkdir()
    blind.to_parquet(tmp_path / "sealed" / "blind.parquet")
    ctx = _ctx(tmp_path, tru)
    i_obj, _, _ = match_catalogs(
        prim["coord_ra"], prim["coord_dec"], tru["ra"], tru["dec"], radius_arcsec=0.5
    )
    unmatched = np.ones(len(prim), bool)
    unmatched[i_obj] = False
    fp = PolygonFootprint.from_polygons(
        [
            (
                np.array([RA0 - 0.2, RA0 + 0.2, RA0 + 0.2, RA0 - 0.2]),
                np.array([DEC0 - 0.2, DEC0 - 0.2, DEC0 + 0.2, DEC0 + 0.2]),
            )
        ]
    )
    explained = truth._blind_scores(ctx, prim, unmatched, ["g"], 0.5, fp)
    assert explained.sum() == 25 and explained[-40:-15].all()
    assert ctx.metrics["blind_n_inserted"]["all"]["value"] == 25
    assert ctx.metrics["blind_n_recovered"]["all"]["value"] == 25
    assert ctx.metrics["blind_n_unexplained_objects"]["all"]["value"] == unmatched.sum() - 25
    assert ctx.metrics["blind_recovered_fraction"]["constant"]["value"] == 1.0
