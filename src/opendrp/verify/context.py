"""What a verification run reads: one repository collection, opened once, with everything cached.

`VerifyContext` is handed to every test case.  It lists datasets by type, reads them, and holds the reference
catalog, the camera and the sky map of the repository; the truth tables only when ``--truth`` was given
(simulations).  Figures go to ``out_dir / "figures"``; ``figure(name)`` gives the path to write and the
relative name to put in a check's ``plot``.  Metrics that are not checks of one case (the SRD metrics) are
collected in ``metrics``: ``{"PA1": {"g": {"value": v, "unit": "mmag"}}}``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astropy.table import Table, vstack

from ..errors import RepositoryError
from ..execution.drp import default_output
from ..repo.butler import get_camera, get_instrument_name, get_skymap, open_butler

__all__ = ["VerifyContext", "default_collection"]


def default_collection(repo: str | Path) -> str:
    """The collection `opendrp run` writes by default (``{instrument}/runs/drp``) in ``repo``."""
    return default_output(get_instrument_name(open_butler(repo)))


@dataclass
class VerifyContext:
    """The inputs of a verification run.

    Attributes
    ----------
    repo : `pathlib.Path`
        The data repository.
    collection : `str`
        The output collection verified (a RUN or a CHAINED collection of the runs).
    out_dir : `pathlib.Path`
        Where verify.json, verify.md, index.html and ``figures/`` are written.
    truth_path : `pathlib.Path`, optional
        The simulator's ``truth.parquet``; its directory holds the other truth tables (artefacts, ...).
    """

    repo: Path
    collection: str
    out_dir: Path
    truth_path: Path | None = None
    make_plots: bool = True
    metrics: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @functools.cached_property
    def butler(self) -> Any:
        return open_butler(self.repo, collections=[self.collection])

    @property
    def truth_dir(self) -> Path | None:
        return None if self.truth_path is None else self.truth_path.parent

    @property
    def instrument(self) -> str:
        return str(get_instrument_name(self.butler))

    @functools.cached_property
    def camera(self) -> Any:
        return get_camera(self.butler)

    @functools.cached_property
    def skymap(self) -> Any:
        return get_skymap(self.butler)

    def dataset_types(self) -> set[str]:
        """Names of the dataset types with at least one dataset in the collection."""
        if "_types" not in self._cache:
            refs = self.butler.query_all_datasets(self.collection, limit=None)
            self._cache["_types"] = {ref.datasetType.name for ref in refs}
        return set(self._cache["_types"])

    def refs(self, dataset_type: str, where: str = "", **data_id: Any) -> list[Any]:
        """Every dataset of a type in the collection (find-first), by data ID; [] when there is none."""
        key = f"refs:{dataset_type}:{where}:{sorted(data_id.items())}"
        if key not in self._cache:
            if dataset_type not in self.dataset_types():
                self._cache[key] = []
            else:
                refs = self.butler.query_datasets(
                    dataset_type,
                    collections=self.collection,
                    where=where,
                    data_id=data_id or None,
                    explain=False,
                    limit=None,
                )
                self._cache[key] = sorted(refs, key=lambda r: tuple(sorted(r.dataId.required.items())))
        return list(self._cache[key])

    def get(self, ref: Any, **parameters: Any) -> Any:
        """Read one dataset (``parameters``, e.g. ``columns=[...]``, passed to the formatter)."""
        return self.butler.get(ref, parameters=parameters or None)

    def component(self, ref: Any, name: str) -> Any:
        """Read one component of a dataset (``wcs``, ``psf``, ``photo_calib``, ``mask``, ...)."""
        return self.butler.get(ref.makeComponentRef(name))

    def table(self, dataset_type: str, columns: Iterable[str] | None = None, where: str = "") -> Table:
        """All datasets of a catalog type stacked (with ``visit``/``detector``/``band``/``tract``/``patch``
        columns from the data ID where the table lacks them); an empty table when there is none."""
        cols = None if columns is None else list(columns)
        key = f"table:{dataset_type}:{cols}:{where}"
        if key not in self._cache:
            tables = []
            for ref in self.refs(dataset_type, where=where):
                t = self.get(ref, columns=cols) if cols is not None else self.get(ref)
                for dim in ("visit", "detector", "band", "tract", "patch"):
                    if dim in ref.dataId.dimensions.names and dim not in t.colnames and len(t):
                        t[dim] = [ref.dataId[dim]] * len(t)
                tables.append(t)
            tables = [t for t in tables if len(t)]
            self._cache[key] = (
                vstack(tables, join_type="outer", metadata_conflicts="silent") if tables else Table()
            )
        return self._cache[key]

    def refcat(self) -> Table:
        """The whole reference catalog (every ``ref_cat`` shard the repository holds)."""
        if "refcat" not in self._cache:
            refs = list(
                self.butler.query_datasets(
                    "ref_cat", collections=self._refcat_collections(), explain=False, limit=None
                )
            )
            if not refs:
                raise RepositoryError(
                    "no reference catalog (ref_cat) in the repository", where=str(self.repo)
                )
            tables = [self.butler.get(ref) for ref in refs]
            self._cache["refcat"] = (
                vstack(tables, metadata_conflicts="silent") if len(tables) > 1 else tables[0]
            )
        return self._cache["refcat"]

    def _refcat_collections(self) -> list[str]:
        return [self.collection, "refcats"]

    def truth(self, name: str = "truth.parquet") -> Table | None:
        """A truth table of the simulator (``truth.parquet`` or another file of its directory), or None."""
        if self.truth_dir is None:
            return None
        path = self.truth_path if name == "truth.parquet" else self.truth_dir / name
        assert path is not None
        if not path.exists():
            return None
        key = f"truth:{name}"
        if key not in self._cache:
            self._cache[key] = Table.read(path)
        return self._cache[key]

    def figure(self, name: str) -> tuple[Path, str]:
        """(path to write, name relative to the report) of figure ``name`` (a PNG file name)."""
        rel = f"figures/{name}"
        path = self.out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path, rel

    def add_metric(self, name: str, scope: str, value: float | None, unit: str, **extra: Any) -> None:
        """Record a metric of verify.json's ``metrics`` section (``scope``: a band, or ``all``)."""
        entry: dict[str, Any] = {"value": value, "unit": unit}
        entry.update(extra)
        self.metrics.setdefault(name, {})[scope] = entry
