"""Warps per (visit, patch) and coadds per (patch, band)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lsst.pex.config as pex_config
import lsst.pipe.base as pipe_base
import lsst.pipe.base.connectionTypes as ct
import numpy as np
from astropy.wcs import WCS

from ..coadd import BBox, LazyWarps, assemble_coadd, warp_bbox, warp_exposure
from ..coadd.warp import WARP_BBOX_PREFIX
from ..errors import ConfigurationError
from ..image import Exposure, mask_bit
from ..psf import CoaddPsf
from ..skymap import PatchInfo, RingsSkyMap
from ._base import record_metrics, translate_errors
from ._connections import sky_map_input

__all__ = [
    "AssembleCoaddTask",
    "AssembleCoaddTaskConfig",
    "MakeWarpTask",
    "MakeWarpTaskConfig",
    "merge_detector_warps",
]

_NO_DATA = mask_bit("NO_DATA")


def merge_detector_warps(warps: list[Exposure], target_wcs: WCS, metadata: dict[str, Any]) -> Exposure:
    """Combine the compact warps of the detectors of one visit (which do not overlap) into one compact warp.

    Each input covers its own box of the target grid (``WARP_X0/Y0/X1/Y1`` in its metadata); the result
    covers the union box, its WCS is the target's shifted to that box, and its PSF combines the detectors'
    piecewise PSFs with their footprints moved to the union box's origin; ``WARP_NOISE_FACTOR`` is the
    detectors' mean (weighted by their good pixels).
    """
    boxes = [warp_bbox(w) for w in warps]
    union = BBox(
        min(b.x0 for b in boxes), min(b.y0 for b in boxes), max(b.x1 for b in boxes), max(b.y1 for b in boxes)
    )
    out = Exposure.blank(union.height, union.width)
    out.mask[:] = _NO_DATA
    out.variance[:] = np.inf
    psf_parts = []
    for w, b in zip(warps, boxes):
        dx, dy = b.x0 - union.x0, b.y0 - union.y0
        rows, cols = slice(dy, dy + b.height), slice(dx, dx + b.width)
        take = ((w.mask & _NO_DATA) == 0) & ((out.mask[rows, cols] & _NO_DATA) != 0)
        out.image[rows, cols][take] = w.image[take]
        out.variance[rows, cols][take] = w.variance[take]
        out.mask[rows, cols][take] = w.mask[take]
        if isinstance(w.psf, CoaddPsf):
            shift = np.array([dx, dy], dtype=float)
            moved = [p + shift for p in w.psf.polygons]
            psf_parts.append((CoaddPsf(w.psf.kernels, w.psf.weights, moved), 1.0))
    out.psf = CoaddPsf.combine(psf_parts) if psf_parts else None
    wcs = target_wcs.deepcopy()
    wcs.wcs.crpix = [target_wcs.wcs.crpix[0] - union.x0, target_wcs.wcs.crpix[1] - union.y0]
    wcs.wcs.set()
    out.wcs = wcs
    out.photo_calib = warps[0].photo_calib
    out.metadata = {**metadata, **union.to_metadata(WARP_BBOX_PREFIX)}
    # the resampling's noise correlation (the same kernel for every detector): mean over good pixels
    factors = [(w.metadata.get("WARP_NOISE_FACTOR"), w.metadata.get("WARP_NGOOD", 1)) for w in warps]
    factors = [(float(f), float(n)) for f, n in factors if f is not None]
    if factors:
        total = sum(n for _, n in factors)
        out.metadata["WARP_NOISE_FACTOR"] = round(sum(f * n for f, n in factors) / total, 4)
        out.metadata["WARP_INTERP"] = warps[0].metadata.get("WARP_INTERP")
    return out


def _patch_of(sky_map: RingsSkyMap, data_id: Any) -> PatchInfo:
    """The patch a quantum's data ID names."""
    return sky_map.tract(int(data_id["tract"])).patch(int(data_id["patch"]))


class MakeWarpConnections(
    pipe_base.PipelineTaskConnections, dimensions=("instrument", "visit", "skymap", "tract", "patch")
):
    calexps = ct.Input(
        doc="Calibrated exposures of the visit overlapping the patch.",
        name="calexp",
        storageClass="DrpExposure",
        dimensions=("instrument", "visit", "detector"),
        multiple=True,
        deferLoad=True,
    )
    sky_map = sky_map_input()
    warp = ct.Output(
        doc="The visit resampled onto the patch grid, in nJy.",
        name="deepCoadd_directWarp",
        storageClass="DrpExposure",
        dimensions=("instrument", "visit", "skymap", "tract", "patch"),
    )


class MakeWarpTaskConfig(pipe_base.PipelineTaskConfig, pipelineConnections=MakeWarpConnections):
    interpolation = pex_config.ChoiceField[str](
        doc="Resampling kernel.",
        default="lanczos3",
        allowed={
            "lanczos3": "Lanczos, a=3",
            "lanczos4": "Lanczos, a=4",
            "cubic": "Keys cubic convolution",
            "bilinear": "bilinear",
        },
    )
    grid_spacing = pex_config.Field[int](doc="Spacing (pixels) of the exact WCS evaluation grid.", default=32)
    psf_cells = pex_config.ListField[int](
        doc="(n_x, n_y) cells of each input CCD with their own PSF kernel in the warp's CoaddPsf (evaluated "
        "at the cell centre; (1, 1): one kernel at the centroid of the warp's good pixels).  Default by "
        "measurement: on the tiny preset (4, 2) gave the same coadd psfFlux scatter of isolated stars as "
        "(1, 1) (0.46/0.57 % vs 0.43/0.57 % in g/r; benchmarks/diagnose_coadd_photometry.py --rerun): "
        "raise it for cameras whose PSF varies across a CCD.",
        default=[1, 1],
    )

    def validate(self) -> None:
        super().validate()
        if len(self.psf_cells) != 2 or min(self.psf_cells) < 1:
            raise ConfigurationError(
                f"psf_cells must be two integers >= 1, got {list(self.psf_cells)}",
                where="makeWarp.psf_cells",
                fix="e.g. psf_cells=[4, 2]",
            )
        if self.grid_spacing < 1:
            raise ConfigurationError(
                f"grid_spacing must be >= 1, got {self.grid_spacing}", where="makeWarp.grid_spacing"
            )


class MakeWarpTask(pipe_base.PipelineTask):
    """Resample the calexps of one visit onto one patch, calibrated to nJy."""

    ConfigClass = MakeWarpTaskConfig
    _DefaultName = "makeWarp"
    config: MakeWarpTaskConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:
        inputs = butlerQC.get(inputRefs)
        data_id = butlerQC.quantum.dataId
        patch = _patch_of(inputs["sky_map"], data_id)
        with translate_errors():
            outputs = self.run(
                calexps=[h.get() for h in inputs["calexps"]],
                patch=patch,
                visit=int(data_id["visit"]),
                band=str(data_id["band"]),
            )
        butlerQC.put(outputs, outputRefs)

    def run(self, *, calexps: list[Exposure], patch: PatchInfo, visit: int, band: str) -> pipe_base.Struct:
        parts = []
        for calexp in calexps:
            w = warp_exposure(
                calexp,
                patch.wcs,
                patch.shape,
                interpolation=self.config.interpolation,
                grid_spacing=self.config.grid_spacing,
                psf_cells=(int(self.config.psf_cells[0]), int(self.config.psf_cells[1])),
                full_size=False,
            )
            if w is not None:
                parts.append(w)
        if not parts:
            raise pipe_base.NoWorkFound(f"no calexp of visit {visit} overlaps patch {patch.id}")
        meta = {"VISIT": visit, "BAND": band, "TRACT": patch.tract, "PATCH": patch.id, "NCCD": len(parts)}
        warp = merge_detector_warps(parts, patch.wcs, meta)
        self.metadata["n_detectors"] = len(parts)
        return pipe_base.Struct(warp=warp)


class AssembleCoaddConnections(
    pipe_base.PipelineTaskConnections, dimensions=("skymap", "tract", "patch", "band")
):
    sky_map = sky_map_input()
    warps = ct.Input(
        doc="Warps of the visits in this band.",
        name="deepCoadd_directWarp",
        storageClass="DrpExposure",
        dimensions=("instrument", "visit", "skymap", "tract", "patch"),
        multiple=True,
        deferLoad=True,
    )
    coadd = ct.Output(
        doc="Coadd of the patch in one band (nJy), with a CoaddPsf.",
        name="deepCoadd",
        storageClass="DrpExposure",
        dimensions=("skymap", "tract", "patch", "band"),
    )


class AssembleCoaddTaskConfig(pipe_base.PipelineTaskConfig, pipelineConnections=AssembleCoaddConnections):
    clip_sigma = pex_config.Field[float](
        doc="Per-pixel outlier rejection threshold (sigma) with >= 3 inputs; 0 disables.", default=3.0
    )
    clip_fraction = pex_config.Field[float](
        doc="Rejection tolerance for sources, as a fraction of the local maximum of the reference (added to "
        "each warp's PSF deviation when psf_clip_tolerance is set).",
        default=0.3,
    )
    clip_footprint = pex_config.Field[int](
        doc="Box size (pixels, odd) over which the local maximum of the reference is taken.", default=5
    )
    psf_clip_tolerance = pex_config.Field[bool](
        doc="Widen each warp's rejection tolerance by how much a point source under its PSF differs from the "
        "reference (seeing differences, as CompareWarp's PSF-matching): star cores are not clipped.",
        default=True,
    )

    def validate(self) -> None:
        super().validate()
        if self.clip_sigma < 0:
            raise ConfigurationError(
                f"clip_sigma must be >= 0 (0 disables), got {self.clip_sigma}",
                where="assembleCoadd.clip_sigma",
            )
        if self.clip_fraction < 0:
            raise ConfigurationError(
                f"clip_fraction must be >= 0, got {self.clip_fraction}", where="assembleCoadd.clip_fraction"
            )
        if self.clip_footprint < 1 or self.clip_footprint % 2 == 0:
            raise ConfigurationError(
                f"clip_footprint must be odd and >= 1, got {self.clip_footprint}",
                where="assembleCoadd.clip_footprint",
            )


class AssembleCoaddTask(pipe_base.PipelineTask):
    """Inverse-variance weighted mean of the warps with outlier rejection; the PSF is a CoaddPsf."""

    ConfigClass = AssembleCoaddTaskConfig
    _DefaultName = "assembleCoadd"
    config: AssembleCoaddTaskConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:
        inputs = butlerQC.get(inputRefs)
        data_id = butlerQC.quantum.dataId
        patch = _patch_of(inputs["sky_map"], data_id)
        with translate_errors():
            # warps are read on access, one at a time (twice with clipping)
            outputs = self.run(warps=LazyWarps(inputs["warps"]), patch=patch, band=str(data_id["band"]))
        butlerQC.put(outputs, outputRefs)

    def run(self, *, warps: Sequence[Exposure], patch: PatchInfo, band: str) -> pipe_base.Struct:
        if len(warps) == 0:
            raise pipe_base.NoWorkFound("no warps")
        clip = self.config.clip_sigma if self.config.clip_sigma > 0 else None
        coadd = assemble_coadd(
            warps,
            clip_sigma=clip,
            clip_fraction=self.config.clip_fraction,
            clip_footprint=self.config.clip_footprint,
            psf_clip_tolerance=self.config.psf_clip_tolerance,
            shape=patch.shape,
            wcs=patch.wcs,
        )
        n_inputs = int(coadd.metadata.get("NINPUTS", len(warps)))
        if n_inputs == 0:
            raise pipe_base.NoWorkFound("no warp has valid pixels")
        coadd.metadata.update({"BAND": band})
        record_metrics(self, {"n_inputs": n_inputs})
        return pipe_base.Struct(coadd=coadd)
