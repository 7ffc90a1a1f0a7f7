"""``opendrp dashboard``: pages written for a repository with verify runs; one-line errors otherwise."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from tests.verify._history_docs import make_doc

from opendrp.cli.main import cli
from opendrp.verify.history import append_run, store_path


def _lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.strip()]


def test_dashboard_writes_the_pages(tmp_path: Path) -> None:
    append_run(tmp_path, make_doc(created="2026-11-01T00:00:00+00:00", pa1_g=10.0))
    append_run(tmp_path, make_doc(created="2026-11-02T00:00:00+00:00", pa1_g=12.0))
    out = tmp_path / "dash"
    result = CliRunner().invoke(cli, ["dashboard", str(tmp_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["case-DRP-00-15.html", "index.html"]
    (line,) = _lines(result.output)
    assert "2 verify runs in 1 collection(s), 1 regression(s)" in line


def test_no_verify_run_yet_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["dashboard", str(tmp_path), "--out", str(tmp_path / "dash")])
    assert result.exit_code == 1
    (line,) = _lines(result.output)
    assert line.startswith("error:") and "no verify run recorded yet" in line and "opendrp verify" in line
    assert str(store_path(tmp_path)) in line
    assert not (tmp_path / "dash").exists()


def test_no_such_repository_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["dashboard", str(tmp_path / "nope"), "--out", str(tmp_path / "dash")])
    assert result.exit_code == 2
    (line,) = _lines(result.output)
    assert line.startswith("error:") and "no such repository" in line
    assert "Traceback" not in result.output


def test_foreign_store_is_one_line(tmp_path: Path) -> None:
    store_path(tmp_path).parent.mkdir()
    store_path(tmp_path).write_text("not sqlite " * 100)
    result = CliRunner().invoke(cli, ["dashboard", str(tmp_path), "--out", str(tmp_path / "dash")])
    assert result.exit_code == 2
    (line,) = _lines(result.output)
    assert "not an openDRP metrics store" in line
