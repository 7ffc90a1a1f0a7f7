"""What an audit of a processed collection reads from the repository beyond the datasets themselves.

`opendrp verify` (DRP-00-05 / DRP-00-10, reference 000 §5.2) compares the files of a collection with what the
registry and the datastore record about them.  The middleware calls it needs live here, in the adapter:

- `file_records`: the datastore's record of each file (absolute local path, size in bytes at write time, and
  checksum when the datastore computed one), the Data Backbone's "location information" of §5.2 1(b);
- `collection_runs`: the RUN collections a collection searches (its chain, flattened);
- `find_datasets`: which of the datasets a file names as its inputs (ID, run, dataset type) exist (one query
  per dataset type and run);
- `visit_detector_tracts`: the tracts each visit-detector region overlaps (per-tract counts of visit-level
  products, reference 000 Table 1).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lsst.daf.butler import Butler, CollectionType, MissingCollectionError, MissingDatasetTypeError

__all__ = ["FileRecord", "collection_runs", "file_records", "find_datasets", "visit_detector_tracts"]


@dataclass(frozen=True)
class FileRecord:
    """The datastore's record of one file of a dataset.

    Attributes
    ----------
    path : `str`
        Absolute local path of the file (a URI for remote datastores).
    size : `int`
        Size in bytes recorded when the file was written (-1: not recorded).
    checksum : `str` or `None`
        Checksum recorded at write time (None: the datastore computed none).
    component : `str` or `None`
        The component the file holds, for disassembled composites.
    """

    path: str
    size: int
    checksum: str | None
    component: str | None = None


def file_records(butler: Butler, refs: Sequence[Any]) -> dict[str, list[FileRecord]]:
    """The datastore records of the files of ``refs``, by dataset ID (as a string); [] when it has none."""
    if not refs:
        return {}
    datastore = butler._datastore  # noqa: SLF001 - the adapter is where private middleware calls live
    root = datastore.root if hasattr(datastore, "root") else None
    out: dict[str, list[FileRecord]] = {str(ref.id): [] for ref in refs}
    for data in datastore.export_records(list(refs)).values():
        for dataset_id, tables in data.records.items():
            for infos in tables.values():
                for info in infos:
                    out.setdefault(str(dataset_id), []).append(_record(info, root))
    return out


def _record(info: Any, root: Any) -> FileRecord:
    from lsst.resources import ResourcePath

    path = ResourcePath(info.path, forceAbsolute=False)
    if not path.isabs() and root is not None:
        path = root.join(info.path)
    location = path.ospath if path.scheme in ("", "file") else str(path)
    size = -1 if info.file_size is None else int(info.file_size)
    return FileRecord(path=location, size=size, checksum=info.checksum, component=info.component)


def collection_runs(butler: Butler, collection: str) -> list[str]:
    """The RUN collections that ``collection`` searches, in search order (itself if it is a RUN)."""
    names = butler.collections.query(collection, flatten_chains=True)
    return [n for n in names if butler.collections.get_info(n).type == CollectionType.RUN]


def find_datasets(butler: Butler, named: Iterable[tuple[str, str, str]]) -> dict[str, tuple[str, str]]:
    """Which of the datasets ``named`` (``(id, run, dataset type)``) exist in that run with that type.

    Returns ``{id: (run, dataset type)}`` of those that do; one query per (dataset type, run) named.
    """
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for dataset_id, run, dataset_type in named:
        wanted[dataset_type, run].add(str(dataset_id))
    found: dict[str, tuple[str, str]] = {}
    for (dataset_type, run), ids in sorted(wanted.items()):
        try:
            refs = butler.query_datasets(
                dataset_type, collections=run, find_first=False, explain=False, limit=None
            )
        except (MissingDatasetTypeError, MissingCollectionError):
            continue
        found.update({str(ref.id): (run, dataset_type) for ref in refs if str(ref.id) in ids})
    return found


def visit_detector_tracts(butler: Butler, skymap: str) -> dict[tuple[int, int], list[int]]:
    """``{(visit, detector): [tract, ...]}``: the tracts of ``skymap`` each visit-detector region overlaps."""
    out: dict[tuple[int, int], list[int]] = {}
    data_ids = butler.query_data_ids(
        ["visit", "detector", "tract"], where="skymap = sky", bind={"sky": skymap}, explain=False, limit=None
    )
    for data_id in data_ids:
        key = (int(data_id["visit"]), int(data_id["detector"]))  # type: ignore[call-overload]
        out.setdefault(key, []).append(int(data_id["tract"]))  # type: ignore[call-overload]
    return {k: sorted(set(v)) for k, v in out.items()}
