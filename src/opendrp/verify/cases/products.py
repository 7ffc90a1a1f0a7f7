"""DRP-00-05 (execution by the batch production service, reference 000 §5.2) and DRP-00-10 (the release has
the required products, §5.3): the I/O; the rules and the logic are in `opendrp.verify.products`.

DRP-00-05 checks, each per dataset type (or task), on the outputs of the rebuilt quantum graph of the run:

- ``products_present``: registered / expected datasets (Table 1, per tract, in the case's tables);
- ``files_nonempty``: registered files that exist, are non-empty, have their recorded size and read;
- ``checksums_match``: files whose checksum agrees with the datastore's record -- "not available" while the
  datastore records none (checksums at write time come with issue 12);
- ``metadata_present``: calexps, warps and coadds whose header carries their data ID's metadata;
- ``provenance_complete``: science outputs whose provenance names their run, quantum and existing inputs;
- ``runtime_metrics_recorded``: quanta whose metadata hold CPU times and max RSS (Tables 2 and 3);
- ``campaign_recorded``: "not available" until campaigns are recorded (issue 12).

DRP-00-10: ``required_products`` per release product (every science output type of the pipeline) and tract:
registered datasets with a good file / expected.  Files that are not good are not read for metadata or
provenance (they are reported once, by ``files_nonempty``).  The audit is computed once per verification run
and shared by both cases.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...execution.predict import PredictedOutputs, predict_outputs
from ...repo.audit import FileRecord, collection_runs, file_records, find_datasets, visit_detector_tracts
from ..context import VerifyContext
from ..model import CaseResult, Check
from ..products import (
    METADATA_KEYS,
    USAGE_FIELDS,
    ProductCount,
    QuantumUsage,
    count_products,
    data_id_key,
    file_checksum,
    file_problem,
    input_datasets,
    is_bookkeeping,
    metadata_problems,
    provenance_cards,
    provenance_problems,
    quantum_conflicts,
    quantum_usage,
    read_cards,
    tracts_of,
    usage_by_task,
    usage_by_tract,
)
from ..thresholds import Thresholds

__all__ = ["run_execution", "run_products"]

#: data IDs / files named in a check's reason
MAX_NAMED = 3
_AUDIT_KEY = "products:audit"


@dataclass
class _Audit:
    """What both cases need: the prediction, the registered refs, their files and their problems."""

    predicted: PredictedOutputs
    overlaps: dict[tuple[int, int], list[int]]
    runs: list[str]
    refs: dict[str, list[Any]]
    records: dict[str, list[FileRecord]]
    problems: dict[str, str] = field(default_factory=dict)
    """dataset ID -> why its file is not good (absent when good)."""
    key_cache: dict[str, set[Any]] = field(default_factory=dict)
    """dataset type -> data ID keys of its registered datasets."""

    def good(self, ref: Any) -> bool:
        return str(ref.id) not in self.problems

    def ended(self, dataset_type: str, data_id: Mapping[str, Any]) -> bool:
        """Whether the quantum producing this dataset ended (its task's metadata is registered)."""
        label = self.predicted.producers.get(dataset_type)
        if label is None or dataset_type in self.predicted.init_outputs:
            return False
        meta = f"{label}_metadata"
        dims = self.metadata_dims(meta)
        if dims is None or not set(dims) <= set(data_id):
            return False
        return data_id_key(data_id, dims) in self._keys(meta)

    def metadata_dims(self, meta: str) -> list[str] | None:
        predicted = self.predicted.datasets.get(meta)
        return sorted(predicted[0]) if predicted else None

    def _keys(self, dataset_type: str) -> set[Any]:
        if dataset_type not in self.key_cache:
            refs = self.refs.get(dataset_type, [])
            self.key_cache[dataset_type] = {data_id_key(ref.dataId.required) for ref in refs}
        return self.key_cache[dataset_type]


def _audit(ctx: VerifyContext) -> _Audit:
    cache = ctx._cache  # noqa: SLF001 - the context's cache, shared by the two cases of one run
    if _AUDIT_KEY not in cache:
        predicted = predict_outputs(ctx.repo, ctx.collection)
        refs = {name: ctx.refs(name) for name in predicted.datasets}
        all_refs = [ref for group in refs.values() for ref in group]
        audit = _Audit(
            predicted=predicted,
            overlaps=visit_detector_tracts(ctx.butler, ctx.skymap.name),
            runs=collection_runs(ctx.butler, ctx.collection),
            refs=refs,
            records=file_records(ctx.butler, all_refs),
        )
        for ref in all_refs:
            problem = _file_problem(audit.records.get(str(ref.id), []))
            if problem:
                audit.problems[str(ref.id)] = problem
        cache[_AUDIT_KEY] = audit
    audit_: _Audit = cache[_AUDIT_KEY]
    return audit_


def _file_problem(records: list[FileRecord]) -> str:
    if not records:
        return "no file recorded in the datastore"
    for rec in records:
        problem = file_problem(rec.path, recorded_size=rec.size)
        if problem:
            return f"{problem} ({rec.path})"
    return ""


def _name(ref: Any) -> str:
    return f"{ref.datasetType.name} {dict(data_id_key(ref.dataId.required))}"


def _named(items: Sequence[str]) -> str:
    more = f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else ""
    return "; ".join(items[:MAX_NAMED]) + more


def _fraction_check(
    th: Thresholds, key: str, n_good: int, n: int, bad: list[str], *, scope: dict[str, Any], what: str
) -> Check:
    if n == 0:
        return th.not_available(key, f"no {what}", scope=scope)
    reason = f"{n_good} of {n} {what}" + (f"; {_named(bad)}" if bad else "")
    return th.evaluate(key, n_good / n, scope=scope, reason=reason, n=n)


# ------------------------------------------------------------------------------------------- DRP-00-05


def run_execution(ctx: VerifyContext, th: Thresholds) -> CaseResult:
    """DRP-00-05: products, files, checksums, metadata, provenance and runtime metrics of the run."""
    audit = _audit(ctx)
    result = CaseResult("DRP-00-05", th.title("DRP-00-05"), th.section("DRP-00-05"))
    registered = {name: {data_id_key(r.dataId.required) for r in refs} for name, refs in audit.refs.items()}
    counts = count_products(
        audit.predicted.datasets, actual=registered, ended=audit.ended, overlaps=audit.overlaps
    )
    result.checks += _count_checks(th, "products_present", counts, by_tract=False, what="datasets")
    result.tables["Table 1: expected and registered datasets per dataset type and tract"] = [
        c.row() for c in counts
    ]
    result.checks += _file_checks(th, audit)
    result.checks.append(_checksum_check(th, audit))
    result.checks += _metadata_checks(ctx, th, audit)
    result.checks += _provenance_checks(ctx, th, audit)
    usage_checks, usages = _usage(ctx, th, audit)
    result.checks += usage_checks
    result.tables["Table 2: wall clock and total CPU time per tract"] = usage_by_tract(usages)
    result.tables["Table 3: CPU time and maximum RSS per task and tract"] = usage_by_task(
        usages, order=_pipeline_order(audit)
    )
    for row in usage_by_tract(usages):
        ctx.add_metric("drp_wall_clock", f"tract={row['tract']}", row["wall clock (s)"], "s")
        ctx.add_metric("drp_total_cpu", f"tract={row['tract']}", row["total CPU (s)"], "s")
    result.checks.append(
        th.not_available(
            "campaign_recorded",
            "no campaign records in this repository (campaigns are recorded by the production service, "
            "issue 12)",
        )
    )
    result.comments.append(f"expected datasets from the rebuilt quantum graph ({audit.predicted.where})")
    return result


def _pipeline_order(audit: _Audit) -> list[str]:
    order: list[str] = []
    for name in audit.predicted.datasets:  # the graph lists dataset types in pipeline order
        label = audit.predicted.producers.get(name)
        if label and label not in order:
            order.append(label)
    return order


def _count_checks(
    th: Thresholds, key: str, counts: list[ProductCount], *, by_tract: bool, what: str
) -> list[Check]:
    groups: dict[tuple[Any, ...], list[ProductCount]] = defaultdict(list)
    for c in counts:
        groups[(c.dataset_type, c.tract) if by_tract else (c.dataset_type,)].append(c)
    checks = []
    for group_key, rows in groups.items():
        scope = {"dataset_type": group_key[0]} | ({"tract": group_key[1]} if by_tract else {})
        expected = sum(r.expected for r in rows)
        actual = sum(r.actual for r in rows)
        no_work = sum(r.no_work for r in rows)
        missing = sorted({k for r in rows for k in r.missing})
        reason = f"{actual} {what} of {expected} expected" + (
            f", {no_work} not written (no work)" if no_work else ""
        )
        if missing:
            reason += f"; missing {_named([str(dict(k)) for k in missing])}"
        value = 1.0 if expected == 0 else (actual + no_work) / expected
        checks.append(th.evaluate(key, value, scope=scope, reason=reason, n=expected))
    return checks


def _file_checks(th: Thresholds, audit: _Audit) -> list[Check]:
    checks = []
    for name, refs in audit.refs.items():
        bad = [f"{_name(r)}: {audit.problems[str(r.id)]}" for r in refs if not audit.good(r)]
        checks.append(
            _fraction_check(
                th, "files_nonempty", len(refs) - len(bad), len(refs), bad,
                scope={"dataset_type": name}, what="files good",
            )
        )  # fmt: skip
    return checks


def _checksum_check(th: Thresholds, audit: _Audit) -> Check:
    with_sum = [
        (ref, rec) for refs in audit.refs.values() for ref in refs if audit.good(ref)
        for rec in audit.records.get(str(ref.id), []) if rec.checksum
    ]  # fmt: skip
    if not with_sum:
        return th.not_available(
            "checksums_match",
            "the datastore records no checksums (computed at write time by the production service, issue 12)",
        )
    bad = [
        f"{_name(ref)}: checksum differs" for ref, rec in with_sum if file_checksum(rec.path) != rec.checksum
    ]
    return _fraction_check(
        th, "checksums_match", len(with_sum) - len(bad), len(with_sum), bad, scope={}, what="files"
    )


def _cards(audit: _Audit, ref: Any) -> dict[str, Any]:
    records = audit.records.get(str(ref.id), [])
    main = [r for r in records if r.component is None] or records
    return read_cards(main[0].path)


def _metadata_checks(ctx: VerifyContext, th: Thresholds, audit: _Audit) -> list[Check]:
    checks = []
    for name, keys in METADATA_KEYS.items():
        refs = [r for r in audit.refs.get(name, []) if audit.good(r)]
        bad = []
        for ref in refs:
            problems = metadata_problems(_cards(audit, ref), dict(ref.dataId.mapping), keys)
            if problems:
                bad.append(f"{_name(ref)}: {', '.join(problems)}")
        what = f"readable files with {', '.join(keys)} in their header"
        checks.append(
            _fraction_check(
                th, "metadata_present", len(refs) - len(bad), len(refs), bad, scope={"dataset_type": name},
                what=what,
            )
        )  # fmt: skip
    return checks


def _provenance_checks(ctx: VerifyContext, th: Thresholds, audit: _Audit) -> list[Check]:
    science = {name: [r for r in refs if audit.good(r)] for name, refs in audit.refs.items()}
    science = {name: refs for name, refs in science.items() if not is_bookkeeping(name)}
    provs = {str(r.id): provenance_cards(_cards(audit, r)) for refs in science.values() for r in refs}
    known = find_datasets(ctx.butler, (named for p in provs.values() for named in input_datasets(p)))
    conflicts = _quantum_conflicts(audit, science, provs)
    checks = []
    for name, refs in science.items():
        bad = []
        for ref in refs:
            problems = provenance_problems(
                provs[str(ref.id)], dataset_id=str(ref.id), dataset_type=name, run=str(ref.run),
                runs=audit.runs, known=known,
            )  # fmt: skip
            problems += conflicts.get(str(ref.id), [])
            if problems:
                bad.append(f"{_name(ref)}: {'; '.join(problems)}")
        checks.append(
            _fraction_check(
                th, "provenance_complete", len(refs) - len(bad), len(refs), bad, scope={"dataset_type": name},
                what="readable outputs with complete provenance",
            )
        )  # fmt: skip
    return checks


def _quantum_conflicts(
    audit: _Audit, science: dict[str, list[Any]], provs: dict[str, dict[str, Any]]
) -> dict[str, list[str]]:
    """dataset ID -> the conflict of its quantum (outputs of one quantum naming different quanta)."""
    outputs = []
    members: dict[tuple[str, Any], list[str]] = defaultdict(list)
    for name, refs in science.items():
        label = audit.predicted.producers.get(name, "")
        dims = audit.metadata_dims(f"{label}_metadata") or []
        for ref in refs:
            key = data_id_key(ref.dataId.required, dims)
            quantum = str(provs[str(ref.id)].get("QUANTUM", ""))
            if quantum:
                outputs.append((label, key, quantum, name))
                members[label, key].append(str(ref.id))
    conflicts = quantum_conflicts(outputs)
    return {dataset_id: [why] for group, why in conflicts.items() for dataset_id in members[group]}


def _usage(ctx: VerifyContext, th: Thresholds, audit: _Audit) -> tuple[list[Check], list[QuantumUsage]]:
    checks = []
    usages: list[QuantumUsage] = []
    for label in _pipeline_order(audit):
        refs = audit.refs.get(f"{label}_metadata", [])
        bad = []
        for ref in refs:
            if not audit.good(ref):
                bad.append(f"{_name(ref)}: {audit.problems[str(ref.id)]}")
                continue
            metadata = ctx.get(ref)
            section = metadata["quantum"] if "quantum" in metadata else {}
            quantum = {key: section[key] for key in USAGE_FIELDS if key in section}  # the last values
            tracts = tracts_of(dict(ref.dataId.required), audit.overlaps)
            usage, missing = quantum_usage(quantum, task=label, tracts=tracts)
            if usage is None:
                bad.append(f"{_name(ref)}: no {', '.join(missing)}")
            else:
                usages.append(usage)
        n_prep = sum(not u.started for u in usages if u.task == label)
        what = "quanta with CPU times and max RSS recorded" + (
            f" ({n_prep} found no work before they started: measured from their preparation)"
            if n_prep
            else ""
        )
        checks.append(
            _fraction_check(
                th, "runtime_metrics_recorded", len(refs) - len(bad), len(refs), bad, scope={"task": label},
                what=what,
            )
        )  # fmt: skip
    return checks, usages


# ------------------------------------------------------------------------------------------- DRP-00-10


def run_products(ctx: VerifyContext, th: Thresholds) -> CaseResult:
    """DRP-00-10: every expected release product is there, per dataset type and tract, with a good file."""
    audit = _audit(ctx)
    result = CaseResult("DRP-00-10", th.title("DRP-00-10"), th.section("DRP-00-10"))
    expected = {k: v for k, v in audit.predicted.datasets.items() if not is_bookkeeping(k)}
    good = {
        name: {data_id_key(r.dataId.required) for r in audit.refs.get(name, []) if audit.good(r)}
        for name in expected
    }
    registered = {
        name: {data_id_key(r.dataId.required) for r in audit.refs.get(name, [])} for name in expected
    }
    counts = count_products(
        expected, actual=good, ended=audit.ended, overlaps=audit.overlaps, registered=registered
    )
    result.checks += _count_checks(th, "required_products", counts, by_tract=True, what="good files")
    result.tables["Table 1: expected and actual release products per dataset type and tract"] = [
        c.row() for c in counts
    ]
    bad_files = [
        f"{_name(r)}: {audit.problems[str(r.id)]}" for n in expected for r in audit.refs.get(n, [])
        if not audit.good(r)
    ]  # fmt: skip
    if bad_files:
        result.comments.append(f"{len(bad_files)} registered files not good: {_named(bad_files)}")
    return result
