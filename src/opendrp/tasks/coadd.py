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
    piecewise PSFs with their footprints moved to the union box's origin.
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
        coadd = assemble_coadd(warps, clip_sigma=clip, shape=patch.shape, wcs=patch.wcs)
        n_inputs = int(coadd.metadata.get("NINPUTS", len(warps)))
        if n_inputs == 0:
            raise pipe_base.NoWorkFound("no warp has valid pixels")
        coadd.metadata.update({"BAND": band})
        record_metrics(self, {"n_inputs": n_inputs})
        return pipe_base.Struct(coadd=coadd)
