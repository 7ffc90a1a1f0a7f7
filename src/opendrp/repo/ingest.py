"""Ingest raw files: validate, define exposures, visits and their sky regions, register the files.

A bad file (unreadable, truncated, missing or wrong header, unknown detector) is reported in one line and
skipped; every good file is still ingested, and the caller exits non-zero at the end.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from astropy.time import Time, TimeDelta
from lsst.daf.butler import Butler, DataCoordinate, DatasetRef, FileDataset, Timespan

from ..errors import BadRawFileError, OpenDRPError
from ..instrument import Camera
from ..instrument.geometry import Pointing, detector_corners_sky
from ..raw import RawHeader, read_raw_header
from ..skymap import RingsSkyMap
from .butler import (
    NO_FILTER,
    get_camera,
    get_skymap,
    polygon_from_points,
    raw_run,
    register_dataset_type,
    register_patches,
)

__all__ = ["IngestReport", "day_obs_of", "ingest_raws"]

#: margin (pixels) added around detector regions so that pointing errors do not drop overlaps
REGION_MARGIN_PIXELS = 100.0


@dataclasses.dataclass
class IngestReport:
    """What an ingest did: files ingested, skipped (already there), and failed (with the reason)."""

    ingested: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    exposures: set[int] = dataclasses.field(default_factory=set)
    visits: set[int] = dataclasses.field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.failed


def day_obs_of(t: Time) -> int:
    """Observing day (YYYYMMDD) of a time: the UTC date 12 hours earlier (nights do not straddle it)."""
    shifted = (t.utc - TimeDelta(12 * 3600, format="sec")).datetime
    return int(shifted.strftime("%Y%m%d"))


def _exposure_timespan(h: RawHeader) -> Timespan:
    begin = h.date_obs.tai
    return Timespan(begin, begin + TimeDelta(max(h.exposure_time, 0.001), format="sec"))


def _define_exposures(
    butler: Butler, camera: Camera, skymap: RingsSkyMap, headers: Sequence[RawHeader]
) -> tuple[set[int], set[int]]:
    """Insert day_obs, group, exposure, visit, visit_definition, visit_detector_region; register patches."""
    inst = camera.name
    by_exposure: dict[int, list[RawHeader]] = defaultdict(list)
    for h in headers:
        by_exposure[h.exposure_id].append(h)
    visits: set[int] = set()
    for exp_id, hs in sorted(by_exposure.items()):
        h = hs[0]
        day_obs = day_obs_of(h.date_obs)
        day_begin = Time(
            f"{str(day_obs)[:4]}-{str(day_obs)[4:6]}-{str(day_obs)[6:]}T12:00:00", scale="utc"
        ).tai
        butler.registry.syncDimensionData(
            "day_obs",
            dict(
                instrument=inst,
                id=day_obs,
                timespan=Timespan(day_begin, day_begin + TimeDelta(1, format="jd")),
            ),
        )
        butler.registry.syncDimensionData("group", dict(instrument=inst, name=h.obs_id))
        physical_filter = h.physical_filter if h.observation_type in ("science", "flat") else NO_FILTER
        if physical_filter != NO_FILTER and physical_filter not in {
            f.physical_filter for f in camera.filters
        }:
            physical_filter = NO_FILTER
        ts = _exposure_timespan(h)
        is_science = h.observation_type == "science"
        butler.registry.syncDimensionData(
            "exposure",
            dict(
                instrument=inst,
                id=exp_id,
                obs_id=h.obs_id,
                physical_filter=physical_filter,
                group=h.obs_id,
                day_obs=day_obs,
                exposure_time=h.exposure_time,
                dark_time=h.exposure_time,
                observation_type=h.observation_type,
                observation_reason=h.observation_type,
                target_name=h.target_name,
                tracking_ra=h.boresight_ra if is_science else None,
                tracking_dec=h.boresight_dec if is_science else None,
                sky_angle=h.boresight_rotation if is_science else None,
                can_see_sky=is_science,
                timespan=ts,
            ),
        )
        if not is_science:
            continue
        pointing = Pointing(h.boresight_ra, h.boresight_dec, h.boresight_rotation)
        corners = {
            d: detector_corners_sky(camera, d, pointing, margin_pixels=REGION_MARGIN_PIXELS)
            for d in camera.detectors
        }
        all_ra = np.concatenate([c[0] for c in corners.values()])
        all_dec = np.concatenate([c[1] for c in corners.values()])
        butler.registry.syncDimensionData(
            "visit",
            dict(
                instrument=inst,
                id=exp_id,
                name=h.obs_id,
                physical_filter=physical_filter,
                day_obs=day_obs,
                exposure_time=h.exposure_time,
                target_name=h.target_name,
                observation_reason="science",
                region=polygon_from_points(all_ra, all_dec),
                timespan=ts,
            ),
        )
        butler.registry.syncDimensionData(
            "visit_definition", dict(instrument=inst, exposure=exp_id, visit=exp_id)
        )
        present = sorted({x.detector for x in hs})
        butler.registry.insertDimensionData(
            "visit_detector_region",
            *[
                dict(
                    instrument=inst,
                    visit=exp_id,
                    detector=d,
                    region=polygon_from_points(*corners[d]),
                )
                for d in present
            ],
            skip_existing=True,
        )
        for d in present:
            register_patches(butler, skymap, *corners[d])
        visits.add(exp_id)
    return set(by_exposure), visits


def ingest_raws(
    butler: Butler,
    files: Iterable[str | Path],
    *,
    transfer: str = "copy",
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Ingest raw files into ``{instrument}/raw/all``.

    Parameters
    ----------
    butler : `Butler`
        A writeable butler on a repository made by `create_repo`.
    files : iterable of paths
        Raw files (see ``docs/raw-format.md``).
    transfer : `str`
        ``copy`` (default), ``link`` (hard link, else symlink), ``symlink``, ``move`` or ``direct``
        (leave the file where it is).
    progress : callable, optional
        Called with the number of files just validated.
    """
    camera = get_camera(butler)
    skymap = get_skymap(butler)
    report = IngestReport()
    good: list[tuple[Path, RawHeader]] = []
    seen: dict[tuple[int, int], str] = {}
    for f in files:
        path = Path(f)
        try:
            h = read_raw_header(path, camera)
            key = (h.exposure_id, h.detector)
            if key in seen:
                raise BadRawFileError(
                    f"same exposure {h.exposure_id} and detector {h.detector} as {seen[key]}", where=str(path)
                )
            seen[key] = str(path)
            good.append((path, h))
        except OpenDRPError as exc:
            report.failed.append((str(path), exc.one_line()))
        if progress is not None:
            progress(1)
    if not good:
        return report
    exposures, visits = _define_exposures(butler, camera, skymap, [h for _, h in good])
    report.exposures, report.visits = exposures, visits
    raw_type = register_dataset_type(butler, "raw", ["instrument", "exposure", "detector"], "DrpRawImage")
    run = raw_run(camera.name)
    butler.collections.register(run)
    existing = {
        (ref.dataId["exposure"], ref.dataId["detector"])
        for ref in butler.query_datasets("raw", collections=run, explain=False, limit=None)
    }
    datasets = []
    for path, h in good:
        if (h.exposure_id, h.detector) in existing:
            report.skipped.append(str(path))
            continue
        data_id = DataCoordinate.standardize(
            instrument=camera.name, exposure=h.exposure_id, detector=h.detector, universe=butler.dimensions
        )
        ref = DatasetRef(raw_type, data_id, run=run)
        datasets.append(
            FileDataset(
                path=str(path.resolve()), refs=[ref], formatter="opendrp.repo.formatters.RawFormatter"
            )
        )
    if datasets:
        butler.ingest(
            *datasets, transfer=None if transfer == "direct" else transfer, record_validation_info=True
        )
        report.ingested.extend(d.path for d in datasets)  # type: ignore[misc]
    return report
