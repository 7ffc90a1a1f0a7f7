"""Butler formatters for openDRP's storage classes (declared in ``seed_config.yaml``).

Images are multi-extension FITS readable with astropy or ds9; models are small FITS or YAML files.
Every writer writes a temporary file and renames it, so no half-written file ever exists under its name.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml
from astropy.io import fits
from lsst.daf.butler import DatasetProvenance, FormatterV2
from lsst.resources import ResourcePath

from ..background import BackgroundModel
from ..image import Exposure, PhotoCalib, read_exposure, write_exposure
from ..instrument import Camera
from ..psf import PsfModel, psf_from_hdul
from ..raw import read_raw
from ..raw.format import RawImage
from ..skymap import RingsSkyMap, SkyMapConfig

__all__ = [
    "BackgroundFormatter",
    "CameraFormatter",
    "ExposureFormatter",
    "PhotoCalibFormatter",
    "PsfFormatter",
    "RawFormatter",
    "SkyMapFormatter",
    "WcsFormatter",
]


def _atomic_write_bytes(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _atomic_write_hdul(path: str, hdul: fits.HDUList) -> None:
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    hdul.writeto(tmp, overwrite=True)
    os.replace(tmp, p)


class ExposureFormatter(FormatterV2):
    """Exposure as multi-extension FITS (PRIMARY, IMAGE+WCS, MASK, VARIANCE, PSF)."""

    default_extension = ".fits"
    supported_extensions = frozenset({".fits"})
    can_read_from_local_file = True

    def read_from_local_file(self, path: str, component: str | None = None, expected_size: int = -1) -> Any:
        return read_exposure(path, component)

    def add_provenance(
        self, in_memory_dataset: Exposure, /, *, provenance: DatasetProvenance | None = None
    ) -> Exposure:
        """Record the producing quantum and input dataset IDs in the primary header."""
        if provenance is None:
            provenance = DatasetProvenance()
        flat = provenance.to_flat_dict(self.dataset_ref, prefix="LSST BUTLER", sep=" ", simple_types=True)
        meta = {k: v for k, v in in_memory_dataset.metadata.items() if not k.startswith("LSST BUTLER")}
        meta.update(flat)
        return dataclasses.replace(in_memory_dataset, metadata=meta)

    def write_local_file(self, in_memory_dataset: Exposure, uri: ResourcePath) -> None:
        meta = dict(in_memory_dataset.metadata)
        for k, v in self.data_id.required.items():
            meta[f"DATAID {k}"] = v
        write_exposure(uri.ospath, dataclasses.replace(in_memory_dataset, metadata=meta))


class RawFormatter(FormatterV2):
    """Raw CCD read-outs in openDRP's raw format (docs/raw-format.md); read-only in practice."""

    default_extension = ".fits"
    supported_extensions = frozenset({".fits", ".FITS", ".Fits", ".fit", ".FIT", ".Fit"})
    can_read_from_local_file = True

    def read_from_local_file(self, path: str, component: str | None = None, expected_size: int = -1) -> Any:
        raw = read_raw(path)
        if component == "metadata":
            return raw.metadata
        return raw

    def write_local_file(self, in_memory_dataset: RawImage, uri: ResourcePath) -> None:
        hdr = fits.Header()
        for k, v in in_memory_dataset.metadata.items():
            if k not in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BZERO", "BSCALE"):
                hdr[k] = v
        data = in_memory_dataset.pixels.clip(0, 65535).round().astype("uint16")
        _atomic_write_hdul(uri.ospath, fits.HDUList([fits.PrimaryHDU(data, header=hdr)]))


class PsfFormatter(FormatterV2):
    """A PSF model (PixelPsf or CoaddPsf) as a FITS file."""

    default_extension = ".fits"
    supported_extensions = frozenset({".fits"})
    can_read_from_local_file = True

    def read_from_local_file(self, path: str, component: str | None = None, expected_size: int = -1) -> Any:
        with fits.open(path, memmap=False) as hdul:
            return psf_from_hdul(hdul)

    def write_local_file(self, in_memory_dataset: PsfModel, uri: ResourcePath) -> None:
        _atomic_write_hdul(uri.ospath, fits.HDUList([fits.PrimaryHDU(), *in_memory_dataset.to_hdus()]))


class BackgroundFormatter(FormatterV2):
    """BackgroundModel mesh as a one-extension FITS file."""

    default_extension = ".fits"
    supported_extensions = frozenset({".fits"})
    can_read_from_local_file = True

    def read_from_local_file(self, path: str, component: str | None = None, expected_size: int = -1) -> Any:
        with fits.open(path, memmap=False) as hdul:
            return BackgroundModel.from_hdu(hdul["BACKGROUND"])

    def add_provenance(
        self, in_memory_dataset: BackgroundModel, /, *, provenance: DatasetProvenance | None = None
    ) -> BackgroundModel:
        """Keep the producing quantum and input dataset IDs for the primary header (the model has no
        metadata of its own)."""
        self._provenance = (provenance or DatasetProvenance()).to_flat_dict(
            self.dataset_ref, prefix="LSST BUTLER", sep=" ", simple_types=True
        )
        return in_memory_dataset

    def write_local_file(self, in_memory_dataset: BackgroundModel, uri: ResourcePath) -> None:
        primary = fits.PrimaryHDU()
        for key, value in getattr(self, "_provenance", {}).items():
            primary.header[f"HIERARCH {key}"] = value
        hdul = fits.HDUList([primary, in_memory_dataset.to_hdu("BACKGROUND")])
        _atomic_write_hdul(uri.ospath, hdul)


class WcsFormatter(FormatterV2):
    """An astropy WCS as a FITS header."""

    default_extension = ".fits"
    supported_extensions = frozenset({".fits"})
    can_read_from_local_file = True

    def read_from_local_file(self, path: str, component: str | None = None, expected_size: int = -1) -> Any:
        from ..image.exposure import _read_wcs

        with fits.open(path, memmap=False) as hdul:
            return _read_wcs(hdul[0].header)

    def write_local_file(self, in_memory_dataset: Any, uri: ResourcePath) -> None:
        hdu = fits.PrimaryHDU(header=in_memory_dataset.to_header(relax=True))
        _atomic_write_hdul(uri.ospath, fits.HDUList([hdu]))


class PhotoCalibFormatter(FormatterV2):
    """PhotoCalib as YAML."""

    default_extension = ".yaml"
    supported_extensions = frozenset({".yaml"})
    can_read_from_local_file = True

    def read_from_local_file(self, path: str, component: str | None = None, expected_size: int = -1) -> Any:
        return PhotoCalib(**yaml.safe_load(Path(path).read_text()))

    def write_local_file(self, in_memory_dataset: PhotoCalib, uri: ResourcePath) -> None:
        _atomic_write_bytes(uri.ospath, yaml.safe_dump(dataclasses.asdict(in_memory_dataset)).encode())


class CameraFormatter(FormatterV2):
    """Camera description as YAML (the same schema as the camera files in opendrp/instrument/cameras)."""

    default_extension = ".yaml"
    supported_extensions = frozenset({".yaml"})
    can_read_from_local_file = True

    def read_from_local_file(self, path: str, component: str | None = None, expected_size: int = -1) -> Any:
        return Camera.from_yaml(path)

    def write_local_file(self, in_memory_dataset: Camera, uri: ResourcePath) -> None:
        _atomic_write_bytes(uri.ospath, in_memory_dataset.to_yaml().encode())


class SkyMapFormatter(FormatterV2):
    """Sky map configuration as YAML."""

    default_extension = ".yaml"
    supported_extensions = frozenset({".yaml"})
    can_read_from_local_file = True

    def read_from_local_file(self, path: str, component: str | None = None, expected_size: int = -1) -> Any:
        return RingsSkyMap(SkyMapConfig.from_dict(yaml.safe_load(Path(path).read_text())))

    def write_local_file(self, in_memory_dataset: RingsSkyMap, uri: ResourcePath) -> None:
        _atomic_write_bytes(uri.ospath, yaml.safe_dump(in_memory_dataset.config.to_dict()).encode())
