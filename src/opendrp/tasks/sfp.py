"""Single-frame processing: raw -> ISR -> calexp, background and Source catalog, per (visit, detector)."""

from __future__ import annotations

from typing import Any

import lsst.pex.config as pex_config
import lsst.pipe.base as pipe_base
import lsst.pipe.base.connectionTypes as ct
import numpy as np
from astropy.table import Table, vstack

from ..calib import defects_to_mask
from ..image import Exposure, mask_bit
from ..image.memory import tune_memory
from ..instrument import Camera
from ..instrument.geometry import Pointing, detector_wcs
from ..isr import run_isr
from ..raw import RawImage
from ..sfp import CalibrateConfig, calibrate_exposure
from ._base import record_metrics, translate_errors
from ._connections import bias_input, camera_input, dark_input, defects_input, flat_input, raw_input

__all__ = ["CalibrateImageTask", "CalibrateImageTaskConfig"]


def _image_and_mask(handle: Any, *, variance: bool = False) -> Exposure | None:
    """A calibration's image and ``BAD`` mask plane (what ISR uses; one byte per pixel), and its variance
    plane only if asked (memory)."""
    if handle is None:
        return None
    image = handle.get(component="image")
    bad = mask_bit("BAD")
    mask = (handle.get(component="mask") & bad).astype(np.uint8 if bad < 256 else np.int32)
    var = handle.get(component="variance") if variance else np.broadcast_to(np.float32(0.0), image.shape)
    return Exposure(image, mask, var)


class CalibrateImageConnections(
    pipe_base.PipelineTaskConnections, dimensions=("instrument", "visit", "detector")
):
    raws = raw_input("Raw exposure(s) of the visit on this detector (one exposure per visit).")
    camera = camera_input()
    bias = bias_input(defer_load=True)
    dark = dark_input(defer_load=True)
    flat = flat_input(defer_load=True)
    defects = defects_input()
    ref_cat = ct.PrerequisiteInput(
        doc="Reference catalog shards overlapping the detector.",
        name="ref_cat",
        storageClass="ArrowAstropy",
        dimensions=("htm7",),
        multiple=True,
        deferLoad=True,
    )
    calexp = ct.Output(
        doc="Calibrated exposure: background-subtracted, with WCS, PSF and photometric calibration.",
        name="calexp",
        storageClass="DrpExposure",
        dimensions=("instrument", "visit", "detector"),
    )
    background = ct.Output(
        doc="Background model subtracted from the calexp.",
        name="calexpBackground",
        storageClass="DrpBackground",
        dimensions=("instrument", "visit", "detector"),
    )
    src = ct.Output(
        doc="Source catalog (Rubin Source column names, fluxes in nJy).",
        name="src",
        storageClass="ArrowAstropy",
        dimensions=("instrument", "visit", "detector"),
    )

    def __init__(self, *, config: Any = None) -> None:
        super().__init__(config=config)
        if config is not None:
            if not config.do_bias:
                del self.bias
            if not config.do_flat:
                del self.flat
            if not config.do_dark:
                del self.dark
            if not config.do_defects:
                del self.defects


class CalibrateImageTaskConfig(pipe_base.PipelineTaskConfig, pipelineConnections=CalibrateImageConnections):
    do_bias = pex_config.Field[bool](doc="Subtract the master bias.", default=True)
    do_flat = pex_config.Field[bool](doc="Divide by the master flat.", default=True)
    do_dark = pex_config.Field[bool](
        doc="Subtract the master dark scaled by the exposure time (needs a certified dark).", default=False
    )
    do_defects = pex_config.Field[bool](
        doc="Mask (BAD) and interpolate the certified defects (needs certified defects).", default=False
    )
    do_cosmic_rays = pex_config.Field[bool](
        doc="Find, mask (CR) and interpolate cosmic rays after the first PSF estimate.", default=True
    )
    detection_threshold = pex_config.Field[float](doc="Detection threshold (sigma).", default=5.0)
    psf_spatial_degree = pex_config.Field[int](doc="Spatial degree of the PSF model.", default=2)
    astrometry_order = pex_config.Field[int](doc="Polynomial order of the TAN-SIP fit.", default=3)
    do_aperture_correction = pex_config.Field[bool](
        doc="Scale psfFlux, gaussianFlux and kronFlux to calibFlux (corrections fitted on the PSF stars).",
        default=True,
    )
    aperture_correction_degree = pex_config.Field[int](
        doc="Polynomial degree in the CCD position of the aperture corrections.", default=2
    )
    colour_terms: pex_config.DictField = pex_config.DictField(
        keytype=str,
        itemtype=str,
        doc="Band -> 'primary,secondary,c0,c1,c2': reference magnitudes transformed into the instrument's "
        "passband, m = m_p + c0 + c1 (m_p - m_s) + c2 (m_p - m_s)**2, before the zero point.",
        default={},
    )
    colour_term_library = pex_config.Field[str](
        doc="Built-in per-band colour terms 'instrument/reference' (opendrp.photometry.COLOUR_TERM_LIBRARY): "
        "'hsc/ps1' for HSC against Pan-STARRS1, 'hsc/sdss' against SDSS; '' for a reference catalogue "
        "already in the instrument's passbands (the simulator's). colour_terms override its terms.",
        default="",
    )

    def calibrate_config(self) -> CalibrateConfig:
        return CalibrateConfig(
            do_cosmic_rays=self.do_cosmic_rays,
            detection_threshold=self.detection_threshold,
            psf_degree=self.psf_spatial_degree,
            astrometry_order=self.astrometry_order,
            do_aperture_correction=self.do_aperture_correction,
            aperture_correction_degree=self.aperture_correction_degree,
            colour_terms=dict(self.colour_terms),
            colour_term_library=self.colour_term_library,
        )


class CalibrateImageTask(pipe_base.PipelineTask):
    """Instrument signature removal, characterization (background, PSF) and calibration (WCS, zero point)."""

    ConfigClass = CalibrateImageTaskConfig
    _DefaultName = "calibrateImage"
    config: CalibrateImageTaskConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:
        tune_memory()  # full-size temporaries reused from the heap (no page faults per array)
        inputs = butlerQC.get(inputRefs)
        shards = [h.get() for h in inputs.pop("ref_cat")]
        refcat = vstack(shards, metadata_conflicts="silent") if shards else Table()
        data_id = butlerQC.quantum.dataId
        with translate_errors():
            # ISR first, popping the calibrations so that their memory is freed before calibration
            exposure = self.run_isr(
                raws=inputs.pop("raws"),
                camera=inputs["camera"],
                detector=int(data_id["detector"]),
                bias=_image_and_mask(inputs.pop("bias", None)),
                flat=_image_and_mask(inputs.pop("flat", None), variance=True),  # flat noise -> variance
                dark=_image_and_mask(inputs.pop("dark", None)),
                defects=inputs.pop("defects", None),
            )
            outputs = self.calibrate(
                exposure,
                refcat=refcat,
                detector=int(data_id["detector"]),
                band=str(data_id["band"]),
                visit=int(data_id["visit"]),
            )
        butlerQC.put(outputs, outputRefs)

    def run(
        self,
        *,
        raws: list[RawImage],
        camera: Camera,
        detector: int,
        band: str,
        refcat: Table,
        bias: Exposure | None = None,
        flat: Exposure | None = None,
        dark: Exposure | None = None,
        defects: Table | None = None,
        visit: int = 0,
    ) -> pipe_base.Struct:
        exposure = self.run_isr(
            raws=raws, camera=camera, detector=detector, bias=bias, flat=flat, dark=dark, defects=defects
        )
        return self.calibrate(exposure, refcat=refcat, detector=detector, band=band, visit=visit)

    def run_isr(
        self,
        *,
        raws: list[RawImage],
        camera: Camera,
        detector: int,
        bias: Exposure | None = None,
        flat: Exposure | None = None,
        dark: Exposure | None = None,
        defects: Table | None = None,
    ) -> Exposure:
        """Instrument signature removal of the visit's raw, with the initial WCS from the header pointing."""
        if len(raws) != 1:
            raise pipe_base.InvalidQuantumError(f"expected one exposure per visit, got {len(raws)}")
        raw = raws[0]
        header = raw.header
        det_spec = camera.detector(detector)
        defect_mask = None if defects is None else defects_to_mask(defects, det_spec.shape)
        exposure = run_isr(raw, det_spec, bias=bias, dark=dark, flat=flat, defects=defect_mask)
        pointing = Pointing(header.boresight_ra, header.boresight_dec, header.boresight_rotation)
        exposure.wcs = detector_wcs(camera, detector, pointing)
        return exposure

    def calibrate(
        self, exposure: Exposure, *, refcat: Table, detector: int, band: str, visit: int = 0
    ) -> pipe_base.Struct:
        """Characterize and calibrate a post-ISR exposure: calexp, background and src."""
        exposure.metadata.update({"VISIT": visit, "DETECTOR": detector, "BAND": band})
        result = calibrate_exposure(exposure, refcat, band=band, config=self.config.calibrate_config())
        src = result.src
        src["visit"] = visit
        src["detector"] = detector
        src["band"] = band
        record_metrics(self, result.metrics)
        self.log.info(
            "visit %d detector %d: %d sources, %s",
            visit,
            detector,
            len(src),
            ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items() if isinstance(v, float)),
        )
        return pipe_base.Struct(calexp=result.calexp, background=result.background, src=src)
