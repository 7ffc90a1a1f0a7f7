"""Warps per (visit, patch) and coadds per (patch, band)."""

from __future__ import annotations

from typing import Any

import lsst.pex.config as pex_config
import lsst.pipe.base as pipe_base
import lsst.pipe.base.connectionTypes as ct
import numpy as np

from ..coadd import BBox, assemble_coadd, warp_bbox, warp_exposure, warp_weight
from ..coadd.warp import WARP_BBOX_PREFIX
from ..image import Exposure, mask_bit
from ..psf import CoaddPsf
from ..skymap import PatchInfo, RingsSkyMap
from ._base import record_metrics, translate_errors

__all__ = [
    "AssembleCoaddTask",
    "AssembleCoaddTaskConfig",
    "MakeWarpTask",
    "MakeWarpTaskConfig",
    "merge_detector_warps",
]

_NO_DATA = mask_bit("NO_DATA")


def merge_detector_warps(warps: list[Exposure], shape: tuple[int, int], metadata: dict[str, Any]) -> Exposure:
    """Combine the warps of the detectors of one visit (which do not overlap) into one warp.

    The visit warp's PSF combines the detectors' piecewise PSFs (each right on its detector's footprint);
    its data box is the union of theirs.
    """
    out = Exposure.blank(*shape)
    out.mask[:] = _NO_DATA
    out.variance[:] = np.inf
    boxes = []
    for w in warps:
        box = warp_bbox(w)
        boxes.append(box)
        rows, cols = box.slices
        valid = (w.mask[rows, cols] & _NO_DATA) == 0
        take = valid & ((out.mask[rows, cols] & _NO_DATA) != 0)
        out.image[rows, cols][take] = w.image[rows, cols][take]
        out.variance[rows, cols][take] = w.variance[rows, cols][take]
        out.mask[rows, cols][take] = w.mask[rows, cols][take]
    out.psf = CoaddPsf.combine([(w.psf, 1.0) for w in warps if w.psf is not None])
    out.wcs = warps[0].wcs
    out.photo_calib = warps[0].photo_calib
    union = BBox(
        min(b.x0 for b in boxes), min(b.y0 for b in boxes), max(b.x1 for b in boxes), max(b.y1 for b in boxes)
    )
    out.metadata = {**metadata, **union.to_metadata(WARP_BBOX_PREFIX)}
    return out


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
    sky_map = ct.PrerequisiteInput(
        doc="The sky map.", name="skyMap", storageClass="DrpSkyMap", dimensions=("skymap",)
    )
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
        allowed={"lanczos3": "Lanczos, a=3", "cubic": "cubic spline", "bilinear": "bilinear"},
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
        skymap: RingsSkyMap = inputs["sky_map"]
        patch = skymap.tract(int(data_id["tract"])).patch(int(data_id["patch"]))
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
            )
            if w is not None:
                parts.append(w)
        if not parts:
            raise pipe_base.NoWorkFound(f"no calexp of visit {visit} overlaps patch {patch.id}")
        meta = {"VISIT": visit, "BAND": band, "TRACT": patch.tract, "PATCH": patch.id, "NCCD": len(parts)}
        warp = merge_detector_warps(parts, patch.shape, meta)
        self.metadata["n_detectors"] = len(parts)
        return pipe_base.Struct(warp=warp)


class AssembleCoaddConnections(
    pipe_base.PipelineTaskConnections, dimensions=("skymap", "tract", "patch", "band")
):
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
        handles = butlerQC.get(inputRefs.warps)
        data_id = butlerQC.quantum.dataId
        with translate_errors():
            outputs = self.run(warps=[h.get() for h in handles], band=str(data_id["band"]))
        butlerQC.put(outputs, outputRefs)

    def run(self, *, warps: list[Exposure], band: str) -> pipe_base.Struct:
        weights = [warp_weight(w) for w in warps]
        used = [(w, wt) for w, wt in zip(warps, weights) if wt > 0]
        if not used:
            raise pipe_base.NoWorkFound("no warp has valid pixels")
        clip = self.config.clip_sigma if self.config.clip_sigma > 0 else None
        coadd = assemble_coadd([w for w, _ in used], clip_sigma=clip, weights=[wt for _, wt in used])
        visits = sorted(int(w.metadata.get("VISIT", -1)) for w, _ in used)
        coadd.metadata.update({"BAND": band, "NINPUTS": len(used), "VISITS": ",".join(map(str, visits))})
        record_metrics(self, {"n_inputs": len(used)})
        return pipe_base.Struct(coadd=coadd)
