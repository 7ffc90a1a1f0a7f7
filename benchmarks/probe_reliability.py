"""Reliability probe (issue 13): bad command-line inputs and broken raw files, as a new user would meet them.

Runs the real ``opendrp`` command as subprocesses on a ``tiny`` simulation (made once in ``--workdir``) and
classifies every probe:

``clean``
    exit status != 0 and one line that names what is wrong and where (the file, the option), good files of
    the same command still ingested, nothing leaked or written outside the repository;
``weak``
    exit status != 0 but the message is several lines, silent, or does not say where;
``accepted``
    the bad input was accepted (exit status 0, a broken file registered, a password written, a path outside
    the repository created, a run started on a nonsensical option);
``traceback``
    a Python traceback reached the user.

Raw-file probes ingest each broken file together with good files into a fresh copy of an empty repository;
one batch probe ingests all good and broken files in one command.

usage: python benchmarks/probe_reliability.py [--workdir /tmp/wt13_probe] [--only raw|cli] [--out FILE]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PASSWORD = "Sekr3tPw9"  # noqa: S105 - a probe value, must never be written anywhere
#: the code probed (``--src``: e.g. a snapshot of the code before a change)
SRC = str(ROOT / "src")
CLASSES = ("clean", "weak", "accepted", "traceback")


def opendrp_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("opendrp")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "opendrp.cli.main"]


@dataclasses.dataclass
class Outcome:
    rc: int | None
    stdout: str
    stderr: str
    timed_out: bool = False


def run_cli(args: list[str], *, timeout: float = 120.0, cwd: Path | None = None) -> Outcome:
    """Run ``opendrp ARGS`` in its own session; on timeout kill the whole group (workers included)."""
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        opendrp_cmd() + args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        return Outcome(proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return Outcome(None, out, err, timed_out=True)


def message_lines(text: str) -> list[str]:
    """The lines a user reads as the message: no blank lines, no click usage boiler-plate, no log warnings."""
    lines = []
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith(("Usage:", "Try '")) or s.startswith("WARNING") or "it/s]" in s:
            continue
        lines.append(s)
    return lines


def classify(o: Outcome, *, mention: list[str], accepted: bool = False) -> tuple[str, str]:
    """Classify an outcome of a probe whose input is bad; ``mention``: the message must name one of these."""
    err = o.stderr
    if "Traceback (most recent call last)" in err or "Traceback (most recent call last)" in o.stdout:
        return "traceback", _last(err)
    if accepted or o.rc == 0 or o.timed_out:
        return "accepted", "exit 0" if o.rc == 0 else ("still running" if o.timed_out else _last(err))
    lines = message_lines(err)
    if not lines:
        return "weak", "no message"
    errors = [ln for ln in lines if ln.lower().startswith("error")]
    if len(errors) != 1 and len(lines) != 1:
        return "weak", f"{len(lines)} lines: {lines[0][:160]}"
    msg = errors[0] if errors else lines[0]
    if mention and not any(m.lower() in msg.lower() for m in mention):
        return "weak", f"does not say where ({mention}): {msg[:200]}"
    return "clean", msg[:300]


def _last(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


# ---------------------------------------------------------------------------------------------- set-up
class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.sim = root / "sim"
        self.cases = root / "cases"
        self.empty = root / "empty_repo"
        self.full = root / "full_repo"
        self.norefcat = root / "norefcat_repo"
        self.objects = root / "objects.parquet"

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.sim / "camera.yaml").exists():
            check(["simulate", "tiny", str(self.sim), "--no-progress", "-j", "1"], timeout=600)
        for repo in (self.empty, self.full, self.norefcat):
            if not (repo / "butler.yaml").exists():
                shutil.rmtree(repo, ignore_errors=True)
                check(["init", str(repo), *self.init_args()])
        if not list((self.full / "HSC" / "raw").rglob("*.fits")):
            check(
                [
                    "ingest",
                    str(self.full),
                    str(self.sim / "raw"),
                    "--no-progress",
                    "--refcat",
                    str(self.sim / "refcat" / "refcat.parquet"),
                ]
            )
        if not list((self.norefcat / "HSC" / "raw").rglob("*.fits")):
            check(["ingest", str(self.norefcat), str(self.sim / "raw" / "science"), "--no-progress"])
        if not self.objects.exists():  # an Object-table stand-in for the QA probes: the truth, renamed
            from astropy.table import Table

            truth = Table.read(self.sim / "truth" / "truth.parquet")
            truth.rename_columns(["ra", "dec"], ["coord_ra", "coord_dec"])
            truth["detect_isPrimary"] = True
            for col in [c for c in truth.colnames if c.endswith("_flux")]:
                truth[col.replace("_flux", "_psfFlux")] = truth[col]
                truth[col.replace("_flux", "_psfFluxErr")] = 0.01 * abs(truth[col]) + 1.0
            truth.write(self.objects)
        shutil.rmtree(self.cases, ignore_errors=True)
        self.cases.mkdir()

    def init_args(self) -> list[str]:
        return [
            "--camera",
            str(self.sim / "camera.yaml"),
            "--skymap-config",
            str(self.sim / "sim_config.yaml"),
        ]

    def science(self) -> list[Path]:
        return sorted((self.sim / "raw" / "science").glob("*.fits"))

    def calib(self) -> list[Path]:
        return sorted((self.sim / "raw" / "calib").rglob("*.fits"))

    def case_dir(self, name: str) -> Path:
        d = self.cases / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def fresh_repo(self, name: str) -> Path:
        dest = self.case_dir(name) / "repo"
        shutil.copytree(self.empty, dest)
        return dest

    def full_copy(self, d: Path, source: Path | None = None, name: str = "repo") -> Path:
        """A copy of a repository with ingested raws: files hard-linked, the registry copied."""
        source = source or self.full
        dest = d / name
        shutil.copytree(source, dest, copy_function=os.link)
        for db in dest.glob("gen3.sqlite3*"):
            db.unlink()
            shutil.copy2(source / db.name, db)
        return dest

    def first_visit(self) -> int:
        return int(self.science()[0].name.split("-")[1])


def check(args: list[str], timeout: float = 300) -> None:
    o = run_cli(args, timeout=timeout)
    if o.rc != 0:
        raise SystemExit(f"set-up command failed: opendrp {' '.join(args)}\n{o.stderr}")


def registered_raws(repo: Path) -> set[tuple[int, int]]:
    from lsst.daf.butler import Butler

    butler = Butler.from_config(str(repo))
    try:
        refs = butler.query_datasets("raw", collections="HSC/raw/all", explain=False, limit=None)
    except Exception:
        return set()
    return {(int(r.dataId["exposure"]), int(r.dataId["detector"])) for r in refs}


def exposures_without_raws(repo: Path) -> set[int]:
    from lsst.daf.butler import Butler

    butler = Butler.from_config(str(repo))
    exposures = {int(r.id) for r in butler.query_dimension_records("exposure", explain=False)}
    return exposures - {e for e, _ in registered_raws(repo)}


def key_of(path: Path) -> tuple[int, int]:
    from astropy.io import fits

    with fits.open(path) as hdul:
        h = hdul[0].header if hdul[0].header.get("NAXIS", 0) else hdul[1].header
        return int(h["EXPID"]), int(h["DET-ID"])


# ---------------------------------------------------------------------------------------------- raw files
def _cards(cards: dict[str, Any]) -> dict[str, Any]:
    """Keyword spelling (``EXP_ID`` -> ``EXP-ID``); a new EXPID gets its own EXP-ID unless one is given."""
    out = {
        k.replace("_", "-")
        if k in ("EXP_ID", "DET_ID", "DATE_OBS", "DATA_TYP", "BORE_RA", "BORE_DEC")
        else k: v
        for k, v in cards.items()
    }
    if "EXPID" in out and "EXP-ID" not in out:
        out["EXP-ID"] = f"HSCP{out['EXPID']}"
    return out


def edit_header(src: Path, dest: Path, **cards: Any) -> Path:
    from astropy.io import fits

    with fits.open(src) as hdul:
        for k, v in _cards(cards).items():
            hdul[0].header[k] = v
        hdul.writeto(dest, overwrite=True)
    return dest


def new_data(src: Path, dest: Path, data: Any, *, extra_hdu: bool = False, **cards: Any) -> Path:
    from astropy.io import fits

    hdr = fits.getheader(src)
    for k in ("BZERO", "BSCALE"):
        hdr.remove(k, ignore_missing=True)
    for k, v in _cards(cards).items():
        hdr[k] = v
    hdus = [fits.PrimaryHDU(data=data, header=hdr)]
    if extra_hdu:
        import numpy as np

        hdus.append(fits.ImageHDU(np.zeros((4, 4), np.float32), name="EXTRA"))
    fits.HDUList(hdus).writeto(dest, overwrite=True)
    return dest


@dataclasses.dataclass
class RawCase:
    name: str
    make: Callable[[Path, Workspace], list[Path]]  # writes the broken file(s) in a directory, returns them
    expect_ingested: int = 0  # of the broken files: 0 (all rejected) or len (good files with odd names)
    pre_ingest: bool = False  # ingest the partner good file in a first command (a re-delivery)
    as_directory: bool = False  # pass the directory, not the files


def raw_cases() -> list[RawCase]:
    import numpy as np
    from astropy.io import fits

    def sci(ws: Workspace, i: int = 0) -> Path:
        return ws.science()[i]

    def shape(ws: Workspace) -> tuple[int, int]:
        return tuple(fits.getdata(sci(ws)).shape)  # type: ignore[return-value]

    cases = [
        RawCase(
            "exp-id clash",
            lambda d, ws: [
                edit_header(
                    sci(ws, 0), d / "clash.fits", EXPID=5001, EXP_ID=fits.getheader(sci(ws, 1))["EXP-ID"]
                )
            ],
        ),
        RawCase(
            "DATE-OBS 9999",
            lambda d, ws: [
                edit_header(
                    sci(ws),
                    d / "y9999.fits",
                    EXPID=5002,
                    EXP_ID="HSC5002",
                    DATE_OBS="9999-12-31T23:59:59.000",
                )
            ],
        ),
        RawCase(
            "DATE-OBS year 1",
            lambda d, ws: [
                edit_header(
                    sci(ws), d / "y1.fits", EXPID=5003, EXP_ID="HSC5003", DATE_OBS="0001-01-01T00:00:00.000"
                )
            ],
        ),
        RawCase(
            "re-delivered EXPTIME",
            lambda d, ws: [
                edit_header(
                    sci(ws), d / "redelivered.fits", EXPTIME=float(fits.getheader(sci(ws))["EXPTIME"]) + 5.0
                )
            ],
            pre_ingest=True,
        ),
        RawCase(
            "re-delivered other detector, EXPTIME",
            lambda d, ws: [
                edit_header(
                    _same_exposure_other_detector(ws),
                    d / "redelivered2.fits",
                    EXPTIME=float(fits.getheader(sci(ws))["EXPTIME"]) + 5.0,
                )
            ],
            pre_ingest=True,
        ),
        RawCase(
            "3-D array",
            lambda d, ws: [
                new_data(sci(ws), d / "cube.fits", np.zeros((2, *shape(ws)), np.int16), EXPID=5004)
            ],
        ),
        RawCase(
            "float DET-ID 49.7",
            lambda d, ws: [
                edit_header(sci(ws), d / "det497.fits", EXPID=5005, EXP_ID="HSC5005", DET_ID=49.7)
            ],
        ),
        RawCase(
            "float EXPID 5006.5",
            lambda d, ws: [edit_header(sci(ws), d / "exp5006.fits", EXPID=5006.5, EXP_ID="HSC5006")],
        ),
        RawCase("string EXPID", lambda d, ws: [edit_header(sci(ws), d / "expstr.fits", EXPID="abc")]),
        RawCase(
            "EXPID 2**31",
            lambda d, ws: [edit_header(sci(ws), d / "exphuge.fits", EXPID=2**31, EXP_ID="HSCHUGE")],
        ),
        RawCase(
            "EXPID 2**40",
            lambda d, ws: [edit_header(sci(ws), d / "exphuge2.fits", EXPID=2**40, EXP_ID="HSCHUGE2")],
        ),
        RawCase("EXPID -1", lambda d, ws: [edit_header(sci(ws), d / "expneg.fits", EXPID=-1)]),
        RawCase("DET-ID -1", lambda d, ws: [edit_header(sci(ws), d / "detneg.fits", EXPID=5007, DET_ID=-1)]),
        RawCase(
            "BITPIX 32",
            lambda d, ws: [
                new_data(
                    sci(ws), d / "int32.fits", np.zeros(shape(ws), np.int32), EXPID=5008, EXP_ID="HSC5008"
                )
            ],
        ),
        RawCase(
            "BITPIX -64",
            lambda d, ws: [
                new_data(
                    sci(ws), d / "f64.fits", np.zeros(shape(ws), np.float64), EXPID=5009, EXP_ID="HSC5009"
                )
            ],
        ),
        RawCase(
            "BITPIX 8",
            lambda d, ws: [
                new_data(sci(ws), d / "u8.fits", np.zeros(shape(ws), np.uint8), EXPID=5010, EXP_ID="HSC5010")
            ],
        ),
        RawCase(
            "extra HDU",
            lambda d, ws: [
                new_data(
                    sci(ws),
                    d / "extra.fits",
                    fits.getdata(sci(ws)),
                    extra_hdu=True,
                    EXPID=5011,
                    EXP_ID="HSC5011",
                )
            ],
        ),
        RawCase(
            "no primary data",
            lambda d, ws: [new_data(sci(ws), d / "nodata.fits", None, EXPID=5012, EXP_ID="HSC5012")],
        ),
        RawCase("truncated", lambda d, ws: [_truncated(sci(ws), d / "trunc.fits")]),
        RawCase("empty file", lambda d, ws: [_write(d / "empty.fits", b"")]),
        RawCase("not FITS", lambda d, ws: [_write(d / "notes.fits", b"hello world\n")]),
        RawCase("missing FILTER01", lambda d, ws: [_delete_card(sci(ws), d / "nofilter.fits", "FILTER01")]),
        RawCase(
            "unknown DATA-TYP",
            lambda d, ws: [edit_header(sci(ws), d / "datatyp.fits", EXPID=5013, DATA_TYP="WHATEVER")],
        ),
        RawCase(
            "unknown filter",
            lambda d, ws: [edit_header(sci(ws), d / "filt.fits", EXPID=5014, FILTER01="HSC-Q")],
        ),
        RawCase(
            "wrong INSTRUME",
            lambda d, ws: [edit_header(sci(ws), d / "inst.fits", EXPID=5015, INSTRUME="LSSTCam")],
        ),
        RawCase(
            "unknown DET-ID", lambda d, ws: [edit_header(sci(ws), d / "det42.fits", EXPID=5016, DET_ID=42)]
        ),
        RawCase(
            "wrong shape",
            lambda d, ws: [new_data(sci(ws), d / "shape.fits", np.zeros((10, 10), np.int16), EXPID=5017)],
        ),
        RawCase(
            "negative EXPTIME",
            lambda d, ws: [edit_header(sci(ws), d / "exptneg.fits", EXPID=5018, EXPTIME=-3.0)],
        ),
        RawCase(
            "NaN EXPTIME",
            lambda d, ws: [
                edit_header(sci(ws), d / "exptnan.fits", EXPID=5019, EXP_ID="HSC5019", EXPTIME="nan")
            ],
        ),
        RawCase(
            "DATE-OBS date only",
            lambda d, ws: [
                edit_header(sci(ws), d / "dateonly.fits", EXPID=5020, EXP_ID="HSC5020", DATE_OBS="2026-03-01")
            ],
        ),
        RawCase(
            "DATE-OBS garbage",
            lambda d, ws: [edit_header(sci(ws), d / "dategarb.fits", EXPID=5021, DATE_OBS="yesterday")],
        ),
        RawCase(
            "BORE-DEC 95", lambda d, ws: [edit_header(sci(ws), d / "dec95.fits", EXPID=5022, BORE_DEC=95.0)]
        ),
        RawCase(
            "BORE-RA inf",
            lambda d, ws: [
                edit_header(sci(ws), d / "rainf.fits", EXPID=5023, EXP_ID="HSC5023", BORE_RA="inf")
            ],
        ),
        RawCase("same EXPID+DET-ID twice", lambda d, ws: [_copy(sci(ws), d / "dup_copy.fits")]),
        RawCase("file does not exist", lambda d, ws: [d / "missing.fits"]),
        RawCase(
            ".FITS upper case (directory)",
            lambda d, ws: [_renamed(ws, 2, d / "upper.FITS", 6001)],
            expect_ingested=1,
            as_directory=True,
        ),
        RawCase(
            ".fit (directory)",
            lambda d, ws: [_renamed(ws, 2, d / "short.fit", 6002)],
            expect_ingested=1,
            as_directory=True,
        ),
        RawCase(
            ".fits.fz (directory)",
            lambda d, ws: [_fpack(ws, d / "packed.fits.fz", 6003)],
            expect_ingested=1,
            as_directory=True,
        ),
    ]
    return cases


def _same_exposure_other_detector(ws: Workspace) -> Path:
    """A file of the first science file's exposure, on another detector (not ingested with it)."""
    e0, d0 = key_of(ws.science()[0])
    return next(p for p in ws.science() if key_of(p)[0] == e0 and key_of(p)[1] != d0)


def _other_exposure(ws: Workspace) -> Path:
    """A science file of another exposure than the first science file's."""
    e0 = key_of(ws.science()[0])[0]
    return next(p for p in ws.science() if key_of(p)[0] != e0)


def _mkdir(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _copy(src: Path, dest: Path) -> Path:
    shutil.copyfile(src, dest)
    return dest


def _truncated(src: Path, dest: Path) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[: len(data) // 2])
    return dest


def _delete_card(src: Path, dest: Path, key: str) -> Path:
    from astropy.io import fits

    with fits.open(src) as hdul:
        del hdul[0].header[key]
        hdul[0].header["EXPID"] = 5030
        hdul.writeto(dest, overwrite=True)
    return dest


def _renamed(ws: Workspace, i: int, dest: Path, expid: int) -> Path:
    return edit_header(ws.science()[i], dest, EXPID=expid, EXP_ID=f"HSC{expid}")


def _fpack(ws: Workspace, dest: Path, expid: int) -> Path:
    from astropy.io import fits

    with fits.open(ws.science()[3]) as hdul:
        hdr = hdul[0].header.copy()
        data = hdul[0].data.copy()
    hdr["EXPID"] = expid
    hdr["EXP-ID"] = f"HSC{expid}"
    hdr.remove("BZERO", ignore_missing=True)
    hdr.remove("BSCALE", ignore_missing=True)
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data=data, header=hdr)]).writeto(dest, overwrite=True)
    return dest


def probe_raw(ws: Workspace, case: RawCase) -> dict[str, Any]:
    d = ws.case_dir(case.name)
    files_dir = d / "files"
    files_dir.mkdir()
    repo = ws.fresh_repo(case.name)
    bad = case.make(files_dir, ws)
    good = ws.science()[:2] if not case.pre_ingest else [_other_exposure(ws)]
    pre: set[tuple[int, int]] = set()
    if case.pre_ingest:
        run_cli(["ingest", str(repo), str(ws.science()[0]), "--no-progress"])
        pre = registered_raws(repo)
    args = [str(files_dir)] if case.as_directory else [str(p) for p in bad]
    o = run_cli(["ingest", str(repo), *args, *map(str, good), "--no-progress"])
    have = registered_raws(repo)
    good_keys = {key_of(p) for p in good}
    lost = good_keys - have
    orphans = exposures_without_raws(repo)
    if case.expect_ingested:
        bad_keys = {key_of(p) for p in bad}
        ingested = bad_keys <= have
        if "Traceback" in o.stderr:
            cls, msg = "traceback", _last(o.stderr)
        elif lost:
            cls, msg = "weak", f"good files lost: {sorted(lost)}"
        elif ingested and o.rc == 0:
            cls, msg = "clean", "ingested"
        elif not ingested and o.rc != 0 and any(p.name in o.stderr for p in bad):
            cls, msg = "clean", _last(o.stderr)
        else:
            cls, msg = "weak", f"silently skipped (rc={o.rc}): {_last(o.stdout)}"
    else:
        cls, msg = classify(o, mention=[p.name for p in bad])
        if cls != "traceback":
            if case.name == "same EXPID+DET-ID twice":
                pass  # the copy and the original share a key: one of them is rejected
            elif any(key_of_safe(p) in have - pre and key_of_safe(p) not in good_keys for p in bad):
                cls, msg = "accepted", "the broken file was registered"
            elif case.pre_ingest and o.rc == 0:
                cls, msg = "accepted", "exit 0"
        if cls == "clean" and lost:
            cls, msg = "weak", f"good files of the same command not ingested: {sorted(lost)}; {msg}"
        if cls == "clean" and orphans:
            cls, msg = "weak", f"exposures left without raws: {sorted(orphans)}; {msg}"
    return {
        "probe": case.name,
        "kind": "raw",
        "class": cls,
        "rc": o.rc,
        "message": msg,
        "good_lost": sorted(lost),
        "orphan_exposures": sorted(orphans),
    }


def key_of_safe(p: Path) -> tuple[int, int] | None:
    try:
        return key_of(p)
    except Exception:
        return None


def probe_batch(ws: Workspace) -> dict[str, Any]:
    """All 63 good files and every broken file of `raw_cases` (the rejected kinds) in one ingest command."""
    d = ws.case_dir("batch")
    files_dir = d / "files"
    files_dir.mkdir()
    repo = ws.fresh_repo("batch")
    bad: list[Path] = []
    for case in raw_cases():
        if case.expect_ingested or case.pre_ingest or case.name in ("file does not exist",):
            continue
        sub = files_dir / re.sub(r"[^A-Za-z0-9]", "_", case.name)
        sub.mkdir()
        bad += case.make(sub, ws)
    good = ws.science() + ws.calib()
    o = run_cli(["ingest", str(repo), *map(str, good), *map(str, bad), "--no-progress"], timeout=600)
    have = registered_raws(repo)
    lost = {key_of(p) for p in good} - have
    errors = [ln for ln in o.stderr.splitlines() if ln.startswith("error")]
    if "Traceback" in o.stderr:
        cls, msg = "traceback", _last(o.stderr)
    elif lost:
        cls, msg = "weak", f"{len(lost)} of {len(good)} good files not ingested"
    elif o.rc == 0:
        cls, msg = "accepted", "exit 0"
    elif len(errors) < len(bad) - 1:  # the duplicate copy pair gives one line
        cls, msg = "weak", f"{len(errors)} error lines for {len(bad)} broken files"
    else:
        cls, msg = "clean", f"{len(good)} good files ingested, {len(errors)} one-line rejections"
    return {
        "probe": f"batch: {len(good)} good + {len(bad)} broken",
        "kind": "raw",
        "class": cls,
        "rc": o.rc,
        "message": msg,
        "good_lost": len(lost),
    }


# ---------------------------------------------------------------------------------------------- CLI inputs
@dataclasses.dataclass
class CliCase:
    name: str
    args: Callable[[Workspace, Path], list[str]]  # (workspace, case directory) -> opendrp arguments
    mention: list[str]
    after: Callable[[Workspace, Path, Outcome], tuple[str, str] | None] | None = None
    timeout: float = 90.0


def _camera_yaml(
    ws: Workspace, d: Path, edit: Callable[[dict[str, Any]], None] | None = None, text: str | None = None
) -> str:
    import yaml

    path = d / "camera.yaml"
    if text is not None:
        path.write_text(text)
    else:
        data = yaml.safe_load((ws.sim / "camera.yaml").read_text())
        if edit is not None:
            edit(data)
        path.write_text(yaml.safe_dump(data))
    return str(path)


def _init_with_camera(edit: Callable[[dict[str, Any]], None] | None = None, text: str | None = None):  # type: ignore[no-untyped-def]
    def args(ws: Workspace, d: Path) -> list[str]:
        return [
            "init",
            str(d / "repo"),
            "--camera",
            _camera_yaml(ws, d, edit, text),
            "--skymap-config",
            str(ws.sim / "sim_config.yaml"),
        ]

    return args


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        node: Any = data
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def _leaks_password(ws: Workspace, d: Path, o: Outcome) -> tuple[str, str] | None:
    if PASSWORD in o.stdout or PASSWORD in o.stderr:
        return "accepted", "the password is printed"
    for p in d.rglob("*"):
        if p.is_file() and PASSWORD.encode() in p.read_bytes():
            return (
                "accepted",
                f"the password is written to {p.relative_to(d)} (mode {oct(p.stat().st_mode)[-3:]})",
            )
    return None


def _nothing_outside(ws: Workspace, d: Path, o: Outcome) -> tuple[str, str] | None:
    """The repository is d/a/b/repo: nothing may appear in d outside d/a/b/repo and the inputs."""
    allowed = {d / "a" / "b" / "repo", d / "camera.yaml", d / "a", d / "a" / "b"}
    for p in d.rglob("*"):
        if any(p == a or a in p.parents for a in allowed if a.name == "repo") or p in allowed:
            continue
        return "accepted", f"created outside the repository: {p.relative_to(d)}"
    return None


def _init_leaves_nothing(ws: Workspace, d: Path, o: Outcome) -> tuple[str, str] | None:
    repo = d / "repo"
    if repo.exists() and any(repo.iterdir()):
        retry = run_cli(["init", str(repo), *ws.init_args()])
        if retry.rc != 0:
            return "weak", f"a failed init left {repo.name}/ behind and a retry fails: {_last(retry.stderr)}"
    return None


def _escaping_camera(ws: Workspace, d: Path) -> list[str]:
    repo = d / "a" / "b" / "repo"
    cam = _camera_yaml(ws, d, _set("name", "../../x"))
    o = run_cli(["init", str(repo), "--camera", cam, "--skymap-config", str(ws.sim / "sim_config.yaml")])
    if o.rc != 0:
        (d / "init_stderr.txt").write_text(o.stderr)
        return ["init", str(repo), "--camera", cam, "--skymap-config", str(ws.sim / "sim_config.yaml")]
    f = edit_header(ws.science()[0], d / "a" / "b" / "x.fits", INSTRUME="../../x")
    shutil.move(f, d / "camera_x.fits")
    return ["ingest", str(repo), str(d / "camera_x.fits"), "--no-progress"]


def _nothing_outside_cam(ws: Workspace, d: Path, o: Outcome) -> tuple[str, str] | None:
    for p in d.rglob("*"):
        rel = p.relative_to(d)
        if rel.parts[:3] == ("a", "b", "repo") or str(rel) in (
            "camera.yaml",
            "camera_x.fits",
            "a",
            "a/b",
            "init_stderr.txt",
        ):
            continue
        return "accepted", f"created outside the repository: {rel}"
    return None


def _output_escape_args(ws: Workspace, d: Path) -> list[str]:
    (d / "a" / "b").mkdir(parents=True, exist_ok=True)
    repo = ws.full_copy(d / "a" / "b")
    return [
        "run",
        str(repo),
        "--steps",
        "drp",
        "--output",
        "../../x",
        "-j",
        "1",
        "--no-progress",
        "--where",
        f"visit = {ws.first_visit()} AND detector = 49",
    ]


def _nothing_outside_run(ws: Workspace, d: Path, o: Outcome) -> tuple[str, str] | None:
    for p in d.rglob("*"):
        rel = p.relative_to(d)
        if rel.parts[:3] == ("a", "b", "repo") or str(rel) in ("a", "a/b"):
            continue
        return "accepted", f"created outside the repository: {rel}"
    return None


def cli_cases() -> list[CliCase]:  # noqa: C901 - a table
    def full(ws: Workspace, d: Path) -> str:
        return str(ws.full)

    def run_args(*extra: str) -> Callable[[Workspace, Path], list[str]]:
        return lambda ws, d: ["run", str(ws.full_copy(d)), "--no-progress", *extra]

    def txt(d: Path, name: str, content: str = "this is not a table\n") -> str:
        (d / name).write_text(content)
        return str(d / name)

    pg = "postgresql://opendrp@127.0.0.1:1/nodb"
    cases = [
        # simulate
        CliCase(
            "simulate unknown preset", lambda ws, d: ["simulate", "nopreset", str(d / "out")], ["nopreset"]
        ),
        CliCase(
            "simulate YAML syntax error",
            lambda ws, d: ["simulate", txt(d, "sim.yaml", "seed: [1, 2\n"), str(d / "out")],
            ["sim.yaml"],
        ),
        CliCase(
            "simulate YAML not a mapping",
            lambda ws, d: ["simulate", txt(d, "sim.yaml", "- 1\n- 2\n"), str(d / "out")],
            ["sim.yaml"],
        ),
        CliCase(
            "simulate unknown field",
            lambda ws, d: ["simulate", txt(d, "sim.yaml", "sead: 3\n"), str(d / "out")],
            ["sead"],
        ),
        CliCase(
            "simulate negative n_visits",
            lambda ws, d: ["simulate", txt(d, "sim.yaml", "bands:\n  g: {n_visits: -2}\n"), str(d / "out")],
            ["n_visits"],
        ),
        CliCase(
            "simulate --show-preset unknown", lambda ws, d: ["simulate", "--show-preset", "nope"], ["nope"]
        ),
        CliCase("simulate missing OUTDIR", lambda ws, d: ["simulate", "tiny"], ["OUTDIR"]),
        CliCase(
            "simulate -j 0",
            lambda ws, d: ["simulate", "tiny", str(d / "out"), "-j", "0"],
            ["-j", "process"],
            timeout=30,
        ),
        CliCase("simulate OUTDIR is a file", lambda ws, d: ["simulate", "tiny", txt(d, "afile")], ["afile"]),
        # init: camera
        CliCase(
            "init unknown camera", lambda ws, d: ["init", str(d / "repo"), "--camera", "nocam"], ["nocam"]
        ),
        CliCase(
            "init camera YAML syntax error",
            _init_with_camera(text="name: HSC\nccd: {nx: 2\n"),
            ["camera.yaml"],
        ),
        CliCase("init camera YAML not a mapping", _init_with_camera(text="- a\n"), ["camera.yaml"]),
        CliCase("init camera no detectors", _init_with_camera(_set("detectors", [])), ["detectors"]),
        CliCase(
            "init camera duplicate filter",
            _init_with_camera(lambda c: c["filters"].append(dict(c["filters"][0]))),
            ["HSC-G", "filter"],
        ),
        CliCase(
            "init camera duplicate detector name",
            _init_with_camera(lambda c: c["detectors"].append({**c["detectors"][0], "id": 77})),
            ["name", "detector"],
        ),
        CliCase("init camera nx 0", _init_with_camera(_set("ccd.nx", 0)), ["nx"]),
        CliCase("init camera ny -5", _init_with_camera(_set("ccd.ny", -5)), ["ny"]),
        CliCase("init camera nx float", _init_with_camera(_set("ccd.nx", 2048.5)), ["nx"]),
        CliCase("init camera nx string", _init_with_camera(_set("ccd.nx", "big")), ["nx"]),
        CliCase(
            "init camera amplifier count 0", _init_with_camera(_set("ccd.amplifiers.count", 0)), ["count"]
        ),
        CliCase("init camera prescan -1", _init_with_camera(_set("ccd.amplifiers.prescan", -1)), ["prescan"]),
        CliCase("init camera gain 0", _init_with_camera(_set("ccd.amplifiers.gain", 0.0)), ["gain"]),
        CliCase("init camera gain -3", _init_with_camera(_set("ccd.amplifiers.gain.1", -3.0)), ["gain"]),
        CliCase(
            "init camera gain 3 values",
            _init_with_camera(_set("ccd.amplifiers.gain", [3.0, 3.0, 3.0])),
            ["gain"],
        ),
        CliCase(
            "init camera read noise -1",
            _init_with_camera(_set("ccd.amplifiers.read_noise", -1.0)),
            ["read_noise"],
        ),
        CliCase(
            "init camera saturation 0",
            _init_with_camera(_set("ccd.amplifiers.saturation", 0)),
            ["saturation"],
        ),
        CliCase(
            "init camera saturation 1e9",
            _init_with_camera(_set("ccd.amplifiers.saturation", 1.0e9)),
            ["saturation"],
        ),
        CliCase(
            "init camera saturation nan",
            _init_with_camera(_set("ccd.amplifiers.saturation", float("nan"))),
            ["saturation"],
        ),
        CliCase(
            "init camera 3 amplifier names",
            _init_with_camera(_set("ccd.amplifiers.names", ["A", "B", "C"])),
            ["names"],
        ),
        CliCase(
            "init camera duplicate amplifier names",
            _init_with_camera(_set("ccd.amplifiers.names", ["A", "A", "C", "D"])),
            ["names"],
        ),
        CliCase(
            "init camera empty amplifier name",
            _init_with_camera(_set("ccd.amplifiers.names", ["A", "", "C", "D"])),
            ["names"],
        ),
        CliCase(
            "init camera flip_x 2 values",
            _init_with_camera(_set("ccd.amplifiers.flip_x", [True, False])),
            ["flip_x"],
        ),
        CliCase("init camera detector id -1", _init_with_camera(_set("detectors.0.id", -1)), ["id"]),
        CliCase("init camera detector id 49.7", _init_with_camera(_set("detectors.0.id", 49.7)), ["id"]),
        CliCase("init camera detector id 2**40", _init_with_camera(_set("detectors.0.id", 2**40)), ["id"]),
        CliCase("init camera detector id string", _init_with_camera(_set("detectors.0.id", "x")), ["id"]),
        CliCase("init camera pixel size 0", _init_with_camera(_set("pixel_size_mm", 0)), ["pixel_size_mm"]),
        CliCase(
            "init camera plate scale -1",
            _init_with_camera(_set("plate_scale_arcsec_per_mm", -1)),
            ["plate_scale"],
        ),
        CliCase("init camera missing ccd", _init_with_camera(lambda c: c.pop("ccd")), ["ccd"]),
        CliCase("init camera empty name", _init_with_camera(_set("name", "")), ["name"]),
        CliCase("init camera name with slash", _init_with_camera(_set("name", "a/b")), ["name"]),
        CliCase(
            "init camera name ../../x (escape)",
            _escaping_camera,
            ["name", "INSTRUME", "../../x"],
            after=_nothing_outside_cam,
        ),
        CliCase("init camera no filters", _init_with_camera(_set("filters", [])), ["filters"]),
        CliCase("init camera filter without band", _init_with_camera(_set("filters.0.band", "")), ["band"]),
        # init: repository, sky map, registry
        CliCase(
            "init on an existing repository",
            lambda ws, d: ["init", str(ws.empty), *ws.init_args()],
            ["already"],
        ),
        CliCase("init REPO is a file", lambda ws, d: ["init", txt(d, "afile"), *ws.init_args()], ["afile"]),
        CliCase(
            "init sky map YAML syntax error",
            lambda ws, d: [
                "init",
                str(d / "repo"),
                "--camera",
                str(ws.sim / "camera.yaml"),
                "--skymap-config",
                txt(d, "sky.yaml", "skymap: {a: [\n"),
            ],
            ["sky.yaml"],
            after=_init_leaves_nothing,
        ),
        CliCase(
            "init sky map bad value",
            lambda ws, d: [
                "init",
                str(d / "repo"),
                "--camera",
                str(ws.sim / "camera.yaml"),
                "--skymap-config",
                txt(d, "sky.yaml", "skymap: {patch_inner_pixels: -4}\n"),
            ],
            ["patch_inner_pixels"],
            after=_init_leaves_nothing,
        ),
        CliCase(
            "init sky map unknown field",
            lambda ws, d: [
                "init",
                str(d / "repo"),
                "--camera",
                str(ws.sim / "camera.yaml"),
                "--skymap-config",
                txt(d, "sky.yaml", "skymap: {patch_size: 3}\n"),
            ],
            ["patch_size"],
            after=_init_leaves_nothing,
        ),
        CliCase(
            "init PostgreSQL unreachable",
            lambda ws, d: ["init", str(d / "repo"), *ws.init_args(), "--registry-db", pg],
            ["127.0.0.1", "registry"],
            after=_init_leaves_nothing,
        ),
        CliCase(
            "init registry URL with password (user info)",
            lambda ws, d: [
                "init",
                str(d / "repo"),
                *ws.init_args(),
                "--registry-db",
                f"postgresql://opendrp:{PASSWORD}@127.0.0.1:1/nodb",
            ],
            ["registry"],
            after=_leaks_password,
        ),
        CliCase(
            "init registry URL with ?password=",
            lambda ws, d: [
                "init",
                str(d / "repo"),
                *ws.init_args(),
                "--registry-db",
                f"{pg}?password={PASSWORD}",
            ],
            ["registry"],
            after=_leaks_password,
        ),
        CliCase(
            "init registry URL garbage",
            lambda ws, d: ["init", str(d / "repo"), *ws.init_args(), "--registry-db", "not a url"],
            ["registry"],
            after=_init_leaves_nothing,
        ),
        CliCase(
            "init registry URL unknown dialect",
            lambda ws, d: ["init", str(d / "repo"), *ws.init_args(), "--registry-db", "oracle://u@h/db"],
            ["registry"],
            after=_init_leaves_nothing,
        ),
        # ingest
        CliCase(
            "ingest into no repository",
            lambda ws, d: ["ingest", str(d / "nothing"), str(ws.science()[0])],
            ["nothing"],
        ),
        CliCase("ingest no files", lambda ws, d: ["ingest", str(ws.empty)], ["files"]),
        CliCase(
            "ingest empty directory",
            lambda ws, d: ["ingest", str(ws.fresh_repo("ingest empty directory")), str(d)],
            ["ingest_empty_directory", "no raw"],
        ),
        CliCase(
            "ingest --refcat not parquet",
            lambda ws, d: [
                "ingest",
                str(ws.fresh_repo("ingest --refcat not parquet")),
                "--refcat",
                txt(d, "ref.parquet"),
            ],
            ["ref.parquet"],
        ),
        CliCase(
            "ingest --refcat text file",
            lambda ws, d: [
                "ingest",
                str(ws.fresh_repo("ingest --refcat text file")),
                "--refcat",
                txt(d, "ref.txt"),
            ],
            ["ref.txt"],
        ),
        CliCase(
            "ingest --refcat missing columns",
            lambda ws, d: [
                "ingest",
                str(ws.fresh_repo("ingest --refcat missing columns")),
                "--refcat",
                str(ws.sim / "truth" / "visits.parquet"),
            ],
            ["visits.parquet"],
        ),
        CliCase(
            "ingest --refcat empty directory",
            lambda ws, d: [
                "ingest",
                str(ws.fresh_repo("ingest --refcat empty directory")),
                "--refcat",
                _mkdir(d / "shards"),
            ],
            ["files"],
        ),
        # run
        CliCase("run no repository", lambda ws, d: ["run", str(d / "nothing")], ["nothing"]),
        CliCase(
            "run --where syntax error", run_args("--steps", "drp", "--where", "band = = 'g'"), ["--where"]
        ),
        CliCase(
            "run --where unknown dimension",
            run_args("--steps", "drp", "--where", "colour = 'g'"),
            ["--where", "colour"],
        ),
        CliCase(
            "run --where unknown band value",
            run_args("--steps", "drp", "--where", "band = 'q'"),
            ["--where", "nothing", "no data"],
        ),
        CliCase(
            "run --where selects nothing",
            run_args("--steps", "drp", "--where", "visit = 999999"),
            ["--where", "nothing", "no data"],
        ),
        CliCase(
            "run --where unterminated string", run_args("--steps", "drp", "--where", "band = 'g"), ["--where"]
        ),
        CliCase("run -j 0", run_args("-j", "0", "--steps", "drp"), ["-j"], timeout=40),
        CliCase("run -j -3", run_args("-j", "-3", "--steps", "drp"), ["-j"], timeout=40),
        CliCase("run --retries -1", run_args("--retries", "-1", "--steps", "drp"), ["--retries"], timeout=40),
        CliCase("run --steps ''", run_args("--steps", ""), ["--steps"], timeout=40),
        CliCase("run --steps ','", run_args("--steps", ","), ["--steps"], timeout=40),
        CliCase("run --steps foo", run_args("--steps", "foo"), ["foo"]),
        CliCase(
            "run --output ../../x (escape)",
            _output_escape_args,
            ["--output", "../../x"],
            after=_nothing_outside_run,
            timeout=150,
        ),
        CliCase(
            "run --output with spaces",
            run_args("--steps", "drp", "--output", "my run", "--where", "visit = 999999"),
            ["--output"],
        ),
        CliCase(
            "run --output existing RUN collection",
            run_args("--steps", "drp", "--output", "HSC/raw/all"),
            ["--output", "HSC/raw/all"],
            timeout=40,
        ),
        CliCase(
            "run --site unknown",
            run_args("--executor", "parsl", "--site", "nosite", "--steps", "drp"),
            ["nosite", "--site"],
            timeout=60,
        ),
        CliCase(
            "run --site YAML syntax error",
            lambda ws, d: [
                "run",
                str(ws.full_copy(d)),
                "--no-progress",
                "--executor",
                "parsl",
                "--site",
                txt(d, "site.yaml", "a: [\n"),
                "--steps",
                "drp",
            ],
            ["site.yaml"],
            timeout=60,
        ),
        CliCase(
            "run with no reference catalog",
            lambda ws, d: [
                "run",
                str(ws.full_copy(d, ws.norefcat)),
                "--no-progress",
                "--steps",
                "drp",
                "-j",
                "1",
                "--where",
                f"visit = {ws.first_visit()} AND detector = 49",
            ],
            ["reference catalog", "refcat"],
            timeout=150,
        ),
        CliCase(
            "run --export-objects is_a_directory",
            lambda ws, d: [
                "run",
                str(ws.full_copy(d)),
                "--no-progress",
                "--steps",
                "drp",
                "--where",
                "visit = 999999",
                "--export-objects",
                str(d),
            ],
            ["--export-objects", "is_a_directory"],
        ),
        # verify (the `qa` command of the baseline became `opendrp verify`)
        CliCase(
            "verify unknown collection",
            lambda ws, d: [
                "verify",
                str(ws.full),
                "--collection",
                "nope/x",
                "--out",
                str(d / "v"),
                "--no-plots",
            ],
            ["nope/x"],
        ),
        # demo
        CliCase(
            "demo unknown preset",
            lambda ws, d: ["demo", "--preset", "nope", "--out", str(d / "demo")],
            ["nope"],
        ),
    ]
    return cases


def probe_cli(ws: Workspace, case: CliCase) -> dict[str, Any]:
    d = ws.case_dir(case.name)
    args = case.args(ws, d)
    o = run_cli(args, timeout=case.timeout)
    cls, msg = classify(o, mention=case.mention)
    if case.after is not None and cls != "traceback":
        verdict = case.after(ws, d, o)
        if verdict is not None:
            cls, msg = verdict
    return {"probe": case.name, "kind": "cli", "class": cls, "rc": o.rc, "message": msg}


def probe_ctrl_c(ws: Workspace) -> dict[str, Any]:
    """SIGINT to the process group of a running `opendrp run -j 2` (what Ctrl-C in a terminal does)."""
    d = ws.case_dir("ctrl-c")
    repo = ws.full_copy(d)
    env = {**os.environ, "PYTHONPATH": SRC}
    # output to files, as to a terminal: a pipe nobody reads while the run goes on could block it
    with open(d / "stdout", "w") as fout, open(d / "stderr", "w") as ferr:
        proc = subprocess.Popen(
            opendrp_cmd() + ["run", str(repo), "-j", "2", "--no-progress"],
            stdout=fout,
            stderr=ferr,
            env=env,
            start_new_session=True,
        )
        time.sleep(25)
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.perf_counter()
        try:
            proc.wait(timeout=60)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            timed_out = True
    stop_s = time.perf_counter() - t0
    err = (d / "stderr").read_text()
    o = Outcome(proc.returncode, (d / "stdout").read_text(), err, timed_out=timed_out)
    n_tb = err.count("Traceback (most recent call last)")
    lines = message_lines(err)
    if n_tb:
        cls, msg = "traceback", f"{n_tb} tracebacks, {len(lines)} lines"
    elif o.timed_out:
        cls, msg = "weak", "did not stop within 60 s of SIGINT"
    elif len(lines) == 1 and o.rc != 0:
        cls, msg = "clean", f"stopped {stop_s:.1f} s after SIGINT: {lines[0][:250]}"
    else:
        cls, msg = "weak", f"rc={o.rc}, {len(lines)} lines: {lines[:1]}"
    return {"probe": "Ctrl-C during run -j 2", "kind": "cli", "class": cls, "rc": o.rc, "message": msg}


# ---------------------------------------------------------------------------------------------- main
def summarize(results: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    out = {}
    for kind in ("cli", "raw"):
        counts = Counter(r["class"] for r in results if r["kind"] == kind)
        out[kind] = {"tried": sum(counts.values()), **{c: counts.get(c, 0) for c in CLASSES}}
    return out


def main() -> None:
    global SRC
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/wt13_probe", type=Path)
    ap.add_argument("--only", choices=["raw", "cli"])
    ap.add_argument("--match", default="", help="only probes whose name contains this")
    ap.add_argument("--no-ctrl-c", action="store_true")
    ap.add_argument(
        "--update", action="store_true", help="replace the probes run in the --out file's results"
    )
    ap.add_argument("-j", "--jobs", type=int, default=2, help="probes run at once")
    ap.add_argument("--src", default=None, help="PYTHONPATH of the opendrp probed (default: this checkout)")
    ap.add_argument("--out", default=str(ROOT / "bench_out" / "probe_reliability.json"))
    args = ap.parse_args()
    SRC = args.src or SRC
    ws = Workspace(args.workdir)
    ws.prepare()
    results: list[dict[str, Any]] = []

    def record(r: dict[str, Any]) -> None:
        results.append(r)
        print(f"[{r['class']:>9}] {r['kind']} {r['probe']}: {r['message'][:200]}", flush=True)

    jobs: list[Callable[[], dict[str, Any]]] = []
    if args.only in (None, "raw"):
        jobs += [functools.partial(probe_raw, ws, c) for c in raw_cases() if args.match in c.name]
        if not args.match:
            jobs.append(functools.partial(probe_batch, ws))
    if args.only in (None, "cli"):
        jobs += [functools.partial(probe_cli, ws, c) for c in cli_cases() if args.match in c.name]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for fut in [pool.submit(job) for job in jobs]:
            record(fut.result())
    if args.only in (None, "cli") and not args.no_ctrl_c and args.match in "Ctrl-C during run -j 2":
        record(probe_ctrl_c(ws))
    out = Path(args.out)
    if args.update and out.exists():  # rerun some probes: replace them in the earlier results
        names = {r["probe"] for r in results}
        results = [r for r in json.loads(out.read_text())["probes"] if r["probe"] not in names] + results
    summary = summarize(results)
    print(json.dumps(summary, indent=1))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "probes": results}, indent=1))
    print(f"-> {out}")
    shutil.rmtree(ws.cases, ignore_errors=True)


if __name__ == "__main__":
    main()
