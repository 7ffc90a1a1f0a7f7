"""Multi-band processing: detect on each band's coadd, merge, forced photometry, the Object table."""

from __future__ import annotations

from typing import Any

import lsst.pex.config as pex_config
import lsst.pipe.base as pipe_base
import lsst.pipe.base.connectionTypes as ct
import numpy as np
from astropy.table import Table, vstack

from ..detection import detect_sources
from ..errors import ConfigurationError
from ..image import Exposure
from ..measurement import measure_sources
from ..measurement.apcorr import apply_aperture_corrections, fit_aperture_corrections
from ..multiband import (
    coadd_apcorr_stars,
    coadd_centroids,
    make_object_id,
    make_object_table,
    merge_detections,
    primary_flags,
)
from ..skymap import RingsSkyMap
from ._base import translate_errors
from ._connections import sky_map_input

__all__ = [
    "ConsolidateObjectTableTask",
    "DetectCoaddTask",
    "ForcedPhotCoaddTask",
    "MergeDetectionsTask",
    "WriteObjectTableTask",
]

_PATCH_BAND = ("skymap", "tract", "patch", "band")
_PATCH = ("skymap", "tract", "patch")


# ------------------------------------------------------------------------------------------------ detect
class DetectCoaddConnections(pipe_base.PipelineTaskConnections, dimensions=_PATCH_BAND):
    coadd = ct.Input(doc="Coadd.", name="deepCoadd", storageClass="DrpExposure", dimensions=_PATCH_BAND)
    detections = ct.Output(
        doc="Detections on the coadd (patch pixels, significance).",
        name="deepCoadd_det",
        storageClass="ArrowAstropy",
        dimensions=_PATCH_BAND,
    )


class DetectCoaddTaskConfig(pipe_base.PipelineTaskConfig, pipelineConnections=DetectCoaddConnections):
    threshold = pex_config.Field[float](doc="Detection threshold (sigma).", default=5.0)
    min_area = pex_config.Field[int](doc="Minimum footprint area (pixels).", default=5)
    centroid_method = pex_config.ChoiceField[str](
        doc="How detections are re-centred before merging (the positions of every band's forced photometry; "
        "opendrp.multiband.centroids).",
        default="psf",
        allowed={
            "none": "the isophotal barycentre of the detection",
            "windowed": "Gaussian-windowed centroid (PSF fit for blended sources)",
            "psf": "PSF-fit position (flux, position and a constant; neighbours subtracted)",
        },
    )


class DetectCoaddTask(pipe_base.PipelineTask):
    """Detect sources on a coadd."""

    ConfigClass = DetectCoaddTaskConfig
    _DefaultName = "detectCoadd"
    config: DetectCoaddTaskConfig

    def run(self, *, coadd: Exposure) -> pipe_base.Struct:
        ny, nx = coadd.shape
        fwhm = coadd.psf.fwhm_pixels(nx / 2.0, ny / 2.0) if coadd.psf is not None else 2.0
        det = detect_sources(
            coadd.image,
            coadd.variance,
            coadd.mask,
            threshold=self.config.threshold,
            min_area=self.config.min_area,
            kernel_fwhm=fwhm,
            return_segmentation=False,
        )
        assert isinstance(det, Table)
        # significance of the footprint: isophotal flux over its noise (variance at the peak)
        iy, ix = np.asarray(det["y_peak"], int), np.asarray(det["x_peak"], int)
        var_peak = np.asarray(coadd.variance, float)[iy, ix]
        with np.errstate(divide="ignore", invalid="ignore"):
            sn = np.asarray(det["iso_flux"], float) / np.sqrt(
                np.asarray(det["footprint_area"], float) * var_peak
            )
        det["sn"] = np.nan_to_num(sn, nan=0.0, posinf=0.0)
        det["x_detect"], det["y_detect"] = det["x"], det["y"]
        x, y, x_err, y_err, c_flag = coadd_centroids(
            coadd.image,
            coadd.variance,
            coadd.mask,
            coadd.psf,
            np.asarray(det["x"], float),
            np.asarray(det["y"], float),
            method=self.config.centroid_method,
        )
        det["x"], det["y"], det["xErr"], det["yErr"], det["centroid_flag"] = x, y, x_err, y_err, c_flag
        self.metadata["n_detections"] = len(det)
        return pipe_base.Struct(detections=det)


# ------------------------------------------------------------------------------------------------ merge
class MergeDetectionsConnections(pipe_base.PipelineTaskConnections, dimensions=_PATCH):
    detections = ct.Input(
        doc="Per-band detections.",
        name="deepCoadd_det",
        storageClass="ArrowAstropy",
        dimensions=_PATCH_BAND,
        multiple=True,
        deferLoad=True,
    )
    sky_map = sky_map_input()
    merged = ct.Output(
        doc="Detections merged across bands, with objectId, sky positions and primary flags.",
        name="deepCoadd_mergeDet",
        storageClass="ArrowAstropy",
        dimensions=_PATCH,
    )


class MergeDetectionsTaskConfig(pipe_base.PipelineTaskConfig, pipelineConnections=MergeDetectionsConnections):
    match_radius = pex_config.Field[float](doc="Linking radius across bands (pixels).", default=2.0)


class MergeDetectionsTask(pipe_base.PipelineTask):
    """Merge the bands' detections into objects and flag the primary ones."""

    ConfigClass = MergeDetectionsTaskConfig
    _DefaultName = "mergeDetections"
    config: MergeDetectionsTaskConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:
        inputs = butlerQC.get(inputRefs)
        data_id = butlerQC.quantum.dataId
        detections = {str(h.dataId["band"]): h.get() for h in inputs["detections"]}
        with translate_errors():
            outputs = self.run(
                detections=detections,
                sky_map=inputs["sky_map"],
                tract=int(data_id["tract"]),
                patch=int(data_id["patch"]),
            )
        butlerQC.put(outputs, outputRefs)

    def run(
        self, *, detections: dict[str, Table], sky_map: RingsSkyMap, tract: int, patch: int
    ) -> pipe_base.Struct:
        merged = merge_detections(detections, radius_pixels=self.config.match_radius)
        tract_info = sky_map.tract(tract)
        patch_info = tract_info.patch(patch)
        x, y = np.asarray(merged["x"], float), np.asarray(merged["y"], float)
        if len(merged):
            ra, dec = patch_info.wcs.all_pix2world(x, y, 0)
        else:
            ra, dec = np.zeros(0), np.zeros(0)
        merged["objectId"] = make_object_id(tract, patch, np.arange(len(merged)))
        merged["coord_ra"], merged["coord_dec"] = ra, dec
        merged["tract"], merged["patch"] = tract, patch
        inner_p, inner_t, primary = primary_flags(
            ra, dec, x, y, patch=patch_info, tract=tract_info, skymap=sky_map
        )
        merged["detect_isPatchInner"] = inner_p
        merged["detect_isTractInner"] = inner_t
        merged["detect_isPrimary"] = primary
        self.metadata["n_objects"] = len(merged)
        self.metadata["n_primary"] = int(np.count_nonzero(primary))
        return pipe_base.Struct(merged=merged)


# ------------------------------------------------------------------------------------------------ forced
class ForcedPhotCoaddConnections(pipe_base.PipelineTaskConnections, dimensions=_PATCH_BAND):
    coadd = ct.Input(doc="Coadd.", name="deepCoadd", storageClass="DrpExposure", dimensions=_PATCH_BAND)
    merged = ct.Input(
        doc="Merged detections.", name="deepCoadd_mergeDet", storageClass="ArrowAstropy", dimensions=_PATCH
    )
    forced = ct.Output(
        doc="Forced measurement at the merged positions (nJy).",
        name="deepCoadd_forced_src",
        storageClass="ArrowAstropy",
        dimensions=_PATCH_BAND,
    )


class ForcedPhotCoaddTaskConfig(pipe_base.PipelineTaskConfig, pipelineConnections=ForcedPhotCoaddConnections):
    correlated_noise = pex_config.Field[bool](
        doc="Divide the variance by the coadd's COADD_NOISE_FACTOR for the measurement (the resampling "
        "correlates pixels: flux errors from the per-pixel variance are too small by sqrt(1/factor)).",
        default=True,
    )
    psf_flux_error_floor = pex_config.Field[float](
        doc="Fractional systematic error added in quadrature to psfFluxErr: the accuracy of the coadd PSF "
        "model (bright isolated stars scatter 0.2-0.3 % beyond their noise on the tiny preset and with a "
        "0.55-1.0 arcsec seeing spread, benchmarks/diagnose_coadd_photometry.py); 0 for noise only.",
        default=0.0025,
    )
    do_aperture_correction = pex_config.Field[bool](
        doc="Scale psfFlux, gaussianFlux and kronFlux to calibFlux, the corrections fitted on the coadd's "
        "bright point sources (as single-frame processing does on the PSF stars).",
        default=True,
    )
    aperture_correction_degree = pex_config.Field[int](
        doc="Polynomial degree in the patch position of the aperture corrections (0: one value per patch; "
        "a patch holds ~100 bright stars, and the coadd PSF's size error does not vary across it).",
        default=0,
    )
    aperture_correction_min_sn = pex_config.Field[float](
        doc="Minimum psfFlux S/N of the point sources the aperture corrections are fitted on.", default=50.0
    )
    aperture_correction_min_stars = pex_config.Field[int](
        doc="Fewer usable point sources than this: no aperture correction (psfFlux_flag_apCorr set).",
        default=5,
    )

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.aperture_correction_degree <= 4:
            raise ConfigurationError(
                f"aperture_correction_degree must be in [0, 4], got {self.aperture_correction_degree}",
                where="forcedPhotCoadd.aperture_correction_degree",
            )
        if not 0 <= self.psf_flux_error_floor < 1:
            raise ConfigurationError(
                f"psf_flux_error_floor must be in [0, 1), got {self.psf_flux_error_floor}",
                where="forcedPhotCoadd.psf_flux_error_floor",
            )
        if self.aperture_correction_min_stars < 1:
            raise ConfigurationError(
                f"aperture_correction_min_stars must be >= 1, got {self.aperture_correction_min_stars}",
                where="forcedPhotCoadd.aperture_correction_min_stars",
            )
        if self.aperture_correction_min_sn <= 0:
            raise ConfigurationError(
                f"aperture_correction_min_sn must be > 0, got {self.aperture_correction_min_sn}",
                where="forcedPhotCoadd.aperture_correction_min_sn",
            )


class ForcedPhotCoaddTask(pipe_base.PipelineTask):
    """Measure every merged object in one band's coadd at its fixed position."""

    ConfigClass = ForcedPhotCoaddTaskConfig
    _DefaultName = "forcedPhotCoadd"
    config: ForcedPhotCoaddTaskConfig

    def run(self, *, coadd: Exposure, merged: Table) -> pipe_base.Struct:
        if coadd.psf is None:
            raise pipe_base.InvalidQuantumError("coadd has no PSF")
        variance = coadd.variance
        factor = float(coadd.metadata.get("COADD_NOISE_FACTOR", 1.0) or 1.0)
        if self.config.correlated_noise and 0 < factor < 1:
            variance = variance / np.float32(factor)
        forced = measure_sources(
            coadd.image,
            variance,
            coadd.mask,
            coadd.psf,
            np.asarray(merged["x"], float),
            np.asarray(merged["y"], float),
            centroid=False,
        )
        if self.config.do_aperture_correction and len(forced):
            stars = coadd_apcorr_stars(forced, min_sn=self.config.aperture_correction_min_sn)
            apcorr = {}
            if stars.sum() >= self.config.aperture_correction_min_stars:
                apcorr = fit_aperture_corrections(
                    forced, stars, shape=coadd.shape, degree=self.config.aperture_correction_degree
                )
            apply_aperture_corrections(forced, apcorr)
            for alg, corr in apcorr.items():
                self.metadata[f"apcorr_{alg}_n_stars"] = corr.n_stars
                self.metadata[f"apcorr_{alg}_median"] = float(np.median(np.asarray(forced[alg + "_apCorr"])))
        if self.config.psf_flux_error_floor > 0 and len(forced):
            flux = np.asarray(forced["psfFlux"], float)
            err = np.asarray(forced["psfFluxErr"], float)
            forced["psfFluxErr"] = np.hypot(err, self.config.psf_flux_error_floor * flux)
        forced["objectId"] = merged["objectId"]
        return pipe_base.Struct(forced=forced)


# ------------------------------------------------------------------------------------------------ objects
class WriteObjectTableConnections(pipe_base.PipelineTaskConnections, dimensions=_PATCH):
    forced = ct.Input(
        doc="Per-band forced measurements.",
        name="deepCoadd_forced_src",
        storageClass="ArrowAstropy",
        dimensions=_PATCH_BAND,
        multiple=True,
        deferLoad=True,
    )
    merged = ct.Input(
        doc="Merged detections.", name="deepCoadd_mergeDet", storageClass="ArrowAstropy", dimensions=_PATCH
    )
    objects = ct.Output(
        doc="Object table of the patch (one row per object, per-band columns).",
        name="objectTable",
        storageClass="ArrowAstropy",
        dimensions=_PATCH,
    )


class WriteObjectTableTaskConfig(
    pipe_base.PipelineTaskConfig, pipelineConnections=WriteObjectTableConnections
):
    band_priority = pex_config.ListField[str](
        doc="Band order that breaks ties when choosing the reference band.",
        default=["i", "r", "z", "y", "g", "u"],
    )


class WriteObjectTableTask(pipe_base.PipelineTask):
    """Join the bands' forced measurements into the patch's Object table."""

    ConfigClass = WriteObjectTableTaskConfig
    _DefaultName = "writeObjectTable"
    config: WriteObjectTableTaskConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:
        inputs = butlerQC.get(inputRefs)
        forced = {str(h.dataId["band"]): h.get() for h in inputs["forced"]}
        outputs = self.run(forced=forced, merged=inputs["merged"])
        butlerQC.put(outputs, outputRefs)

    def run(self, *, forced: dict[str, Table], merged: Table) -> pipe_base.Struct:
        bands = sorted(forced)
        objects = make_object_table(
            merged, {b: forced[b] for b in bands}, band_priority=list(self.config.band_priority)
        )
        return pipe_base.Struct(objects=objects)


class ConsolidateObjectTableConnections(pipe_base.PipelineTaskConnections, dimensions=("skymap", "tract")):
    objects = ct.Input(
        doc="Per-patch Object tables.",
        name="objectTable",
        storageClass="ArrowAstropy",
        dimensions=_PATCH,
        multiple=True,
    )
    tract_objects = ct.Output(
        doc="The tract's Object table.",
        name="objectTable_tract",
        storageClass="ArrowAstropy",
        dimensions=("skymap", "tract"),
    )


class ConsolidateObjectTableTaskConfig(
    pipe_base.PipelineTaskConfig, pipelineConnections=ConsolidateObjectTableConnections
):
    pass


class ConsolidateObjectTableTask(pipe_base.PipelineTask):
    """Concatenate the patches' Object tables of a tract."""

    ConfigClass = ConsolidateObjectTableTaskConfig
    _DefaultName = "consolidateObjectTable"
    config: ConsolidateObjectTableTaskConfig

    def run(self, *, objects: list[Table]) -> pipe_base.Struct:
        table = vstack(objects, join_type="outer", metadata_conflicts="silent")
        self.metadata["n_objects"] = len(table)
        return pipe_base.Struct(tract_objects=table)
