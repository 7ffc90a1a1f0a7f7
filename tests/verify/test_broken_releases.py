"""Releases processed with deliberately broken configurations fail the DRP-00 cases they should.

One small survey with artefacts (cosmic rays, a satellite trail in every visit, bright saturated stars) is
processed once as it should be (its g band: 3 visits of 3 CCDs), then four times more into other collections
of the same repository, each with one thing broken:

(a) the g-band CCDs calibrated with r-band master flats (certified under g-band data IDs);
(b) cosmic-ray repair switched off;
(c) the zero point shifted by 5 % (a constant colour term of 0.053 mag);
(d) artifact rejection in the coadds switched off.

Each broken release must fail the case that judges what was broken, and every case that the good release
passes and that does not judge it must still pass.  The reference catalogue is the truth's: what a check
measures against it is what a survey would measure against Gaia/PS1.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from lsst.daf.butler import CollectionType, Timespan

from opendrp.execution import run_drp
from opendrp.execution.drp import drp_pipeline_path
from opendrp.execution.runner import ExecutionOptions, run_pipeline
from opendrp.instrument import Camera
from opendrp.repo import create_repo, ingest_raws, ingest_refcat, open_butler
from opendrp.repo.butler import calib_collection, camera_run, defaults_chain, raw_run
from opendrp.sim import load_sim_config, simulate
from opendrp.skymap import SkyMapConfig
from opendrp.verify import run_verify

GOOD = "HSC/runs/drp"
BAND_G = "band = 'g'"


def _sim_config() -> Any:
    cfg = load_sim_config("tiny")
    cfg.seed = 11
    cfg.conditions.satellite_trail_probability = 1.0
    cfg.instrument.cosmic_ray_rate = 0.02
    cfg.stars.bright_density_per_deg2 = 300.0
    cfg.bands["r"].n_visits = 1  # r: its dome flats (for (a)) and one visit; the releases are of g
    return cfg


def _certify_wrong_flats(repo: Path) -> str:
    """A calibration collection whose g flats are the r flats; returns an input chain that uses it."""
    butler = open_butler(repo, writeable=True)
    inst = "HSC"
    good_calib = calib_collection(inst)
    run = f"{inst}/calib/wrongflat/run"
    wrong = f"{inst}/calib/wrongflat"
    butler.collections.register(run)
    butler.collections.register(wrong, CollectionType.CALIBRATION)
    for dtype in ("bias", "defects"):
        refs = butler.query_datasets(
            dtype, collections=good_calib, find_first=False, explain=False, limit=None
        )
        butler.registry.certify(wrong, refs, Timespan(None, None))
    r_flats = butler.query_datasets(
        "flat", collections=good_calib, where="band = 'r'", find_first=False, explain=False, limit=None
    )
    g_filter = next(
        iter(butler.query_dimension_records("physical_filter", where="band = 'g'", explain=False))
    )
    put = []
    for ref in r_flats:
        flat = butler.get(ref)
        data_id = dict(ref.dataId.required)
        data_id["physical_filter"] = g_filter.name
        put.append(butler.put(flat, "flat", data_id, run=run))
    r_refs = list(r_flats)
    butler.registry.certify(wrong, put + r_refs, Timespan(None, None))
    chain = f"{inst}/defaults_wrongflat"
    butler.collections.register(chain, CollectionType.CHAINED)
    defaults = butler.collections.get_info(defaults_chain(inst)).children
    butler.collections.redefine_chain(chain, [wrong if c == good_calib else c for c in defaults])
    assert raw_run(inst) in defaults and camera_run(inst) in defaults
    return chain


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The good release and the four broken ones, each verified (the verify documents by name)."""
    root = tmp_path_factory.mktemp("broken")
    cfg = _sim_config()
    sim = simulate(cfg, root / "sim", progress=False)
    repo = root / "repo"
    skymap = SkyMapConfig.from_dict(cfg.skymap)
    create_repo(repo, camera=Camera.from_yaml(sim.camera_path), skymap_config=skymap)
    butler = open_butler(repo, writeable=True)
    ingest_refcat(butler, root / "sim" / "refcat" / "refcat.parquet")
    report = ingest_raws(butler, sorted((root / "sim" / "raw").rglob("*.fits")), transfer="link")
    assert not report.failed
    options = ExecutionOptions(processes=2)
    run_drp(repo, where=BAND_G, progress=False, options=options)
    wrong_inputs = _certify_wrong_flats(repo)
    variants: dict[str, dict[str, Any]] = {
        "wrong_flat": {"inputs": [wrong_inputs], "where": BAND_G},
        "no_cr": {"config_overrides": {"calibrateImage": {"do_cosmic_rays": False}}, "where": BAND_G},
        "zp5": {
            "config_overrides": {"calibrateImage": {"colour_terms": {"g": "g,r,0.053"}}},
            "where": BAND_G,
        },
    }
    for name, kwargs in variants.items():
        run_drp(repo, steps=["drp"], output=f"HSC/runs/{name}", progress=False, options=options, **kwargs)
    run_pipeline(
        repo,
        drp_pipeline_path(),
        labels=["step2", "step3"],
        where=f"instrument = 'HSC' AND skymap = '{skymap.name}' AND {BAND_G}",
        inputs=[GOOD, defaults_chain("HSC")],
        output="HSC/runs/noclip",
        config_overrides={"assembleCoadd": {"clip_sigma": 0.0}},
        progress=False,
        options=options,
    )
    names = ["good", *variants, "noclip"]
    collections = [GOOD] + [f"HSC/runs/{n}" for n in names[1:]]
    # the five verifications are independent: two at a time (the machine's cores)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        futures = [
            pool.submit(
                run_verify,
                repo,
                out_dir=root / f"verify_{n}",
                collection=c,
                make_plots=False,
                record_history=False,
            )
            for n, c in zip(names, collections, strict=True)
        ]
        docs = dict(zip(names, (f.result() for f in futures), strict=True))
    return docs


def _status(doc: dict[str, Any], case: str) -> str:
    return str(doc["test_cases"][case]["status"])


def _checks(doc: dict[str, Any], case: str, status: str) -> set[str]:
    return {c["name"].split("[")[0] for c in doc["test_cases"][case]["checks"] if c["status"] == status}


@pytest.mark.parametrize(
    ("variant", "case", "check"),
    [
        ("wrong_flat", "DRP-00-30", "visit_flat_filter"),
        ("no_cr", "DRP-00-30", "unmasked_cr_pixels"),
        ("zp5", "DRP-00-15", "src_ref_phot_offset"),
        ("zp5", "DRP-00-25", "obj_ref_phot_offset"),
        ("noclip", "DRP-00-35", "coadd_artifacts_rejected"),
    ],
)
def test_broken_release_fails_its_case(releases: dict[str, Any], variant: str, case: str, check: str) -> None:
    good, broken = releases["good"], releases[variant]
    assert check in _checks(good, case, "pass"), f"good release: {check} does not pass"
    assert check in _checks(broken, case, "fail"), f"{variant}: {check} does not fail"
    assert _status(broken, case) == "fail"


# the cases each broken release may fail; every other case that the good release passes must still pass
_MAY_FAIL = {
    "wrong_flat": {"DRP-00-30", "DRP-00-15", "DRP-00-25", "DRP-00-05", "DRP-00-10"},
    "no_cr": {"DRP-00-30", "DRP-00-35", "DRP-00-15", "DRP-00-05", "DRP-00-10"},
    "zp5": {"DRP-00-15", "DRP-00-25", "DRP-00-05", "DRP-00-10"},
    "noclip": {"DRP-00-35", "DRP-00-25", "DRP-00-05", "DRP-00-10"},
}


@pytest.mark.parametrize("variant", sorted(_MAY_FAIL))
def test_broken_release_passes_the_other_cases(releases: dict[str, Any], variant: str) -> None:
    good, broken = releases["good"], releases[variant]
    for case in good["test_cases"]:
        if case in _MAY_FAIL[variant] or _status(good, case) != "pass":
            continue
        assert _status(broken, case) == "pass", (variant, case, broken["test_cases"][case]["summary"])
