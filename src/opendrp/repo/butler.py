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

import shutil
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
from ..instrument.camera import check_name
from ..skymap import RingsSkyMap, SkyMapConfig

__all__ = [
    "REFCAT_HTM_LEVEL",
    "REFCAT_RUN",
    "SKYMAP_RUN",
    "Butler",
    "Timespan",
    "calib_collection",
    "camera_run",
    "check_collection_name",
    "check_run_inputs",
    "describe_middleware_error",
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
#: query-string parameters of a database URL that carry a secret
_SECRET_PARAMETERS = ("password", "passwd", "pwd", "pass", "sslpassword", "secret", "token")


def _check_no_password(url: str) -> None:
    """Refuse a database URL that carries a password (in its user info or its query string): it would be
    written into ``butler.yaml`` (readable by all) and into messages.  The error never repeats the URL."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError and ValueError here
        if ":" in url and "@" in url:  # never echo what may hold a password
            raise ConfigurationError("not a database URL", where="--registry-db") from None
        raise ConfigurationError(
            f"not a database URL ({exc})",
            where="--registry-db",
            fix="give e.g. postgresql://user@host:5432/dbname",
        ) from None
    secret_keys = [k for k in parsed.query if k.lower() in _SECRET_PARAMETERS]
    if parsed.password or secret_keys:
        place = "its user info" if parsed.password else f"its query string ({', '.join(secret_keys)}=)"
        raise ConfigurationError(
            f"the registry URL carries a password in {place}, which would be stored in the repository's "
            "butler.yaml",
            where="--registry-db",
            fix="remove it from the URL and put it in ~/.lsst/db-auth.yaml (mode 600) or $PGPASSWORD, "
            "see docs/execution.md",
        )
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"registry database {parsed.get_backend_name()!r} is not supported",
            where="--registry-db",
            fix="use postgresql://user@host:port/dbname (or no --registry-db for SQLite in REPO)",
        )


def _redacted(text: str) -> str:
    """A middleware message with any URL password (user info or query string) replaced by ``***``."""
    import re

    text = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
    keys = "|".join(_SECRET_PARAMETERS)
    return re.sub(rf"((?:{keys})=)[^&\s'\"]*", r"\1***", text, flags=re.IGNORECASE)


def check_collection_name(name: str, *, where: str) -> str:
    """A collection name a user gives (``--output``): path-like components of `NAME_PATTERN` names.

    RUN collections become directories of the datastore, so ``..``, absolute names and odd characters are
    refused (they would write outside the repository).
    """
    from ..instrument.camera import NAME_PATTERN

    parts = name.split("/")
    if not name or any(not NAME_PATTERN.match(p) for p in parts):
        raise ConfigurationError(
            f"{name!r} is not a valid collection name",
            where=where,
            fix="use names like u/jdoe/run1: '/'-separated parts of letters, digits, '_', '.', '+', '-', "
            "each starting with a letter or digit (no '..', no leading '/')",
        )
    return name


def registry_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is the registry database refusing or not answering."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        if isinstance(cur, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return True
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return False


def describe_middleware_error(exc: BaseException) -> RepositoryError | ConfigurationError | None:
    """One-line openDRP error for an error of the middleware that a user's input caused, or None.

    Known: a bad data query (``--where``), an unknown collection, an unknown data ID value, the registry
    database refusing or not answering.
    """
    from lsst.daf.butler import InvalidQueryError, MissingCollectionError, MissingDatasetTypeError
    from lsst.daf.butler.registry import DataIdValueError, UserExpressionError

    first = _redacted(" ".join(str(exc).split()))[:400]
    if isinstance(exc, UserExpressionError | InvalidQueryError):
        return ConfigurationError(
            f"invalid data query ({first})",
            where="--where",
            fix="see the butler query expression syntax, e.g. \"band IN ('g', 'r') AND visit > 100\"",
        )
    if isinstance(exc, DataIdValueError):
        return ConfigurationError(f"no such data ID value ({first})", where="--where")
    if isinstance(exc, MissingCollectionError):
        return RepositoryError(
            f"unknown collection ({first})", fix="list them with `butler query-collections REPO`"
        )
    if isinstance(exc, MissingDatasetTypeError):
        return RepositoryError(f"unknown dataset type ({first})", fix="ingest or run what makes it first")
    if registry_unreachable(exc):
        return RepositoryError(
            f"the registry database refused or did not answer ({type(exc).__name__})",
            where="registry",
            fix="check that the database server runs and accepts this user (host, port, db-auth.yaml)",
        )
    return None


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
    if root.exists() and not root.is_dir():
        raise RepositoryError("exists and is not a directory", where=str(root), fix="choose another path")
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise RepositoryError(
            "the directory is not empty", where=str(root), fix="give a new or empty directory"
        )
    check_name(camera.name, where="camera name")
    check_name(skymap_config.name, where="skymap.name")
    config = Config(str(seed_config_path()))
    if registry_db:
        _check_no_password(registry_db)
        config["registry", "db"] = registry_db
    created = not root.exists()
    try:
        try:
            Butler.makeRepo(str(root), config=config, overwrite=overwrite)
        except Exception as exc:  # the middleware raises many types here (DB errors, file errors)
            known = describe_middleware_error(exc)
            if known is not None:
                raise RepositoryError(known.what, where=registry_db or str(root), fix=known.fix) from exc
            message = _redacted(" ".join(str(exc).split()))[:300]
            raise RepositoryError(
                f"cannot create the repository ({type(exc).__name__}: {message})", where=str(root)
            ) from exc
        if not registry_db:
            use_wal(root)
        butler = Butler.from_config(str(root), writeable=True)
        _populate_repo(butler, camera, skymap_config)
    except BaseException:
        # a failed init leaves nothing behind, so that it can be retried (a PostgreSQL schema it created
        # stays; a retry with the same URL reuses nothing of it and fails clearly)
        if created:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for child in root.iterdir():
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        raise
    return butler


def _populate_repo(butler: Butler, camera: Camera, skymap_config: SkyMapConfig) -> None:
    """Register the instrument, camera, sky map and the standing collections of a new repository."""
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


def check_run_inputs(butler: Butler, instrument: str, *, where: str, output: str) -> None:
    """What a DRP run needs before it starts workers: a valid ``--where`` that selects some raw data, a
    reference catalog, and an ``--output`` that is a CHAINED collection (or new).

    Raises
    ------
    ConfigurationError, RepositoryError
        One line naming the option (``--where``, ``--output``) or what to ingest.
    """
    from lsst.daf.butler import MissingCollectionError

    try:
        info = butler.collections.get_info(output)
        if info.type != CollectionType.CHAINED:
            raise ConfigurationError(
                f"{output!r} is a {info.type.name} collection, not an output chain",
                where="--output",
                fix="give a new name (e.g. u/you/drp) or the chain of an earlier `opendrp run`",
            )
    except MissingCollectionError:
        pass
    if not butler.registry.queryDatasetTypes(REFCAT_DATASET) or not butler.query_datasets(
        REFCAT_DATASET, collections=REFCAT_RUN, explain=False, limit=1
    ):
        raise RepositoryError(
            "no reference catalog is ingested (astrometry and photometry need it)",
            where=f"collection {REFCAT_RUN}",
            fix="ingest one: opendrp ingest REPO --refcat refcat.parquet",
        )
    query = f"instrument = '{instrument}'" + (f" AND ({where})" if where else "")
    try:
        raws = butler.query_datasets(
            "raw", collections=defaults_chain(instrument), where=query, explain=False, limit=1
        )
    except Exception as exc:  # the middleware's query errors
        known = describe_middleware_error(exc)
        if known is None:
            raise
        raise ConfigurationError(known.what, where="--where", fix=known.fix) from exc
    if not raws:
        raise ConfigurationError(
            f"the data query selects no raw data ({where or 'no query'})",
            where="--where",
            fix="check it with `butler query-datasets REPO raw --where ...`, or ingest raw files",
        )


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
        tables = [_read_table(f) for f in files]
        return vstack(tables, metadata_conflicts="silent") if len(tables) > 1 else tables[0]
    return _read_table(path)


def _read_table(path: Path) -> Table:
    from astropy.io.registry import IORegistryError

    try:
        return Table.read(path)
    except (OSError, ValueError, IORegistryError) as exc:
        raise RepositoryError(
            f"cannot read the reference catalog ({type(exc).__name__}: {exc})",
            where=str(path),
            fix="give a parquet file (or FITS table) with columns id, coord_ra, coord_dec (deg)",
        ) from exc


def ingest_refcat(
    butler: Butler, table: str | Path | Table, *, name: str = REFCAT_DATASET, run: str = REFCAT_RUN
) -> int:
    """Shard a reference catalog on HTM level 7 and store each shard as a dataset ``name`` (``ref_cat``).

    ``table`` may be a table, a file, or a directory of shards (any sharding: they are re-sharded).
    Returns the number of shards written.  Required columns: ``id``, ``coord_ra``, ``coord_dec`` (deg).
    """
    table_source = None if isinstance(table, Table) else table
    table = read_refcat(table)
    missing = [c for c in ("id", "coord_ra", "coord_dec") if c not in table.colnames]
    if missing:
        where = str(table_source) if table_source is not None else ""
        raise RepositoryError(
            f"the reference catalog lacks columns {missing}",
            where=where,
            fix="a reference catalog has columns id, coord_ra, coord_dec (deg) and fluxes",
        )
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
