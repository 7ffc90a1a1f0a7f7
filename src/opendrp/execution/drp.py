"""The Data Release Production as a sequence of steps over a repository.

``calibs``: build master biases, certify them; then master darks (bias-subtracted), master flats (bias- and
dark-corrected) and defects (from the certified dark and flats), each certified before the next.
``drp``: single-frame processing, warps and coadds, multi-band processing, the Object table.
Each step is one pipeline run (one RUN collection) chained into the campaign's output collection.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table, vstack
from lsst.daf.butler import Butler, DatasetRef, Timespan

from ..calib.checks import check_bias, check_flat
from ..errors import ConfigurationError, RepositoryError
from ..instrument import Camera
from ..repo.butler import (
    calib_collection,
    check_collection_name,
    check_run_inputs,
    defaults_chain,
    get_camera,
    get_instrument_name,
    get_skymap,
    open_butler,
)
from .runner import (
    ExecutionOptions,
    RunReport,
    make_timestamp,
    run_pipeline,
    use_execution_options,
    warm_workers,
)

__all__ = [
    "STEPS",
    "coverage_polygons",
    "default_output",
    "drp_pipeline_path",
    "export_object_table",
    "run_drp",
]

_log = logging.getLogger(__name__)

STEPS = ("calibs", "drp")


def drp_pipeline_path() -> Path:
    return Path(str(resources.files("opendrp.pipelines") / "DRP.yaml"))


def default_output(instrument: str, campaign: str = "drp") -> str:
    return f"{instrument}/runs/{campaign}"


def calibration_problems(butler: Butler, ref: DatasetRef, camera: Camera) -> list[str]:
    """What is wrong with a master bias or flat (`opendrp.calib.checks`); other products are not checked."""
    kind = ref.datasetType.name
    if kind not in ("bias", "flat"):
        return []
    exposure = butler.get(ref)
    if kind == "bias":
        detector = camera.detector(int(ref.dataId["detector"]))
        read_noise = float(np.median([a.read_noise for a in detector.amplifiers]))
        return check_bias(exposure.image, exposure.mask, read_noise_e=read_noise)
    return check_flat(
        exposure.image, exposure.mask, exposure.metadata, physical_filter=str(ref.dataId["physical_filter"])
    )


def _certify(butler: Butler, run: str, dataset_type: str, instrument: str) -> tuple[int, list[str]]:
    """Certify the ``dataset_type`` products of ``run`` that pass their checks; one line per refused one."""
    refs = sorted(
        butler.query_datasets(dataset_type, collections=run, explain=False, limit=None),
        key=lambda ref: tuple(str(v) for v in ref.dataId.required.values()),
    )
    camera = get_camera(butler, instrument)
    good, refused = [], []
    for ref in refs:
        problems = calibration_problems(butler, ref, camera)
        if problems:
            data_id = ", ".join(f"{k}={v}" for k, v in ref.dataId.required.items() if k != "instrument")
            refused.append(
                f"{dataset_type} {{{data_id}}}: {'; '.join(problems)} -- not certified: check the "
                f"{dataset_type} exposures of this detector (DATA-TYP, FILTER01), then run again"
            )
        else:
            good.append(ref)
    if good:
        butler.registry.certify(calib_collection(instrument), good, Timespan(None, None))
    for line in refused:
        _log.warning("refused at certification: %s", line)
    return len(good), refused


def _has_certified(butler: Butler, dataset_type: str, instrument: str) -> bool:
    try:
        refs = butler.query_datasets(
            dataset_type, collections=calib_collection(instrument), find_first=False, explain=False, limit=1
        )
    except Exception:  # dataset type not registered yet
        return False
    return len(refs) > 0


def _build_calibration(
    repo: str,
    instrument: str,
    label: str,
    observation_type: str,
    dataset_type: str,
    progress: bool,
    *,
    config_overrides: dict[str, dict[str, Any]] | None = None,
) -> RunReport | None:
    """Build one calibration product from the exposures of ``observation_type`` and certify it.

    ``observation_type`` ``"calib"`` means built from certified calibration products (no exposures): the
    quanta are the detectors that have a certified dark or flat.
    """
    butler = open_butler(repo)
    if _has_certified(butler, dataset_type, instrument):
        _log.info("certified %s calibrations exist; not rebuilding them", dataset_type)
        return None
    if observation_type == "calib":
        detectors: set[int] = set()
        for source in ("dark", "flat"):
            if _has_certified(butler, source, instrument):
                refs = butler.query_datasets(
                    source,
                    collections=calib_collection(instrument),
                    find_first=False,
                    explain=False,
                    limit=None,
                )
                detectors |= {int(ref.dataId["detector"]) for ref in refs}
        if not detectors:
            _log.warning("no certified dark or flat: %s will not be built", dataset_type)
            return None
        where = f"instrument = '{instrument}' AND detector IN ({', '.join(map(str, sorted(detectors)))})"
    else:
        n_exp = butler.query_dimension_records(
            "exposure",
            where=f"exposure.observation_type = '{observation_type}'",
            instrument=instrument,
            explain=False,
        )
        if not n_exp:
            _log.warning("no %s exposures ingested: %s will not be applied", observation_type, dataset_type)
            return None
        where = f"instrument = '{instrument}' AND exposure.observation_type = '{observation_type}'"
    run = f"{instrument}/calib/build/{dataset_type}/{make_timestamp()}"
    report = run_pipeline(
        repo,
        drp_pipeline_path(),
        labels=[label],
        where=where,
        inputs=[defaults_chain(instrument)],
        output=f"{instrument}/calib/build",
        output_run=run,
        config_overrides=config_overrides,
        progress=progress,
        description=f"{label}",
    )
    wbutler = open_butler(repo, writeable=True)
    # the whole build chain (find-first): a resumed build keeps what an interrupted attempt finished
    n, report.refused = _certify(wbutler, report.output_chain, dataset_type, instrument)
    _log.info("certified %d %s datasets into %s", n, dataset_type, calib_collection(instrument))
    return report


def run_drp(
    repo: str | Path,
    *,
    steps: Sequence[str] = STEPS,
    output: str | None = None,
    where: str = "",
    instrument: str | None = None,
    progress: bool = True,
    options: ExecutionOptions | None = None,
    resume: bool = True,
    config_overrides: dict[str, dict[str, Any]] | None = None,
    inputs: Sequence[str] | None = None,
) -> list[RunReport]:
    """Run the Data Release Production over everything ingested in ``repo``.

    Parameters
    ----------
    steps : sequence of `str`
        Among ``calibs`` and ``drp``, in that order.
    output : `str`, optional
        Output chain (default ``{instrument}/runs/drp``).
    where : `str`
        Extra data query restricting the ``drp`` step (e.g. ``"band IN ('g', 'r')"``).
    options : `ExecutionOptions`, optional
        Processes (``-j``), retries, executor; used by every step.
    resume : `bool`
        Run only what is not done yet in the output chains (the default): running the same command again
        after an interruption finishes the campaign.
    config_overrides : `dict`, optional
        Task label -> {config field: value} for the ``drp`` step (as ``pipetask -c label:field=value``),
        applied over the calibration switches this function sets.
    inputs : sequence of `str`, optional
        Input collections of the ``drp`` step (default: the instrument's defaults chain).
    """
    repo = str(repo)
    use_execution_options(options, resume=resume)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ConfigurationError(
            f"unknown step(s) {unknown}", where="--steps", fix=f"steps are {list(STEPS)}"
        )
    if not steps:
        raise ConfigurationError("no step given", where="--steps", fix=f"steps are {list(STEPS)}")
    butler = open_butler(repo)
    inst = get_instrument_name(butler, instrument)
    skymap = get_skymap(butler)
    output = output or default_output(inst)
    check_collection_name(output, where="--output")
    if options is not None and options.executor == "parsl":
        from ._site import load_site

        load_site(options.site)  # a bad site is one line now, not after the graph is built
    if "drp" in steps:
        check_run_inputs(butler, inst, where=where, output=output)
    drp_inputs = list(inputs) if inputs else [defaults_chain(inst)]
    with warm_workers(options):  # one set of worker processes for every step
        return _run_steps(
            repo, steps, inst, skymap.name, output, where, progress, config_overrides or {}, drp_inputs
        )


def _run_steps(
    repo: str,
    steps: Sequence[str],
    inst: str,
    skymap: str,
    output: str,
    where: str,
    progress: bool,
    config_overrides: dict[str, dict[str, Any]],
    drp_inputs: list[str],
) -> list[RunReport]:
    reports: list[RunReport] = []
    if "calibs" in steps:
        # bias -> dark -> flat -> defects, each certified before the next uses it
        for label, obs_type, dtype in (
            ("cpBias", "bias", "bias"),
            ("cpDark", "dark", "dark"),
            ("cpFlat", "flat", "flat"),
            ("cpDefects", "calib", "defects"),
        ):
            have = {d: _has_certified(open_butler(repo), d, inst) for d in ("bias", "dark", "flat")}
            calib_overrides = {
                "cpDark": {"do_bias": have["bias"]},
                "cpFlat": {"do_bias": have["bias"], "do_dark": have["dark"]},
                "cpDefects": {"use_dark": have["dark"], "use_flats": have["flat"]},
            }
            rep = _build_calibration(
                repo,
                inst,
                label,
                obs_type,
                dtype,
                progress,
                config_overrides={label: calib_overrides.get(label, {})},
            )
            if rep is not None:
                reports.append(rep)
    if "drp" in steps:
        have = {d: _has_certified(open_butler(repo), d, inst) for d in ("bias", "dark", "flat", "defects")}
        overrides: dict[str, dict[str, Any]] = {
            "calibrateImage": {
                "do_bias": have["bias"],
                "do_dark": have["dark"],
                "do_flat": have["flat"],
                "do_defects": have["defects"],
            }
        }
        for label, fields in config_overrides.items():
            overrides.setdefault(label, {}).update(fields)
        query = f"instrument = '{inst}' AND skymap = '{skymap}'"
        if where:
            query += f" AND ({where})"
        reports.append(
            run_pipeline(
                repo,
                drp_pipeline_path(),
                labels=["drp"],
                where=query,
                inputs=drp_inputs,
                output=output,
                config_overrides=overrides,
                progress=progress,
                description="drp",
            )
        )
    return reports


def export_object_table(repo: str | Path, collection: str, path: str | Path) -> Table:
    """Write the union of the ``objectTable_tract`` datasets of a collection to one parquet file."""
    butler = open_butler(repo, collections=[collection])
    refs = list(butler.query_datasets("objectTable_tract", collections=collection, explain=False, limit=None))
    if not refs:
        raise RepositoryError(
            "no objectTable_tract in the collection", where=collection, fix="run `opendrp run` first"
        )
    tables = [butler.get(ref) for ref in refs]
    table = vstack(tables, join_type="outer", metadata_conflicts="silent") if len(tables) > 1 else tables[0]
    for col in table.colnames:  # masked cells of outer joins become NaN / False
        if hasattr(table[col], "mask") and np.any(table[col].mask):
            fill = False if table[col].dtype == bool else (np.nan if table[col].dtype.kind == "f" else 0)
            table[col] = table[col].filled(fill)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    table.write(tmp, format="parquet", overwrite=True)
    tmp.replace(path)
    return table


def coverage_polygons(repo: str | Path, collection: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sky outlines (deg) of every calexp in a collection, from their fitted WCS: the surveyed footprint."""
    butler = open_butler(repo, collections=[collection])
    polygons = []
    for ref in butler.query_datasets("calexp", collections=collection, explain=False, limit=None):
        wcs = butler.get(ref.makeComponentRef("wcs"))
        if wcs.pixel_shape is not None:
            nx, ny = wcs.pixel_shape
        else:
            ny, nx = butler.get(ref.makeComponentRef("image")).shape
        x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
        y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
        ra, dec = wcs.all_pix2world(x, y, 0)
        polygons.append((np.asarray(ra), np.asarray(dec)))
    return polygons
