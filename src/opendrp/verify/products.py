"""The logic of DRP-00-05 / DRP-00-10 (reference 000 §5.2, §5.3, Tables 1-3): plain functions, no middleware.

The case module (`opendrp.verify.cases.products`) reads the repository and hands these functions plain data
(data IDs as dicts, paths, header cards, quantum metadata as dicts).  Rules:

**Products (Table 1).**  The expected datasets are the outputs of the rebuilt quantum graph of the run
(`opendrp.execution.predict`), counted per dataset type and tract: a dataset with a ``tract`` in its data ID
counts in that tract; a visit-level dataset (``visit``, ``detector``) counts in every tract its
visit-detector region overlaps; a dataset of neither (``*_config``, ``packages``) in the row ``tract = -``.
A predicted dataset is

- *actual* when it is registered in the collection (DRP-00-05) -- or, for the release products of
  DRP-00-10, registered and its file good (below);
- *no work* when it is not, but the quantum that would have written it ended (its ``{task}_metadata`` is
  registered): the middleware's "no work found" or an optional output not written (a warp whose visit
  misses the patch's pixels);
- *missing* otherwise (the quantum failed or never ran).  The check's value is (actual + no work) / expected.

**Files.**  A registered file is good when it exists, is not empty, has the size the datastore recorded when
it was written (when recorded), and passes a cheap read: FITS -- every HDU header parses and the file holds
every HDU's data (``HDUList.fileinfo``); parquet -- the footer (schema, row groups) parses; JSON -- it parses;
other text (YAML, config ``.py``) -- it decodes as UTF-8.  Checksums (§5.2 1(b)) are compared when the
datastore recorded one (BLAKE2b, as daf_butler computes them), else the check is "not available".

**Metadata (§5.2 2).**  calexp: ``visit``, ``detector``, ``band``; warps: ``visit``, ``tract``, ``patch``,
``band``; coadds: ``tract``, ``patch``, ``band``.  Each must be in the primary header -- as the task's card
(``VISIT``) or else as the middleware's provenance data-ID card (``LSST BUTLER DATAID VISIT``) -- and equal
to the dataset's data ID.

**Provenance (§5.2 3).**  Every science output (not ``*_metadata``/``*_log``/``*_config``/``packages``, which
are the quantum's own records) carries the provenance the middleware hands its formatter (FITS: primary
header cards ``LSST BUTLER ...``; parquet: the table metadata ``LSST.BUTLER....``).  It is complete when it
names the dataset's own ID, dataset type and run (direct association with the processing attempt), the run is
one of the collection's chain, it names its producing quantum (was-generated-by) and at least one input, every
input named exists in the repository with the run and dataset type named, and every output of one quantum
(task and data ID) names the same quantum.

**Runtime metrics (§5.2 4, Tables 2 and 3).**  Every quantum's ``{task}_metadata`` must hold, in its
``quantum`` section, ``start``/``end`` ``Utc``, ``CpuTime``, ``UserTime``, ``SystemTime`` and
``endMaxResidentSetSize`` (pipe_base's resource usage, bytes on Linux); a quantum that found no work before
it started (the middleware skips it in ``adjustQuantum``: no ``start`` keys) is measured from its ``prep``
keys instead.  Table 2 per tract: quanta, wall
clock (first start to last end, s) and total CPU (s); Table 3 per tract and task: executions, user and
system CPU (s), maximum RSS (MB).  Visit-level quanta count in every tract they overlap.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "METADATA_KEYS",
    "ProductCount",
    "QuantumUsage",
    "USAGE_FIELDS",
    "count_products",
    "data_id_key",
    "file_checksum",
    "file_problem",
    "input_datasets",
    "is_bookkeeping",
    "metadata_problems",
    "provenance_cards",
    "provenance_problems",
    "quantum_conflicts",
    "quantum_usage",
    "read_cards",
    "tracts_of",
    "usage_by_task",
    "usage_by_tract",
]

#: the metadata each dataset type must carry (§5.2 2), checked against its data ID
METADATA_KEYS: dict[str, tuple[str, ...]] = {
    "calexp": ("visit", "detector", "band"),
    "deepCoadd_directWarp": ("visit", "tract", "patch", "band"),
    "deepCoadd": ("tract", "patch", "band"),
}
#: prefixes of the provenance keys the middleware writes (FITS cards; astropy table metadata)
PROVENANCE_PREFIXES = ("LSST BUTLER ", "LSST.BUTLER.")
#: the keys of a quantum's resource usage (pipe_base, ``quantum`` section of ``{task}_metadata``), each
#: ``{stage}{key}`` for a stage ``start``/``end``; a quantum that found no work before it started (the
#: middleware's NoWorkFound in ``adjustQuantum``) has ``prep`` instead of ``start``
USAGE_KEYS = ("Utc", "CpuTime", "UserTime", "SystemTime")
USAGE_FIELDS = (
    *(f"{stage}{key}" for stage in ("prep", "start", "end") for key in USAGE_KEYS),
    "endMaxResidentSetSize",
)
#: the row of datasets that have no tract (configs, packages)
NO_TRACT = "-"
_BOOKKEEPING_SUFFIXES = ("_metadata", "_log", "_config")
_BYTES_PER_MB = 1024.0**2
DataIdKey = tuple[tuple[str, Any], ...]


def is_bookkeeping(dataset_type: str) -> bool:
    """Whether a dataset type is the middleware's record of a task or run, not a science product."""
    return dataset_type == "packages" or dataset_type.endswith(_BOOKKEEPING_SUFFIXES)


def data_id_key(data_id: Mapping[str, Any], dimensions: Iterable[str] | None = None) -> DataIdKey:
    """A hashable key of a data ID (its ``dimensions`` only, when given), values as plain ints/strs."""
    names = sorted(data_id) if dimensions is None else sorted(dimensions)
    return tuple((name, _plain(data_id[name])) for name in names)


def _plain(value: Any) -> Any:
    return int(value) if isinstance(value, int) else str(value)


def tracts_of(data_id: Mapping[str, Any], overlaps: Mapping[tuple[int, int], Sequence[int]]) -> list[Any]:
    """The tracts a dataset counts in (rules in the module docstring); ``[NO_TRACT]`` for none."""
    if "tract" in data_id:
        return [int(data_id["tract"])]
    if "visit" in data_id and "detector" in data_id:
        tracts = overlaps.get((int(data_id["visit"]), int(data_id["detector"])), ())
        return list(tracts) or [NO_TRACT]
    return [NO_TRACT]


@dataclass
class ProductCount:
    """Expected and actual datasets of one dataset type in one tract (a row of Table 1)."""

    dataset_type: str
    tract: Any
    expected: int = 0
    actual: int = 0
    no_work: int = 0
    missing: list[DataIdKey] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        """(actual + no work) / expected (1 when nothing is expected)."""
        return 1.0 if self.expected == 0 else (self.actual + self.no_work) / self.expected

    def row(self) -> dict[str, Any]:
        return {
            "dataset type": self.dataset_type,
            "tract": self.tract,
            "expected": self.expected,
            "actual": self.actual,
            "no work": self.no_work,
            "missing": len(self.missing),
        }


def count_products(
    expected: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    actual: Mapping[str, set[DataIdKey]],
    ended: Callable[[str, Mapping[str, Any]], bool],
    overlaps: Mapping[tuple[int, int], Sequence[int]],
    registered: Mapping[str, set[DataIdKey]] | None = None,
) -> list[ProductCount]:
    """Count expected, actual, no-work and missing datasets per dataset type and tract.

    Parameters
    ----------
    expected : `dict` [`str`, sequence of `dict`]
        Dataset type -> predicted data IDs.
    actual : `dict` [`str`, `set`]
        Dataset type -> keys (`data_id_key`) of the datasets that count as actual.
    ended : callable
        ``ended(dataset_type, data_id)``: whether the quantum that produces it ended (its metadata exists).
    overlaps : `dict`
        ``(visit, detector) -> tracts`` (`tracts_of`).
    registered : `dict` [`str`, `set`], optional
        Dataset type -> keys of the registered datasets (default ``actual``): a registered dataset that
        does not count as actual (its file is bad) is missing, never "no work".

    Returns
    -------
    counts : `list` [`ProductCount`]
        Sorted by dataset type, then tract.
    """
    rows: dict[tuple[str, str], ProductCount] = {}
    for dataset_type, data_ids in expected.items():
        have = actual.get(dataset_type, set())
        known = (actual if registered is None else registered).get(dataset_type, set())
        for data_id in data_ids:
            key = data_id_key(data_id)
            present = key in have
            no_work = not present and key not in known and ended(dataset_type, data_id)
            for tract in tracts_of(data_id, overlaps):
                row = rows.setdefault(
                    (dataset_type, str(tract)), ProductCount(dataset_type=dataset_type, tract=tract)
                )
                row.expected += 1
                row.actual += present
                row.no_work += no_work
                if not present and not no_work:
                    row.missing.append(key)
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], _tract_order(k[1])))]


def _tract_order(tract: str) -> tuple[int, int]:
    return (1, 0) if tract == NO_TRACT else (0, int(tract))


# ---------------------------------------------------------------------------------------------- files


def file_problem(path: str | Path, *, recorded_size: int = -1) -> str:
    """Why a file is not good ('' when it is): missing, empty, size differs from the record, unreadable."""
    p = Path(path)
    if not p.is_file():
        return "missing"
    size = p.stat().st_size
    if size == 0:
        return "empty"
    if recorded_size >= 0 and size != recorded_size:
        return f"{size} B on disk, {recorded_size} B recorded"
    try:
        return _read_problem(p, size)
    except Exception as exc:  # any failure of the cheap read: unreadable
        return f"unreadable ({type(exc).__name__}: {str(exc)[:80]})"


def _read_problem(path: Path, size: int) -> str:
    suffix = path.suffix.lower()
    if suffix in (".fits", ".fit", ".fz"):
        return _fits_problem(path, size)
    if suffix in (".parq", ".parquet"):
        import pyarrow.parquet as pq

        pq.read_metadata(path)
        return ""
    text = path.read_bytes().decode("utf-8")
    if suffix == ".json":
        json.loads(text)
    return ""


def _fits_problem(path: Path, size: int) -> str:
    for i, (data_start, data_size) in enumerate(fits_layout(path)):
        if data_start + data_size > size:
            return f"truncated: HDU {i} ends at byte {data_start + data_size} of {size}"
    return ""


def fits_layout(path: str | Path) -> list[tuple[int, int]]:
    """``(data offset, data size padded to 2880-byte blocks)`` of every HDU of a FITS file, from its headers.

    Reads the 2880-byte header blocks only (the structural keywords ``BITPIX``, ``NAXISn``, ``PCOUNT``,
    ``GCOUNT`` of FITS 4.0 §4.4.1), seeking over the data: a few kB per HDU, whatever the image size.

    Raises
    ------
    ValueError
        A header is cut short or has no ``END`` card.
    """
    out: list[tuple[int, int]] = []
    with open(path, "rb") as fh:
        offset = 0
        while True:
            cards = _header_cards(fh, offset)
            if cards is None:
                return out
            n_blocks, values = cards
            data_start = offset + n_blocks * _FITS_BLOCK
            naxis = int(values.get("NAXIS", 0))
            n = 0
            if naxis:
                n = 1
                for k in range(1, naxis + 1):
                    n *= int(values.get(f"NAXIS{k}", 0))
            n = (
                abs(int(values.get("BITPIX", 8)))
                // 8
                * int(values.get("GCOUNT", 1))
                * (n + int(values.get("PCOUNT", 0)))
            )
            padded = -(-n // _FITS_BLOCK) * _FITS_BLOCK
            out.append((data_start, padded))
            offset = data_start + padded


_FITS_BLOCK = 2880
_FITS_STRUCTURE = {"BITPIX", "NAXIS", "PCOUNT", "GCOUNT"}


def _header_cards(fh: Any, offset: int) -> tuple[int, dict[str, str]] | None:
    """(blocks, structural keyword values) of the header at ``offset``; None at the end of the file."""
    fh.seek(offset)
    values: dict[str, str] = {}
    n_blocks = 0
    while True:
        block = fh.read(_FITS_BLOCK)
        if not block and n_blocks == 0:
            return None
        if len(block) < _FITS_BLOCK:
            raise ValueError(f"header at byte {offset} cut short")
        n_blocks += 1
        for i in range(0, _FITS_BLOCK, 80):
            card = block[i : i + 80].decode("ascii", errors="replace")
            key = card[:8].strip()
            if key == "END":
                return n_blocks, values
            if key in _FITS_STRUCTURE or (key.startswith("NAXIS") and card[8:10] == "= "):
                values[key] = card[10:].split("/")[0].strip()


def file_checksum(path: str | Path, *, algorithm: str = "blake2b", block_size: int = 1 << 20) -> str:
    """The hex digest of a file (daf_butler's checksum algorithm by default)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(block_size), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------ metadata, provenance


def read_cards(path: str | Path) -> dict[str, Any]:
    """The metadata of a file: the primary header of a FITS file, the table metadata of a parquet file.

    Of a parquet file only the ``meta`` section of astropy's ``table_meta_yaml`` is parsed (the column
    descriptions before it are skipped: parsing them costs ~0.3 s for a wide table).
    """
    p = Path(path)
    if p.suffix.lower() in (".parq", ".parquet"):
        import pyarrow.parquet as pq

        meta = pq.read_schema(p).metadata or {}
        text = meta.get(b"table_meta_yaml")
        return {} if text is None else _yaml_meta(text.decode())
    from astropy.io import fits

    return dict(fits.getheader(p, 0).items())


def _yaml_meta(text: str) -> dict[str, Any]:
    """The top-level ``meta`` mapping of astropy's table YAML (an ``!!omap``), {} when there is none."""
    import yaml

    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("meta:")), None)
    if start is None:
        return {}
    end = next((i for i in range(start + 1, len(lines)) if lines[i][:1] not in ("", " ", "-")), len(lines))
    try:
        doc = yaml.safe_load("\n".join(lines[start:end]))
    except yaml.YAMLError:  # astropy-specific tags in the metadata: the full loader
        from astropy.io.misc import yaml as astropy_yaml

        doc = astropy_yaml.load("\n".join(lines[start:end]))
    meta = doc.get("meta") if isinstance(doc, dict) else None
    if isinstance(meta, list):  # an omap: a list of pairs
        return dict(meta)
    return dict(meta or {})


def metadata_problems(cards: Mapping[str, Any], data_id: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    """What of ``keys`` is absent from the header ``cards`` or differs from ``data_id`` ([]: all agree)."""
    problems = []
    for key in keys:
        value = cards.get(key.upper(), cards.get(f"LSST BUTLER DATAID {key.upper()}"))
        if value is None or value == "":
            problems.append(f"no {key}")
        elif _plain(value) != _plain(data_id[key]):
            problems.append(f"{key} {value!r} != data ID {data_id[key]!r}")
    return problems


def provenance_cards(cards: Mapping[str, Any]) -> dict[str, Any]:
    """The middleware's provenance keys of a header or table metadata, with the prefix removed and spaces
    as separators (``RUN``, ``QUANTUM``, ``N_INPUTS``, ``INPUT 0 ID``, ``DATAID VISIT``, ...)."""
    out = {}
    for key, value in cards.items():
        for prefix in PROVENANCE_PREFIXES:
            if str(key).upper().startswith(prefix):
                out[str(key)[len(prefix) :].upper().replace(".", " ")] = value
    return out


def input_datasets(prov: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(id, run, dataset type)`` of every input named in provenance keys (`provenance_cards`)."""
    n = prov.get("N_INPUTS")
    count = int(n) if isinstance(n, int | float) and not isinstance(n, bool) else 0
    return [
        (str(prov.get(f"INPUT {k} ID", "")), str(prov.get(f"INPUT {k} RUN", "")),
         str(prov.get(f"INPUT {k} DATASETTYPE", "")))
        for k in range(count)
    ]  # fmt: skip


def provenance_problems(
    prov: Mapping[str, Any],
    *,
    dataset_id: str,
    dataset_type: str,
    run: str,
    runs: Iterable[str],
    known: Mapping[str, tuple[str, str]],
) -> list[str]:
    """What is incomplete or wrong in one output's provenance ([] when complete; rules: module docstring).

    Parameters
    ----------
    prov : `dict`
        The provenance keys of the file (`provenance_cards`).
    dataset_id, dataset_type, run : `str`
        What the registry says of the dataset.
    runs : iterable of `str`
        The RUN collections of the verified collection's chain.
    known : `dict`
        ``{id: (run, dataset type)}`` of the inputs that exist in the repository (as named).
    """
    if not prov:
        return ["no provenance in the file"]
    problems = []
    for key, want in (("ID", dataset_id), ("DATASETTYPE", dataset_type), ("RUN", run)):
        if str(prov.get(key, "")) != want:
            problems.append(f"{key} {prov.get(key)!r} != {want!r}")
    if run not in set(runs):
        problems.append(f"run {run} is not in the collection's chain")
    if not prov.get("QUANTUM"):
        problems.append("no producing quantum")
    inputs = input_datasets(prov)
    if not inputs:
        problems.append("no inputs")
    for input_id, input_run, input_type in inputs:
        if known.get(input_id) != (input_run, input_type):
            problems.append(f"input {input_type} {input_id} is not in the repository's run {input_run}")
    return problems


def quantum_conflicts(
    outputs: Iterable[tuple[str, DataIdKey, str, str]],
) -> dict[tuple[str, DataIdKey], str]:
    """Quanta whose outputs name different producing quanta.

    Parameters
    ----------
    outputs : iterable of ``(task, quantum data ID key, quantum ID, dataset type)``

    Returns
    -------
    conflicts : `dict`
        ``(task, quantum data ID key) -> what its outputs name``, for each quantum with more than one
        quantum ID among its outputs.
    """
    named: dict[tuple[str, DataIdKey], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for task, key, quantum, dataset_type in outputs:
        named[task, key][quantum].append(dataset_type)
    return {
        group: "outputs of one quantum name different quanta: "
        + "; ".join(f"{q} ({', '.join(sorted(types))})" for q, types in sorted(ids.items()))
        for group, ids in sorted(named.items())
        if len(ids) > 1
    }


# ------------------------------------------------------------------------------------------------- usage


@dataclass(frozen=True)
class QuantumUsage:
    """Resource usage of one quantum (pipe_base's ``quantum`` metadata)."""

    task: str
    tracts: tuple[Any, ...]
    start: _dt.datetime
    end: _dt.datetime
    cpu_s: float
    user_s: float
    system_s: float
    max_rss_mb: float
    started: bool = True
    """False for a quantum that found no work before it started (usage from its preparation)."""


def quantum_usage(
    quantum: Mapping[str, Any], *, task: str, tracts: Sequence[Any]
) -> tuple[QuantumUsage | None, list[str]]:
    """The usage of one quantum, from its start (else its preparation, no work) to its end, and the fields
    its metadata lacks (usage None when any is)."""
    begin = "start" if all(_present(quantum.get(f"start{k}")) for k in USAGE_KEYS) else "prep"
    wanted = [f"{stage}{k}" for stage in (begin, "end") for k in USAGE_KEYS] + ["endMaxResidentSetSize"]
    missing = [k for k in wanted if not _present(quantum.get(k))]
    if missing:
        return None, missing

    def spent(key: str) -> float:
        return float(quantum[f"end{key}"]) - float(quantum[f"{begin}{key}"])

    usage = QuantumUsage(
        task=task,
        tracts=tuple(tracts),
        start=_dt.datetime.fromisoformat(str(quantum[f"{begin}Utc"])),
        end=_dt.datetime.fromisoformat(str(quantum["endUtc"])),
        cpu_s=spent("CpuTime"),
        user_s=spent("UserTime"),
        system_s=spent("SystemTime"),
        max_rss_mb=float(quantum["endMaxResidentSetSize"]) / _BYTES_PER_MB,
        started=begin == "start",
    )
    return usage, []


def _present(value: Any) -> bool:
    if value is None or value == "":
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


def usage_by_tract(usages: Iterable[QuantumUsage]) -> list[dict[str, Any]]:
    """Reference 000 Table 2: per tract, quanta, wall clock (first start to last end) and total CPU."""
    groups: dict[Any, list[QuantumUsage]] = defaultdict(list)
    for u in usages:
        for tract in u.tracts:
            groups[tract].append(u)
    rows = []
    for tract in sorted(groups, key=lambda t: _tract_order(str(t))):
        group = groups[tract]
        wall = (max(u.end for u in group) - min(u.start for u in group)).total_seconds()
        rows.append(
            {
                "tract": tract,
                "quanta": len(group),
                "wall clock (s)": round(wall, 1),
                "total CPU (s)": round(sum(u.cpu_s for u in group), 1),
                "total user CPU (s)": round(sum(u.user_s for u in group), 1),
            }
        )
    return rows


def usage_by_task(usages: Iterable[QuantumUsage], *, order: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Reference 000 Table 3: per tract and task, executions, user and system CPU (s), maximum RSS (MB).

    ``order``: task labels in pipeline order (others follow alphabetically).
    """
    groups: dict[tuple[Any, str], list[QuantumUsage]] = defaultdict(list)
    for u in usages:
        for tract in u.tracts:
            groups[tract, u.task].append(u)
    rank = {label: i for i, label in enumerate(order)}
    keys = sorted(groups, key=lambda k: (_tract_order(str(k[0])), rank.get(k[1], len(rank)), k[1]))
    return [
        {
            "tract": tract,
            "task": task,
            "executions": len(groups[tract, task]),
            "user CPU (s)": round(sum(u.user_s for u in groups[tract, task]), 2),
            "system CPU (s)": round(sum(u.system_s for u in groups[tract, task]), 2),
            "max RSS (MB)": round(max(u.max_rss_mb for u in groups[tract, task]), 1),
        }
        for tract, task in keys
    ]
