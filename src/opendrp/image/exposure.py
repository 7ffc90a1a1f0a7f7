"""The Exposure: a calibrated image with its mask, variance, WCS, PSF, photometric calibration and metadata.

On disk it is a multi-extension FITS file that astropy and ds9 users can open directly:

====  ========  ====================================================================
HDU   EXTNAME   content
====  ========  ====================================================================
0     PRIMARY   metadata (visit, detector, band, ...), ``PHOTCAL``/``PHOTCERR`` (nJy per count)
1     IMAGE     float32 image, with the WCS (TAN or TAN-SIP) in its header
2     MASK      int32 bit planes (RICE tile-compressed); ``MP_<NAME>`` cards give each plane's bit
3     VARIANCE  float32 variance (counts**2)
4     PSF       optional: the PSF model (`PixelPsf` basis cube or `CoaddPsf` kernels)
5     PSF_INPUTS  `CoaddPsf` only: input weights and footprints
====  ========  ====================================================================
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from ..psf import PsfModel, psf_from_hdul
from .mask import MASK_PLANES
from .photo_calib import PhotoCalib

__all__ = ["Exposure", "read_exposure", "write_exposure"]

_SKIP_CARDS = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "COMMENT", "HISTORY", ""}


@dataclasses.dataclass
class Exposure:
    """A masked image with its calibrations.

    Attributes
    ----------
    image : `numpy.ndarray` [float32]
        Pixel values (counts for calexps; nJy per pixel for warps and coadds).
    mask : `numpy.ndarray` [int32]
        Bit planes, see `opendrp.image.mask.MASK_PLANES`.
    variance : `numpy.ndarray` [float32]
        Per-pixel variance, in the image's units squared.
    wcs : `astropy.wcs.WCS` or `None`
        Pixel (0-based) to sky transformation.
    psf : `opendrp.psf.PsfModel` or `None`
        The PSF model.
    photo_calib : `PhotoCalib` or `None`
        Counts to nJy.
    metadata : `dict`
        FITS-compatible key/value pairs (visit, detector, band, exposure time, ...).
    """

    image: np.ndarray
    mask: np.ndarray
    variance: np.ndarray
    wcs: WCS | None = None
    psf: PsfModel | None = None
    photo_calib: PhotoCalib | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.image.shape == self.mask.shape == self.variance.shape):
            raise ValueError(
                f"image {self.image.shape}, mask {self.mask.shape} and variance {self.variance.shape} differ"
            )

    @classmethod
    def blank(cls, ny: int, nx: int, **metadata: Any) -> Exposure:
        return cls(
            np.zeros((ny, nx), np.float32),
            np.zeros((ny, nx), np.int32),
            np.ones((ny, nx), np.float32),
            metadata=dict(metadata),
        )

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.image.shape[0]), int(self.image.shape[1]))

    def copy(self) -> Exposure:
        return dataclasses.replace(
            self,
            image=self.image.copy(),
            mask=self.mask.copy(),
            variance=self.variance.copy(),
            metadata=dict(self.metadata),
        )


def _header_from_metadata(metadata: dict[str, Any]) -> fits.Header:
    hdr = fits.Header()
    for key, value in metadata.items():
        if value is None or isinstance(value, dict | list | tuple):
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, str):
            value = value[:60]
        elif isinstance(value, float) and not np.isfinite(value):
            value = str(value)
        card_key = key if (len(key) <= 8 and key.upper() == key and " " not in key) else f"HIERARCH {key}"
        try:
            hdr[card_key] = value
        except (ValueError, TypeError):
            hdr[card_key] = str(value)[:60]
    return hdr


def _metadata_from_header(hdr: fits.Header) -> dict[str, Any]:
    return {k: hdr[k] for k in hdr if k not in _SKIP_CARDS and not k.startswith(("PHOTCAL", "PHOTCERR"))}


def _read_wcs(hdr: fits.Header) -> WCS | None:
    if "CTYPE1" not in hdr:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(hdr)


def _mask_tile_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """RICE tiles of the mask: 64 full rows (FITS tile shapes are given in numpy order here)."""
    return (min(64, max(shape[0], 1)), max(shape[1], 1))


def write_exposure(path: str | Path, exposure: Exposure) -> None:
    """Write an Exposure as multi-extension FITS (atomically: temporary file, then rename)."""
    path = Path(path)
    phdr = _header_from_metadata(exposure.metadata)
    if exposure.photo_calib is not None:
        for k, v in exposure.photo_calib.to_cards().items():
            phdr[k] = v
    image_hdr = fits.Header()
    if exposure.wcs is not None:
        image_hdr.update(exposure.wcs.to_header(relax=True))
    mask_hdr = fits.Header()
    for name, bit in MASK_PLANES.items():
        mask_hdr[f"HIERARCH MP_{name}"] = bit
    hdus = [
        fits.PrimaryHDU(header=phdr),
        fits.ImageHDU(np.asarray(exposure.image, dtype=np.float32), header=image_hdr, name="IMAGE"),
        # lossless tile compression: masks are mostly zeros (34 MB -> ~1 MB per HSC CCD); tiles of 64 full
        # rows (not astropy's one row: its per-tile Python overhead made reading and writing 4x slower)
        fits.CompImageHDU(
            np.asarray(exposure.mask, dtype=np.int32),
            header=mask_hdr,
            name="MASK",
            compression_type="RICE_1",
            tile_shape=_mask_tile_shape(exposure.shape),
        ),
        fits.ImageHDU(np.asarray(exposure.variance, dtype=np.float32), name="VARIANCE"),
    ]
    if exposure.psf is not None:
        hdus.extend(exposure.psf.to_hdus())
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fits.HDUList(hdus).writeto(tmp, overwrite=True)
    os.replace(tmp, path)


def read_exposure(path: str | Path, component: str | None = None) -> Any:
    """Read an Exposure, or only one component of it.

    Parameters
    ----------
    component : `str`, optional
        One of ``image``, ``mask``, ``variance``, ``wcs``, ``psf``, ``photo_calib``, ``metadata``.
    """
    with fits.open(path, memmap=False) as hdul:
        if component == "image":
            return np.asarray(hdul["IMAGE"].data, dtype=np.float32)
        if component == "mask":
            return np.asarray(hdul["MASK"].data, dtype=np.int32)
        if component == "variance":
            return np.asarray(hdul["VARIANCE"].data, dtype=np.float32)
        if component == "wcs":
            return _read_wcs(hdul["IMAGE"].header)
        if component == "psf":
            return psf_from_hdul(hdul)
        if component == "photo_calib":
            return PhotoCalib.from_cards(dict(hdul[0].header))
        if component == "metadata":
            return _metadata_from_header(hdul[0].header)
        if component is not None:
            raise KeyError(f"unknown Exposure component {component!r}")
        return Exposure(
            image=np.asarray(hdul["IMAGE"].data, dtype=np.float32),
            mask=np.asarray(hdul["MASK"].data, dtype=np.int32),
            variance=np.asarray(hdul["VARIANCE"].data, dtype=np.float32),
            wcs=_read_wcs(hdul["IMAGE"].header),
            psf=psf_from_hdul(hdul),
            photo_calib=PhotoCalib.from_cards(dict(hdul[0].header)),
            metadata=_metadata_from_header(hdul[0].header),
        )
