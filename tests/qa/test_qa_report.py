"""End-to-end tests of run_qa on synthetic catalogs with known offsets, scatters and completeness."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from astropy.table import Table
from tests.qa.qa_synth import (
    DDEC_MAS,
    DRA_MAS,
    ERR_BRIGHT,
    FLUX_NOISE,
    FLUX_OFFSET,
    JITTER_MAS,
    STAR_MISCLASSIFIED,
)

from opendrp.errors import ConfigurationError
from opendrp.qa import QAConfig, run_qa


@pytest.fixture(scope="module")
def report(survey, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("qa")
    metrics = run_qa(survey.objects, survey.truth, refcat=survey.refcat, outdir=outdir)
    return outdir, metrics


def _v(q):
    return q["value"]


def test_counts_and_primary_only(survey, report):
    _, m = report
    s = m["summary"]
    n_primary = survey.n_detected + survey.n_spurious
    assert _v(s["n_objects"]) == len(survey.objects) > n_primary
    assert _v(s["n_primary"]) == n_primary
    # Every detected truth source is matched, once, to its primary object; duplicates are ignored.
    assert _v(s["n_matched"]) == survey.n_detected
    assert abs(_v(s["matched_fraction"]) - survey.n_detected / n_primary) < 1e-12
    # The 200 truth sources outside the surveyed area are not in the footprint.
    assert _v(s["n_truth_in_footprint"]) <= len(survey.truth) - 200
    assert _v(s["n_truth_in_footprint"]) > 0.99 * (len(survey.truth) - 200)
    assert m["bands"] == ["g", "r"]


def test_photometry_vs_truth(survey, report):
    _, m = report
    for b in ("g", "r"):
        p = m["photometry"][b]
        assert _v(p["n"]) == survey.n_bright_stars  # S/N > 50 selects exactly the g < 22 stars
        assert p["offset_median"]["unit"] == "fraction"
        assert abs(_v(p["offset_median"]) - FLUX_OFFSET) < 0.004
        assert abs(_v(p["offset_scatter"]) - FLUX_NOISE) < 0.003
        assert abs(_v(p["normalized_scatter"]) - FLUX_NOISE / ERR_BRIGHT) < 0.2
        assert abs(_v(p["normalized_median"]) - FLUX_OFFSET / ERR_BRIGHT) < 0.25


def test_astrometry_vs_truth(report):
    _, m = report
    a = m["astrometry"]["g"]
    assert a["coord_scatter"]["unit"] == "mas"
    assert abs(_v(a["dra_median"]) - DRA_MAS) < 4.0
    assert abs(_v(a["ddec_median"]) - DDEC_MAS) < 4.0
    assert abs(_v(a["dra_scatter"]) - JITTER_MAS) < 3.0
    assert abs(_v(a["ddec_scatter"]) - JITTER_MAS) < 3.0
    assert abs(_v(a["coord_scatter"]) - JITTER_MAS) < 3.0


def test_completeness(report):
    _, m = report
    c = m["completeness"]["g"]
    edges = np.array(_v(c["mag_bin_edges"]))
    np.testing.assert_allclose(np.diff(edges), 0.5)
    centres = 0.5 * (edges[1:] + edges[:-1])
    for cls in ("star", "galaxy"):
        comp = np.array(_v(c[cls]["completeness"]), dtype=float)
        np.testing.assert_allclose(comp[centres < 24], 1.0)
        assert np.all(np.abs(comp[(centres > 24) & (centres < 25)] - 0.5) < 0.1)
        np.testing.assert_allclose(comp[centres > 25], 0.0)
        # 90%: interpolated between the 23.75 (1.0) and 24.25 (~0.5) bin centres -> ~23.85.
        assert abs(_v(c[cls]["mag_90"]) - 23.85) < 0.03
        assert 24.0 < _v(c[cls]["mag_50"]) < 25.0


def test_star_galaxy(report):
    _, m = report
    sg = m["star_galaxy"]
    assert abs(_v(sg["star_fraction_correct"]) - (1 - STAR_MISCLASSIFIED)) < 0.005
    assert _v(sg["galaxy_fraction_correct"]) == 1.0


def test_refcat(report):
    _, m = report
    r = m["refcat"]
    assert r["bands"] == ["g"] and list(r["photometry"]) == ["g"]
    assert _v(r["n_matched"]) == _v(r["n_refcat"])
    p = r["photometry"]["g"]
    assert abs(_v(p["offset_median"]) - FLUX_OFFSET) < 0.005
    # Reference errors (1%, 5 mas) add in quadrature.
    assert abs(_v(p["offset_scatter"]) - np.hypot(FLUX_NOISE, 0.01)) < 0.004
    a = r["astrometry"]["g"]
    assert abs(_v(a["coord_scatter"]) - np.hypot(JITTER_MAS, 5.0)) < 3.0
    assert abs(_v(a["dra_median"]) - DRA_MAS) < 4.0


def test_checks_pass_and_outputs_written(report):
    outdir, m = report
    assert m["ok"] is True
    assert len(m["checks"]) == 6  # 3 checks x 2 bands; refcat not checked by default
    assert all(c["status"] == "pass" for c in m["checks"])
    on_disk = json.loads((outdir / "metrics.json").read_text())
    assert on_disk["ok"] is True and on_disk["photometry"] == m["photometry"]
    html = (outdir / "index.html").read_text()
    assert "overall: OK" in html
    for fname in m["figures"].values():
        assert (outdir / fname).stat().st_size > 10_000
        assert f"src='{fname}'" in html
    assert set(m["figures"]) == {"flux_residuals", "astrometry", "completeness", "sky_map"}
    assert "g: stars S/N&gt;50: psfFlux scatter &lt; 5%" in html


def test_failing_check_and_refcat_checks(survey, tmp_path):
    cfg = QAConfig(max_flux_scatter=0.02, check_refcat=True, make_plots=False)
    m = run_qa(survey.objects, survey.truth, refcat=survey.refcat, bands=["g"], outdir=tmp_path, config=cfg)
    assert m["ok"] is False
    status = {c["metric"]: c["status"] for c in m["checks"]}
    assert status["truth.photometry.g.offset_scatter"] == "fail"
    assert status["truth.photometry.g.offset_median"] == "pass"
    assert status["refcat.astrometry.g.coord_scatter"] == "pass"
    assert m["figures"] == {}
    html = (tmp_path / "index.html").read_text()
    assert "overall: FAILED" in html and "class='fail'" in html


def test_no_bright_stars_is_no_data(survey, tmp_path):
    m = run_qa(survey.objects, survey.truth, outdir=tmp_path, config=QAConfig(snr_min=1e6, make_plots=False))
    assert {c["status"] for c in m["checks"]} == {"no data"}
    assert m["ok"] is False
    assert m["photometry"]["g"]["offset_median"]["value"] is None  # NaN is written as null
    json.loads((tmp_path / "metrics.json").read_text())  # strict JSON


def test_paths_and_astropy_tables(survey, tmp_path):
    obj_path = tmp_path / "object.parquet"
    truth_path = tmp_path / "truth.parquet"
    survey.objects.to_parquet(obj_path)
    survey.truth.to_parquet(truth_path)
    cfg = QAConfig(make_plots=False)
    m1 = run_qa(obj_path, truth_path, outdir=tmp_path / "a", config=cfg)
    m2 = run_qa(
        Table.from_pandas(survey.objects), Table.from_pandas(survey.truth), outdir=tmp_path / "b", config=cfg
    )
    assert m1["inputs"]["object_table"] == str(obj_path)
    assert m1["photometry"] == m2["photometry"]
    assert m1["ok"] and m2["ok"]


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("objects", "g_psfFluxErr"),
        ("objects", "detect_isPrimary"),
        ("objects", "coord_dec"),
        ("truth", "is_star"),
        ("truth", "r_flux"),
        ("refcat", "coord_ra"),
    ],
)
def test_missing_column_raises(survey, tmp_path, table, column):
    tables = {"objects": survey.objects, "truth": survey.truth, "refcat": survey.refcat}
    tables[table] = tables[table].drop(columns=[column])
    with pytest.raises(ConfigurationError, match=column) as info:
        run_qa(
            tables["objects"],
            tables["truth"],
            refcat=tables["refcat"],
            bands=["g", "r"],
            outdir=tmp_path,
            config=QAConfig(make_plots=False),
        )
    msg = str(info.value)
    assert "\n" not in msg
    assert {"objects": "object table", "truth": "truth catalog", "refcat": "reference catalog"}[table] in msg
    assert pickle.loads(pickle.dumps(info.value)).one_line() == msg


def test_bad_inputs_raise(survey, tmp_path):
    with pytest.raises(ConfigurationError, match="not found"):
        run_qa(tmp_path / "nope.parquet", survey.truth, outdir=tmp_path)
    with pytest.raises(ConfigurationError, match="no band"):
        run_qa(survey.objects, survey.truth.rename(columns={"g_flux": "x", "r_flux": "y"}), outdir=tmp_path)
    with pytest.raises(ConfigurationError, match="QAConfig.match_radius_arcsec"):
        run_qa(survey.objects, survey.truth, outdir=tmp_path, config=QAConfig(match_radius_arcsec=0))


def test_star_galaxy_uses_refband_also_as_bytes_from_fits(survey, tmp_path):
    objects = survey.objects.copy()
    objects["refBand"] = "r"
    objects["r_psfFluxErr"] = objects["r_psfFlux"]  # S/N 1 in the reference band, g still bright
    path = tmp_path / "object.fits"
    Table.from_pandas(objects).write(path)  # refBand is stored as bytes in FITS
    cfg = QAConfig(make_plots=False)
    for obj in (objects, path):
        m = run_qa(obj, survey.truth, bands=["g", "r"], outdir=tmp_path, config=cfg)
        assert m["star_galaxy"]["n_star"]["value"] == 0
    objects["refBand"] = "g"
    m = run_qa(objects, survey.truth, outdir=tmp_path, config=cfg)
    assert m["star_galaxy"]["n_star"]["value"] > 100


def test_no_primary_objects_gives_no_data_not_a_crash(survey, tmp_path):
    objects = survey.objects.assign(detect_isPrimary=False)
    m = run_qa(objects, survey.truth, refcat=survey.refcat, outdir=tmp_path)
    assert m["summary"]["n_primary"]["value"] == 0 and m["summary"]["n_matched"]["value"] == 0
    assert {c["status"] for c in m["checks"]} == {"no data"} and m["ok"] is False
    assert (tmp_path / "sky_map.png").exists()
