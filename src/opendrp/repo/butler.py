"""Our thin adapter over the Rubin Gen3 data repository (daf_butler).

Everything openDRP does with a Butler goes through here, so that week-to-week API changes of the middleware
are absorbed in one module.  Collections (all names derive from the instrument name):

====================================  ===========  ==========================================================
``{instrument}/raw/all``              RUN          raw files
``{instrument}/camera``               RUN          the ``camera`` dataset (the camera YAML)
``{instrument}/calib``                CALIBRATION  certified master bias/flat with validity ranges
``refcats``                           RUN          reference catalog shards (``ref_cat``, htm7)
``skymaps``                           RUN          the ``skyMap`` dataset
``{instrument}/defaults``             CHAINED      all of the above: the input of every pipeline run
====================================  ===========  ==========================================================
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy
from astropy.table import Table, vstack
from lsst.daf.butler import Butler, CollectionType, Config, DatasetType, Timespan
from lsst.sphgeom import ConvexPolygon, HtmPixelization, LonLat, UnitVector3d

from ..errors import ConfigurationError, RepositoryError
from ..instrument import Camera
from ..skymap import RingsSkyMap, SkyMapConfig

__all__ = [
    "REFCAT_HTM_LEVEL",
    "REFCAT_RUN",
    "SKYMAP_RUN",
    "Butler",
    "Timespan",
    "calib_collection",
    "camera_run",
    "collection_exists",
    "create_repo",
    "defaults_chain",
    "get_camera",
    "get_instrument_name",
    "get_skymap",
    "ingest_refcat",
    "open_butler",
    "polygon_from_points",
    "raw_run",
    "register_dataset_type",
    "use_wal",
    "register_patches",
    "NO_FILTER",
]

REFCAT_RUN = "refcats"
SKYMAP_RUN = "skymaps"
REFCAT_HTM_LEVEL = 7
REFCAT_DATASET = "ref_cat"
#: physical filter given to exposures without one (bias, dark)
NO_FILTER = "NONE"
NO_FILTER_BAND = "none"


@sqlalchemy.event.listens_for(sqlalchemy.engine.Engine, "connect")
def _sqlite_synchronous_normal(dbapi_connection: Any, connection_record: Any) -> None:
    """SQLite registries run in WAL mode (`use_wal`); there ``synchronous=NORMAL`` is safe: a crashed process
    loses nothing committed, and a commit does not wait for the disk (only a power cut can lose the last
    transactions).  It makes each registry transaction of a quantum ~15 ms cheaper on these disks."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def use_wal(root: str | Path) -> bool:
    """Put the SQLite registry of the repository ``root`` in write-ahead-log mode (persistent in the file).

    Readers then never block the writer nor each other, so warm workers writing their outputs do not queue
    behind one another's reads.  The repository must stay on a local file system (as SQLite requires anyway);
    multi-node runs use PostgreSQL.  Returns whether the repository has an SQLite registry.
    """
    path = Path(root) / "gen3.sqlite3"
    if not path.exists():
        return False
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    return True


def raw_run(instrument: str) -> str:
    return f"{instrument}/raw/all"


def camera_run(instrument: str) -> str:
    return f"{instrument}/camera"


def calib_collection(instrument: str) -> str:
    return f"{instrument}/calib"


def defaults_chain(instrument: str) -> str:
    return f"{instrument}/defaults"


def seed_config_path() -> Path:
    return Path(str(resources.files("opendrp.repo") / "seed_config.yaml"))


# ---------------------------------------------------------------------------------------------- geometry
def polygon_from_points(ra: Iterable[float], dec: Iterable[float]) -> ConvexPolygon:
    """Convex hull (sphgeom) of sky points in degrees: the regions the registry stores."""
    pts = [UnitVector3d(LonLat.fromDegrees(float(r), float(d))) for r, d in zip(ra, dec, strict=True)]
    return ConvexPolygon.convexHull(pts)


# ---------------------------------------------------------------------------------------------- repository
def _check_no_password(url: str) -> None:
    """Refuse a database URL that carries a password: it would be written into ``butler.yaml``."""
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception as exc:
        raise ConfigurationError(f"not a database URL ({exc})", where="--registry-db") from exc
    if password:
        raise ConfigurationError(
            "the registry URL contains a password, which would be stored in the repository's butler.yaml",
            where="--registry-db",
            fix="remove it from the URL and put it in ~/.lsst/db-auth.yaml (mode 600), see docs/execution.md",
        )


def create_repo(
    root: str | Path,
    *,
    camera: Camera,
    skymap_config: SkyMapConfig,
    registry_db: str | None = None,
    overwrite: bool = False,
) -> Butler:
    """Create a data repository, register the instrument, its camera, and the sky map.

    Parameters
    ----------
    root : `str` or `~pathlib.Path`
        Directory of the repository (its datastore lives there).
    camera : `Camera`
        The camera (its YAML is stored as the ``camera`` dataset).
    skymap_config : `SkyMapConfig`
        The sky map; tracts and patches are registered as data that overlap them are ingested.
    registry_db : `str`, optional
        SQLAlchemy URL of the registry database (``postgresql://user@host:port/db``); SQLite in the
        repository directory by default.  Put passwords in ``~/.lsst/db-auth.yaml``, never in the URL.
    """
    root = Path(root)
    if (root / "butler.yaml").exists() and not overwrite:
        raise RepositoryError(
            "a repository already exists here", where=str(root), fix="choose another path or remove it"
        )
    config = Config(str(seed_config_path()))
    if registry_db:
        _check_no_password(registry_db)
        config["registry", "db"] = registry_db
    try:
        Butler.makeRepo(str(root), config=config, overwrite=overwrite)
    except Exception as exc:  # the middleware raises many types here (DB errors, file errors)
        raise RepositoryError(f"cannot create the repository ({exc})", where=str(root)) from exc
    if not registry_db:
        use_wal(root)
    butler = Butler.from_config(str(root), writeable=True)
    register_instrument(butler, camera)
    register_skymap(butler, RingsSkyMap(skymap_config))
    butler.collections.register(calib_collection(camera.name), CollectionType.CALIBRATION)
    butler.collections.register(defaults_chain(camera.name), CollectionType.CHAINED)
    for run in (raw_run(camera.name), REFCAT_RUN):
        butler.collections.register(run)
    butler.collections.redefine_chain(
        defaults_chain(camera.name),
        [
            raw_run(camera.name),
            calib_collection(camera.name),
            camera_run(camera.name),
            REFCAT_RUN,
            SKYMAP_RUN,
        ],
    )
    return butler


def open_butler(
    root: str | Path,
    *,
    writeable: bool = False,
    collections: Sequence[str] | str | None = None,
    run: str | None = None,
) -> Butler:
    """Open an existing repository, with a clear error when there is none."""
    if "://" not in str(root) and not (Path(root) / "butler.yaml").exists():
        raise RepositoryError(
            "no data repository here", where=str(root), fix="create one with `opendrp init REPO`"
        )
    return Butler.from_config(str(root), writeable=writeable, collections=collections, run=run)


def collection_exists(butler: Butler, name: str) -> bool:
    """Whether ``name`` is a collection of the repository (any type)."""
    from lsst.daf.butler import MissingCollectionError

    try:
        butler.collections.get_info(name)
    except MissingCollectionError:
        return False
    return True


def register_dataset_type(
    butler: Butler, name: str, dimensions: Sequence[str], storage_class: str, *, is_calibration: bool = False
) -> DatasetType:
    dt = DatasetType(
        name, dimensions, storage_class, universe=butler.dimensions, isCalibration=is_calibration
    )
    butler.registry.registerDatasetType(dt)
    return dt


def register_instrument(butler: Butler, camera: Camera) -> None:
    """Insert instrument, filter and detector records, and store the camera description."""
    name = camera.name
    butler.registry.insertDimensionData(
        "instrument",
        dict(
            name=name,
            visit_max=2**31 - 1,
            exposure_max=2**31 - 1,
            detector_max=max(camera.detectors) + 1,
            class_name=f"opendrp.instrument:{name}",
        ),
    )
    filters = [dict(instrument=name, name=f.physical_filter, band=f.band) for f in camera.filters]
    filters.append(dict(instrument=name, name=NO_FILTER, band=NO_FILTER_BAND))
    butler.registry.insertDimensionData("physical_filter", *filters)
    butler.registry.insertDimensionData(
        "detector",
        *[
            dict(instrument=name, id=d.id, full_name=d.name, purpose=d.purpose)
            for d in camera.detectors.values()
        ],
    )
    register_dataset_type(butler, "camera", ["instrument"], "DrpCamera")
    butler.collections.register(camera_run(name))
    butler.put(camera, "camera", instrument=name, run=camera_run(name))


def register_skymap(butler: Butler, skymap: RingsSkyMap) -> None:
    nx, ny = skymap.max_patches()
    butler.registry.insertDimensionData(
        "skymap",
        dict(
            name=skymap.name,
            hash=skymap.config.hash(),
            tract_max=skymap.n_tracts,
            patch_nx_max=nx,
            patch_ny_max=ny,
        ),
    )
    register_dataset_type(butler, "skyMap", ["skymap"], "DrpSkyMap")
    butler.collections.register(SKYMAP_RUN)
    butler.put(skymap, "skyMap", skymap=skymap.name, run=SKYMAP_RUN)


def get_instrument_name(butler: Butler, instrument: str | None = None) -> str:
    names = [r.name for r in butler.query_dimension_records("instrument", explain=False)]
    if instrument is not None:
        if instrument not in names:
            raise RepositoryError(f"instrument {instrument!r} is not registered (have {names})")
        return instrument
    if len(names) != 1:
        raise RepositoryError(
            f"the repository has {len(names)} instruments {names}", fix="name one with --instrument"
        )
    return names[0]


def get_camera(butler: Butler, instrument: str | None = None) -> Camera:
    name = get_instrument_name(butler, instrument)
    return butler.get("camera", instrument=name, collections=[camera_run(name)])


def get_skymap(butler: Butler) -> RingsSkyMap:
    names = [r.name for r in butler.query_dimension_records("skymap", explain=False)]
    if len(names) != 1:
        raise RepositoryError(f"expected one sky map, found {names}")
    return butler.get("skyMap", skymap=names[0], collections=[SKYMAP_RUN])


def register_patches(butler: Butler, skymap: RingsSkyMap, ra: np.ndarray, dec: np.ndarray) -> int:
    """Register the tracts and patches that overlap a region given by its corner points (deg).

    Idempotent.  Returns the number of patch records considered.
    """
    n = 0
    for tract_id in skymap.tracts_overlapping(ra, dec):
        tract = skymap.tract(tract_id)
        t_ra, t_dec = tract.outer_corners_sky()
        butler.registry.syncDimensionData(
            "tract", dict(skymap=skymap.name, id=tract_id, region=polygon_from_points(t_ra, t_dec))
        )
        records = []
        for patch_id in tract.patches_overlapping(ra, dec):
            p = tract.patch(patch_id)
            p_ra, p_dec = tract.outer_corners_sky(patch_id)
            records.append(
                dict(
                    skymap=skymap.name,
                    tract=tract_id,
                    id=patch_id,
                    cell_x=p.cell_x,
                    cell_y=p.cell_y,
                    region=polygon_from_points(p_ra, p_dec),
                )
            )
        if records:
            butler.registry.insertDimensionData("patch", *records, skip_existing=True)
        n += len(records)
    return n


# ---------------------------------------------------------------------------------------------- refcats
def htm_index(ra: np.ndarray, dec: np.ndarray, level: int = REFCAT_HTM_LEVEL) -> np.ndarray:
    pix = HtmPixelization(level)
    return np.array(
        [
            pix.index(UnitVector3d(LonLat.fromDegrees(float(r), float(d))))
            for r, d in zip(ra, dec, strict=True)
        ],
        dtype=np.int64,
    )


def read_refcat(source: str | Path | Table) -> Table:
    """A reference catalog from a table, a parquet or FITS file, or a directory of ``*.parquet`` shards."""
    if isinstance(source, Table):
        return source
    path = Path(source)
    if path.is_dir():
        files = sorted(path.glob("*.parquet"))
        if not files:
            raise RepositoryError("no *.parquet shard files", where=str(path))
        tables = [Table.read(f) for f in files]
        return vstack(tables, metadata_conflicts="silent") if len(tables) > 1 else tables[0]
    try:
        return Table.read(path)
    except (OSError, ValueError) as exc:
        raise RepositoryError(f"cannot read the reference catalog ({exc})", where=str(path)) from exc


def ingest_refcat(
    butler: Butler, table: str | Path | Table, *, name: str = REFCAT_DATASET, run: str = REFCAT_RUN
) -> int:
    """Shard a reference catalog on HTM level 7 and store each shard as a dataset ``name`` (``ref_cat``).

    ``table`` may be a table, a file, or a directory of shards (any sharding: they are re-sharded).
    Returns the number of shards written.  Required columns: ``id``, ``coord_ra``, ``coord_dec`` (deg).
    """
    table = read_refcat(table)
    missing = [c for c in ("id", "coord_ra", "coord_dec") if c not in table.colnames]
    if missing:
        raise RepositoryError(f"reference catalog {name!r} lacks columns {missing}")
    register_dataset_type(butler, name, [f"htm{REFCAT_HTM_LEVEL}"], "ArrowAstropy")
    butler.collections.register(run)
    shard = htm_index(np.asarray(table["coord_ra"]), np.asarray(table["coord_dec"]))
    order = np.argsort(shard, kind="stable")
    bounds = np.flatnonzero(np.diff(shard[order])) + 1
    existing = {
        ref.dataId[f"htm{REFCAT_HTM_LEVEL}"]
        for ref in butler.query_datasets(name, collections=run, explain=False)
    }
    n = 0
    for idx in np.split(order, bounds):
        sid = int(shard[idx[0]])
        if sid in existing:
            continue
        butler.put(table[idx], name, {f"htm{REFCAT_HTM_LEVEL}": sid}, run=run)
        n += 1
    return n
