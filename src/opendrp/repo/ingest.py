"""Ingest raw files: validate, define exposures, visits and their sky regions, register the files.

Every file is judged on its own.  A bad file (unreadable, truncated, missing or wrong header, unknown
detector, an exposure header that disagrees with the exposure's other files or with what the repository
holds, values the registry cannot store) is reported in one line and leaves nothing behind: each file's
registry rows (exposure, visit, region, patches, dataset) are written in its own transaction.  Every good
file is still ingested, and the caller exits non-zero at the end.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from astropy.time import Time, TimeDelta
from lsst.daf.butler import Butler, DataCoordinate, DatasetRef, DatasetType, FileDataset, Timespan
from lsst.daf.butler.time_utils import TimeConverter

from ..errors import BadRawFileError, OpenDRPError
from ..instrument import Camera
from ..instrument.camera import NAME_PATTERN
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
from .formatters import RawFormatter

__all__ = ["IngestReport", "day_obs_of", "ingest_raws"]

#: margin (pixels) added around detector regions so that pointing errors do not drop overlaps
REGION_MARGIN_PIXELS = 100.0
#: longest EXP-ID and OBJECT the registry's ``exposure.obs_id`` and ``target_name`` columns hold
MAX_NAME_LENGTH = 64


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


@dataclasses.dataclass
class _Exposure:
    """The registry records of one exposure (and its visit), computed once from its first good file."""

    header: RawHeader
    records: list[tuple[str, dict[str, Any]]]  # (element, record) in insertion order
    corners: dict[int, tuple[np.ndarray, np.ndarray]]  # detector -> sky corners (deg); science only


def _exposure_records(camera: Camera, h: RawHeader) -> _Exposure:
    """The day_obs, group, exposure (science: also visit, visit_definition) records of a file's exposure."""
    inst = camera.name
    day_obs = day_obs_of(h.date_obs)
    day_begin = Time(f"{str(day_obs)[:4]}-{str(day_obs)[4:6]}-{str(day_obs)[6:]}T12:00:00", scale="utc").tai
    physical_filter = h.physical_filter if h.observation_type in ("science", "flat") else NO_FILTER
    if physical_filter != NO_FILTER and physical_filter not in {f.physical_filter for f in camera.filters}:
        physical_filter = NO_FILTER
    ts = _exposure_timespan(h)
    is_science = h.observation_type == "science"
    records: list[tuple[str, dict[str, Any]]] = [
        (
            "day_obs",
            dict(
                instrument=inst,
                id=day_obs,
                timespan=Timespan(day_begin, day_begin + TimeDelta(1, format="jd")),
            ),
        ),
        ("group", dict(instrument=inst, name=h.obs_id)),
        (
            "exposure",
            dict(
                instrument=inst,
                id=h.exposure_id,
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
        ),
    ]
    corners: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if is_science:
        pointing = Pointing(h.boresight_ra, h.boresight_dec, h.boresight_rotation)
        for d in camera.detectors:
            ra, dec = detector_corners_sky(camera, d, pointing, margin_pixels=REGION_MARGIN_PIXELS)
            corners[d] = (ra, dec)
        all_ra = np.concatenate([c[0] for c in corners.values()])
        all_dec = np.concatenate([c[1] for c in corners.values()])
        records.append(
            (
                "visit",
                dict(
                    instrument=inst,
                    id=h.exposure_id,
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
        )
        records.append(
            ("visit_definition", dict(instrument=inst, exposure=h.exposure_id, visit=h.exposure_id))
        )
    return _Exposure(header=h, records=records, corners=corners)


#: exposure-level header values that every file of one exposure must agree on: (keyword, RawHeader field)
_EXPOSURE_CARDS = (
    ("EXP-ID", "obs_id"),
    ("DATA-TYP", "observation_type"),
    ("FILTER01", "physical_filter"),
    ("EXPTIME", "exposure_time"),
    ("DATE-OBS", "date_obs"),
    ("BORE-RA", "boresight_ra"),
    ("BORE-DEC", "boresight_dec"),
    ("INST-PA", "boresight_rotation"),
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Time):
        return bool(abs((a - b).sec) < 1e-3)
    if isinstance(a, float):
        return bool(a == b or (np.isnan(a) and np.isnan(b)) or abs(a - b) <= 1e-9 * max(abs(a), 1.0))
    return bool(a == b)


def _check_exposure_agrees(h: RawHeader, first: RawHeader, first_where: str, *, where: str) -> None:
    """A file of an exposure already defined (by ``first``, from ``first_where``) must agree with it."""
    for card, field in _EXPOSURE_CARDS:
        if field in ("physical_filter",) and h.observation_type not in ("science", "flat"):
            continue
        if field.startswith("boresight") and h.observation_type != "science":
            continue
        mine, theirs = getattr(h, field), getattr(first, field)
        if not _same(mine, theirs):
            show = (lambda t: t.utc.isot) if isinstance(mine, Time) else repr
            raise BadRawFileError(
                f"exposure {h.exposure_id} is already defined with {card}={show(theirs)} ({first_where}); "
                f"this file says {card}={show(mine)}",
                where=where,
                fix="every CCD file of an exposure must carry the same exposure header; correct this file "
                "(a corrected re-delivery cannot change an exposure already ingested: ingest into a new "
                "repository)",
            )


def _header_from_record(camera: Camera, rec: Any) -> RawHeader:
    """The exposure-level fields of an exposure record already in the registry, as a `RawHeader`."""
    begin = rec.timespan.begin.utc if rec.timespan is not None else Time(0, format="unix")
    return RawHeader(
        instrument=camera.name,
        exposure_id=int(rec.id),
        obs_id=str(rec.obs_id),
        detector=-1,
        physical_filter=str(rec.physical_filter),
        exposure_time=float(rec.exposure_time),
        date_obs=begin,
        observation_type=str(rec.observation_type),
        boresight_ra=float(rec.tracking_ra) if rec.tracking_ra is not None else float("nan"),
        boresight_dec=float(rec.tracking_dec) if rec.tracking_dec is not None else float("nan"),
        boresight_rotation=float(rec.sky_angle) if rec.sky_angle is not None else 0.0,
        target_name=str(rec.target_name or ""),
    )


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _check_registry_ranges(h: RawHeader, exposure_max: int, *, where: str) -> None:
    """Values the registry cannot hold: ids above the instrument's maxima, times outside its range."""
    if h.exposure_id > exposure_max:
        raise BadRawFileError(
            f"EXPID={h.exposure_id} is above the largest exposure id the repository takes ({exposure_max})",
            where=where,
        )
    conv = TimeConverter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ERFA's "dubious year" for the very dates refused here
        begin = h.date_obs.tai
        end = begin + TimeDelta(max(h.exposure_time, 0.001), format="sec")
        outside = bool(begin < conv.epoch or end >= conv.max_time)
        date_text = h.date_obs.utc.isot
    if outside:
        raise BadRawFileError(
            f"DATE-OBS={date_text} (+ EXPTIME) is outside the registry's time range "
            f"{conv.epoch.isot[:10]} .. {conv.max_time.isot[:10]} (TAI)",
            where=where,
            fix="check DATE-OBS",
        )
    if not NAME_PATTERN.match(h.obs_id):  # EXP-ID names directories and files of the datastore
        raise BadRawFileError(
            f"EXP-ID={h.obs_id!r} is not a valid observation id",
            where=where,
            fix="use 1-64 letters, digits, '_', '.', '+', '-', starting with a letter or digit (no '/')",
        )
    if len(h.target_name) > MAX_NAME_LENGTH:
        raise BadRawFileError(
            f"OBJECT is {len(h.target_name)} characters long (at most {MAX_NAME_LENGTH})", where=where
        )


def ingest_raws(
    butler: Butler,
    files: Iterable[str | Path],
    *,
    transfer: str = "copy",
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Ingest raw files into ``{instrument}/raw/all``, each file on its own.

    Every file is validated (``docs/raw-format.md``), checked against the other files of its exposure and
    against what the registry already holds, and then registered in its own transaction: its exposure and
    visit records (the first file of an exposure defines them), its detector's sky region and patches, and
    the dataset.  A file that fails any of this leaves no registry row and no file behind, is reported in
    `IngestReport.failed` with one line, and the other files go on.

    Parameters
    ----------
    butler : `Butler`
        A writeable butler on a repository made by `create_repo`.
    files : iterable of paths
        Raw files (see ``docs/raw-format.md``).  They are registered in order of exposure and detector,
        so that of two files that clash (the same ``EXP-ID`` on two exposures) the earlier exposure wins.
    transfer : `str`
        ``copy`` (default), ``link`` (hard link, else symlink), ``symlink``, ``move`` or ``direct``
        (leave the file where it is).
    progress : callable, optional
        Called with the number of files just handled.
    """
    camera = get_camera(butler)
    skymap = get_skymap(butler)
    inst = camera.name
    report = IngestReport()
    (inst_rec,) = butler.query_dimension_records("instrument", instrument=inst, explain=False)
    exposure_max = int(inst_rec.exposure_max)
    good: list[tuple[Path, RawHeader]] = []
    seen: dict[tuple[int, int], str] = {}
    for f in files:
        path = Path(f)
        try:
            h = read_raw_header(path, camera)
            _check_registry_ranges(h, exposure_max, where=str(path))
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
    raw_type = register_dataset_type(butler, "raw", ["instrument", "exposure", "detector"], "DrpRawImage")
    run = raw_run(inst)
    butler.collections.register(run)
    existing = {
        (int(ref.dataId["exposure"]), int(ref.dataId["detector"]))
        for ref in butler.query_datasets("raw", collections=run, explain=False, limit=None)
    }
    # exposures the registry already holds: the first definition stands
    defined: dict[int, tuple[RawHeader, str]] = {}
    obs_ids: dict[str, int] = {}
    for rec in butler.query_dimension_records("exposure", instrument=inst, explain=False):
        defined[int(rec.id)] = (_header_from_record(camera, rec), "in the repository")
        obs_ids[str(rec.obs_id)] = int(rec.id)
    pending: dict[int, _Exposure] = {}
    for path, h in sorted(good, key=lambda ph: (ph[1].exposure_id, ph[1].detector)):
        try:
            _ingest_one(
                butler,
                camera,
                skymap,
                raw_type,
                run,
                path,
                h,
                transfer=transfer,
                existing=existing,
                defined=defined,
                obs_ids=obs_ids,
                pending=pending,
                report=report,
            )
        except OpenDRPError as exc:
            report.failed.append((str(path), exc.one_line()))
        except Exception as exc:  # the middleware's own errors: this file fails alone, in one line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            report.failed.append(
                (str(path), f"{path}: cannot be registered ({type(exc).__name__}: {first[:300]})")
            )
        if progress is not None:
            progress(1)
    return report


def _ingest_one(
    butler: Butler,
    camera: Camera,
    skymap: RingsSkyMap,
    raw_type: DatasetType,
    run: str,
    path: Path,
    h: RawHeader,
    *,
    transfer: str,
    existing: set[tuple[int, int]],
    defined: dict[int, tuple[RawHeader, str]],
    obs_ids: dict[str, int],
    pending: dict[int, _Exposure],
    report: IngestReport,
) -> None:
    """Check one validated file against its exposure and register it in one transaction."""
    where = str(path)
    if path.name.endswith(".fz") or path.suffix not in RawFormatter.supported_extensions:
        raise BadRawFileError(
            f"the file name extension {''.join(path.suffixes[-2:])!r} is not one the datastore reads "
            f"({', '.join(sorted(RawFormatter.supported_extensions))})",
            where=where,
            fix="rename the file to end in .fits (or uncompress it)",
        )
    if h.exposure_id in defined:
        first, first_where = defined[h.exposure_id]
        _check_exposure_agrees(h, first, first_where, where=where)
    elif h.obs_id in obs_ids:
        raise BadRawFileError(
            f"EXP-ID={h.obs_id!r} already names exposure {obs_ids[h.obs_id]}, not {h.exposure_id}",
            where=where,
            fix="each exposure has its own EXP-ID: correct EXP-ID or EXPID",
        )
    if (h.exposure_id, h.detector) in existing:
        report.skipped.append(str(path))
        return
    exp = pending.get(h.exposure_id)
    if exp is None:
        exp = _exposure_records(camera, h)
    data_id = DataCoordinate.standardize(
        instrument=camera.name, exposure=h.exposure_id, detector=h.detector, universe=butler.dimensions
    )
    dataset = FileDataset(
        path=str(path.resolve()),
        refs=[DatasetRef(raw_type, data_id, run=run)],
        formatter="opendrp.repo.formatters.RawFormatter",
    )
    with butler.transaction():
        for element, record in exp.records:
            butler.registry.syncDimensionData(element, record)
        if exp.corners:
            ra, dec = exp.corners[h.detector]
            butler.registry.insertDimensionData(
                "visit_detector_region",
                dict(
                    instrument=camera.name,
                    visit=h.exposure_id,
                    detector=h.detector,
                    region=polygon_from_points(ra, dec),
                ),
                skip_existing=True,
            )
            register_patches(butler, skymap, ra, dec)
        butler.ingest(
            dataset, transfer=None if transfer == "direct" else transfer, record_validation_info=True
        )
        if transfer in ("copy", "move"):  # the repository's copy follows the umask, not the source's mode
            uri = butler.getURI(dataset.refs[0])
            if uri.isLocal:
                os.chmod(uri.ospath, 0o666 & ~_umask())
    pending[h.exposure_id] = exp
    defined.setdefault(h.exposure_id, (h, where))
    obs_ids.setdefault(h.obs_id, h.exposure_id)
    existing.add((h.exposure_id, h.detector))
    report.exposures.add(h.exposure_id)
    if exp.corners:
        report.visits.add(h.exposure_id)
    report.ingested.append(dataset.path)  # type: ignore[arg-type]
