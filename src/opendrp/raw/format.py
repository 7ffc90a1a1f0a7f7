"""The raw file format: one FITS file per CCD per exposure (see ``docs/raw-format.md``).

The primary HDU holds the whole raw array (unsigned 16-bit, all amplifiers with their prescan and overscan,
laid out as the camera YAML describes) and the header keywords below.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time

from ..errors import BadRawFileError
from ..instrument import Camera

__all__ = [
    "OBSERVATION_TYPES",
    "RawHeader",
    "RawImage",
    "read_raw",
    "read_raw_header",
    "write_raw",
]

# DATA-TYP header value -> Butler observation_type
OBSERVATION_TYPES = {
    "OBJECT": "science",
    "SCIENCE": "science",
    "BIAS": "bias",
    "ZERO": "bias",
    "DARK": "dark",
    "FLAT": "flat",
    "DOMEFLAT": "flat",
    "SKYFLAT": "flat",
}

REQUIRED_KEYWORDS = ("INSTRUME", "EXPID", "DET-ID", "FILTER01", "EXPTIME", "DATE-OBS", "DATA-TYP")


@dataclasses.dataclass(frozen=True)
class RawHeader:
    """What ingest needs to know about a raw file, parsed and validated."""

    instrument: str
    exposure_id: int
    obs_id: str
    detector: int
    physical_filter: str
    exposure_time: float  # s
    date_obs: Time  # start of the exposure, UTC
    observation_type: str  # science | bias | dark | flat
    boresight_ra: float  # deg
    boresight_dec: float  # deg
    boresight_rotation: float  # deg: position angle of the focal-plane +y axis, east of north
    target_name: str = ""

    def to_cards(self) -> dict[str, Any]:
        data_typ = {"science": "OBJECT", "bias": "BIAS", "dark": "DARK", "flat": "DOMEFLAT"}
        return {
            "INSTRUME": self.instrument,
            "EXPID": int(self.exposure_id),
            "EXP-ID": self.obs_id,
            "DET-ID": int(self.detector),
            "FILTER01": self.physical_filter,
            "EXPTIME": float(self.exposure_time),
            "DATE-OBS": self.date_obs.utc.isot,
            "MJD": float(self.date_obs.utc.mjd),
            "DATA-TYP": data_typ[self.observation_type],
            "BORE-RA": float(self.boresight_ra),
            "BORE-DEC": float(self.boresight_dec),
            "INST-PA": float(self.boresight_rotation),
            "OBJECT": self.target_name,
        }


@dataclasses.dataclass
class RawImage:
    """A raw CCD read-out in memory: the raw array and its header."""

    pixels: np.ndarray  # raw array, amplifiers with pre/overscan, as stored (uint16 or float)
    metadata: dict[str, Any]

    @property
    def header(self) -> RawHeader:
        return _parse_header(self.metadata, where="raw")


def write_raw(path: str | Path, pixels: np.ndarray, header: RawHeader, camera: Camera) -> Path:
    """Write a raw file atomically (temporary file, then rename).

    ``pixels`` are ADU; they are rounded and clipped to the unsigned 16-bit range.
    """
    path = Path(path)
    det = camera.detector(header.detector)
    if tuple(pixels.shape) != det.raw_shape:
        raise ValueError(f"raw array shape {pixels.shape} != camera raw shape {det.raw_shape}")
    data = np.clip(np.rint(pixels), 0, 65535).astype(np.uint16)
    hdr = fits.Header()
    hdr["TELESCOP"] = "Subaru" if camera.name == "HSC" else camera.name
    for key, value in header.to_cards().items():
        hdr[key] = value
    hdr["DETNAME"] = det.name
    for amp in det.amplifiers:
        i = amp.index + 1
        ys, xs = amp.raw_data_slice()
        hdr[f"DATASEC{i}"] = f"[{xs.start + 1}:{xs.stop},{ys.start + 1}:{ys.stop}]"
        ys, xs = amp.raw_overscan_slice()
        hdr[f"BIASSEC{i}"] = f"[{xs.start + 1}:{xs.stop},{ys.start + 1}:{ys.stop}]"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fits.PrimaryHDU(data=data, header=hdr).writeto(tmp, overwrite=True)
    os.replace(tmp, path)
    return path


def _parse_header(hdr: Any, *, where: str) -> RawHeader:
    missing = [k for k in REQUIRED_KEYWORDS if k not in hdr]
    if missing:
        raise BadRawFileError(
            f"missing header keyword(s) {', '.join(missing)}",
            where=where,
            fix="see docs/raw-format.md for the required keywords",
        )
    data_typ = str(hdr["DATA-TYP"]).strip().upper()
    if data_typ not in OBSERVATION_TYPES:
        raise BadRawFileError(
            f"DATA-TYP={data_typ!r} is not one of {sorted(OBSERVATION_TYPES)}",
            where=where,
            fix="set DATA-TYP to OBJECT, BIAS, DARK or FLAT",
        )
    obs_type = OBSERVATION_TYPES[data_typ]
    exposure_id = _integer_card(hdr, "EXPID", where=where)
    detector = _integer_card(hdr, "DET-ID", where=where)
    try:
        exptime = float(hdr["EXPTIME"])
    except (TypeError, ValueError) as exc:
        raise BadRawFileError(f"EXPTIME={hdr['EXPTIME']!r} is not a number", where=where) from exc
    date_text = str(hdr["DATE-OBS"]).strip()
    try:
        if "T" not in date_text:
            raise ValueError("no time of day")
        date_obs = Time(date_text, format="isot", scale="utc")
        date_obs.utc.datetime  # noqa: B018 - years before 1 or after 9999 fail here
    except (TypeError, ValueError) as exc:
        raise BadRawFileError(
            f"DATE-OBS={date_text!r} is not an ISO-8601 UTC date and time ({exc})",
            where=where,
            fix="write it as 2026-03-01T10:00:00.000",
        ) from exc
    if exposure_id < 0:
        raise BadRawFileError(f"EXPID={exposure_id} is negative", where=where, fix="exposure ids are >= 0")
    if not (np.isfinite(exptime) and exptime >= 0):
        raise BadRawFileError(f"EXPTIME={exptime} is not a finite number >= 0 (seconds)", where=where)
    need_pointing = obs_type == "science"
    try:
        ra = float(hdr.get("BORE-RA", np.nan))
        dec = float(hdr.get("BORE-DEC", np.nan))
        rot = float(hdr.get("INST-PA", 0.0))
    except (TypeError, ValueError) as exc:
        raise BadRawFileError(f"unparsable pointing ({exc})", where=where) from exc
    if need_pointing and not (np.isfinite(ra) and np.isfinite(dec) and -90.0 <= dec <= 90.0):
        raise BadRawFileError(
            "science exposure without a valid pointing (BORE-RA, BORE-DEC in degrees)",
            where=where,
            fix="add BORE-RA/BORE-DEC keywords",
        )
    instrument = str(hdr["INSTRUME"]).strip()
    return RawHeader(
        instrument=instrument,
        exposure_id=exposure_id,
        obs_id=str(hdr.get("EXP-ID", f"{instrument}{exposure_id:08d}")).strip(),
        detector=detector,
        physical_filter=str(hdr["FILTER01"]).strip(),
        exposure_time=exptime,
        date_obs=date_obs,
        observation_type=obs_type,
        boresight_ra=ra,
        boresight_dec=dec,
        boresight_rotation=rot,
        target_name=str(hdr.get("OBJECT", "")),
    )


def _integer_card(hdr: Any, key: str, *, where: str) -> int:
    """An integer header card: a FITS integer, not a float (no silent ``int(49.7)``), a string or a flag."""
    value = hdr[key]
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise BadRawFileError(
            f"{key}={value!r} is not an integer", where=where, fix=f"write {key} as a FITS integer card"
        )
    return int(value)


def read_raw_header(path: str | Path, camera: Camera | None = None) -> RawHeader:
    """Read and validate a raw file's header (and, given a camera, its detector, filter and array shape).

    Raises
    ------
    BadRawFileError
        With one line saying what is wrong with which file.
    """
    where = str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy's own truncation warning: we report it ourselves
            hdul = fits.open(path, memmap=False)
        with hdul:
            hdr = hdul[0].header
            parsed = _parse_header(hdr, where=where)
            _check_data_complete(hdul, os.path.getsize(path), where=where)
            shape = _check_array(hdul, where=where)
    except BadRawFileError:
        raise
    except FileNotFoundError as exc:
        raise BadRawFileError("file not found", where=where) from exc
    except (OSError, ValueError, TypeError) as exc:
        raise BadRawFileError(
            f"not a readable FITS file ({exc})",
            where=where,
            fix="the file may be truncated or corrupt; copy it again",
        ) from exc
    if camera is not None:
        if parsed.instrument != camera.name:
            raise BadRawFileError(
                f"INSTRUME={parsed.instrument!r} but the repository's camera is {camera.name!r}",
                where=where,
            )
        if parsed.detector not in camera.detectors:
            raise BadRawFileError(
                f"unknown detector DET-ID={parsed.detector} for camera {camera.name}",
                where=where,
                fix="check DET-ID or the camera YAML given to `opendrp init`",
            )
        if parsed.observation_type in ("science", "flat"):
            try:
                camera.filter(parsed.physical_filter)
            except Exception as exc:
                raise BadRawFileError(
                    f"unknown filter FILTER01={parsed.physical_filter!r}", where=where
                ) from exc
        expected = camera.detector(parsed.detector).raw_shape
        if shape != expected:
            raise BadRawFileError(
                f"raw array is {shape[1]} x {shape[0]} but detector {parsed.detector} reads out "
                f"{expected[1]} x {expected[0]}",
                where=where,
            )
    return parsed


#: the documented pixel types: (BITPIX, BZERO) -> description
PIXEL_TYPES = {(16, 32768.0): "unsigned 16-bit integers", (-32, 0.0): "32-bit floats"}


def _check_array(hdul: fits.HDUList, *, where: str) -> tuple[int, int]:
    """The raw array rules: one HDU, a 2-D primary array of a documented pixel type; returns its shape."""
    hdr = hdul[0].header
    naxis = int(hdr.get("NAXIS", 0))
    if naxis != 2:
        raise BadRawFileError(
            f"the primary array has {naxis} axes; a raw file holds one 2-D image",
            where=where,
            fix="see docs/raw-format.md (Pixels)",
        )
    bitpix, bzero = int(hdr.get("BITPIX", 0)), float(hdr.get("BZERO", 0.0))
    if (bitpix, bzero) not in PIXEL_TYPES or float(hdr.get("BSCALE", 1.0)) != 1.0:
        raise BadRawFileError(
            f"pixel type BITPIX={bitpix} BZERO={bzero:g} BSCALE={float(hdr.get('BSCALE', 1.0)):g} is not "
            "documented",
            where=where,
            fix="write unsigned 16-bit integers (BITPIX=16, BZERO=32768) or 32-bit floats (BITPIX=-32)",
        )
    if len(hdul) != 1:
        raise BadRawFileError(
            f"the file has {len(hdul)} HDUs; a raw file has only the primary HDU",
            where=where,
            fix="remove the extensions (docs/raw-format.md)",
        )
    return (int(hdr["NAXIS2"]), int(hdr["NAXIS1"]))


def _check_data_complete(hdul: fits.HDUList, size: int, *, where: str) -> None:
    """Detect truncated files: the data section must be as long as the header says."""
    hdu = hdul[0]
    naxis = int(hdu.header.get("NAXIS", 0))
    n_expected = abs(int(hdu.header.get("BITPIX", 16))) // 8 if naxis else 0
    for ax in range(naxis):
        n_expected *= int(hdu.header[f"NAXIS{ax + 1}"])
    info = hdu.fileinfo()
    if info is None:
        return
    if info["datLoc"] + n_expected > size:
        raise BadRawFileError(
            f"file is truncated ({size} bytes, the header announces {info['datLoc'] + n_expected})",
            where=where,
            fix="copy the file again from its source",
        )


def read_raw(path: str | Path) -> RawImage:
    """Read a raw file into memory (the pixels as float32 ADU)."""
    with fits.open(path, memmap=False) as hdul:
        hdr = hdul[0].header
        pixels = np.asarray(hdul[0].data, dtype=np.float32)
        meta = {k: hdr[k] for k in hdr if k not in ("COMMENT", "HISTORY", "")}
    return RawImage(pixels=pixels, metadata=meta)
