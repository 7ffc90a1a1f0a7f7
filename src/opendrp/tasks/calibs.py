"""Calibration products: master bias, dark and flat from calibration exposures, and defects."""

from __future__ import annotations

from typing import Any

import lsst.pex.config as pex_config
import lsst.pipe.base as pipe_base
import lsst.pipe.base.connectionTypes as ct
import numpy as np
from astropy.table import Table

from ..calib import combine_bias, combine_dark, combine_flat, defects_from_calibs
from ..image import Exposure
from ..instrument import Camera
from ..raw import RawImage
from ._base import translate_errors
from ._connections import bias_input, camera_input, dark_input, raw_input

__all__ = [
    "BiasTask",
    "BiasTaskConfig",
    "DarkTask",
    "DarkTaskConfig",
    "DefectsTask",
    "DefectsTaskConfig",
    "FlatTask",
    "FlatTaskConfig",
]


class BiasConnections(pipe_base.PipelineTaskConnections, dimensions=("instrument", "detector")):
    raws = raw_input("Bias exposures of one detector.")
    camera = camera_input()
    bias = ct.Output(
        doc="Master bias (electrons).",
        name="bias",
        storageClass="DrpExposure",
        dimensions=("instrument", "detector"),
        isCalibration=True,
    )


class BiasTaskConfig(pipe_base.PipelineTaskConfig, pipelineConnections=BiasConnections):
    min_inputs = pex_config.Field[int](doc="Fewest bias exposures to combine.", default=1)


class BiasTask(pipe_base.PipelineTask):
    """Combine bias exposures (overscan-corrected, gain-applied, sigma-clipped mean) into a master bias."""

    ConfigClass = BiasTaskConfig
    _DefaultName = "cpBias"
    config: BiasTaskConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:
        inputs = butlerQC.get(inputRefs)
        detector = butlerQC.quantum.dataId["detector"]
        with translate_errors():
            outputs = self.run(raws=inputs["raws"], camera=inputs["camera"], detector=detector)
        butlerQC.put(outputs, outputRefs)

    def run(self, *, raws: list[RawImage], camera: Camera, detector: int) -> pipe_base.Struct:
        if len(raws) < self.config.min_inputs:
            raise pipe_base.NoWorkFound(f"{len(raws)} bias exposures < min_inputs={self.config.min_inputs}")
        bias: Exposure = combine_bias(raws, camera.detector(detector))
        bias.metadata["NCOMBINE"] = len(raws)
        self.metadata["n_inputs"] = len(raws)
        return pipe_base.Struct(bias=bias)


class FlatConnections(
    pipe_base.PipelineTaskConnections, dimensions=("instrument", "detector", "physical_filter")
):
    raws = raw_input("Flat-field exposures of one detector in one filter.")
    camera = camera_input()
    bias = bias_input()
    dark = dark_input()
    flat = ct.Output(
        doc="Master flat (normalized to mean 1).",
        name="flat",
        storageClass="DrpExposure",
        dimensions=("instrument", "detector", "physical_filter"),
        isCalibration=True,
    )

    def __init__(self, *, config: Any = None) -> None:
        super().__init__(config=config)
        if config is not None and not config.do_bias:
            del self.bias
        if config is not None and not config.do_dark:
            del self.dark


class FlatTaskConfig(pipe_base.PipelineTaskConfig, pipelineConnections=FlatConnections):
    do_bias = pex_config.Field[bool](doc="Subtract the master bias before combining.", default=True)
    do_dark = pex_config.Field[bool](
        doc="Subtract the master dark (scaled by the exposure time) before combining.", default=False
    )
    min_inputs = pex_config.Field[int](doc="Fewest flat exposures to combine.", default=1)


class FlatTask(pipe_base.PipelineTask):
    """Combine flat-field exposures (each normalized, sigma-clipped) into a master flat of mean 1."""

    ConfigClass = FlatTaskConfig
    _DefaultName = "cpFlat"
    config: FlatTaskConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:
        inputs = butlerQC.get(inputRefs)
        detector = butlerQC.quantum.dataId["detector"]
        with translate_errors():
            outputs = self.run(
                raws=inputs["raws"],
                camera=inputs["camera"],
                detector=detector,
                bias=inputs.get("bias"),
                dark=inputs.get("dark"),
            )
        butlerQC.put(outputs, outputRefs)

    def run(
        self,
        *,
        raws: list[RawImage],
        camera: Camera,
        detector: int,
        bias: Exposure | None = None,
        dark: Exposure | None = None,
    ) -> pipe_base.Struct:
        if len(raws) < self.config.min_inputs:
            raise pipe_base.NoWorkFound(f"{len(raws)} flat exposures < min_inputs={self.config.min_inputs}")
        flat: Exposure = combine_flat(raws, camera.detector(detector), bias=bias, dark=dark)
        flat.metadata["NCOMBINE"] = len(raws)
        self.metadata["n_inputs"] = len(raws)
        return pipe_base.Struct(flat=flat)


class DarkConnections(pipe_base.PipelineTaskConnections, dimensions=("instrument", "detector")):
    raws = raw_input("Dark exposures of one detector.")
    camera = camera_input()
    bias = bias_input()
    dark = ct.Output(
        doc="Master dark (electrons per second).",
        name="dark",
        storageClass="DrpExposure",
        dimensions=("instrument", "detector"),
        isCalibration=True,
    )

    def __init__(self, *, config: Any = None) -> None:
        super().__init__(config=config)
        if config is not None and not config.do_bias:
            del self.bias


class DarkTaskConfig(pipe_base.PipelineTaskConfig, pipelineConnections=DarkConnections):
    do_bias = pex_config.Field[bool](doc="Subtract the master bias before combining.", default=True)
    min_inputs = pex_config.Field[int](doc="Fewest dark exposures to combine.", default=1)


class DarkTask(pipe_base.PipelineTask):
    """Combine dark exposures (bias-subtracted, scaled to 1 s, sigma-clipped) into a master dark."""

    ConfigClass = DarkTaskConfig
    _DefaultName = "cpDark"
    config: DarkTaskConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:
        inputs = butlerQC.get(inputRefs)
        detector = butlerQC.quantum.dataId["detector"]
        with translate_errors():
            outputs = self.run(
                raws=inputs["raws"], camera=inputs["camera"], detector=detector, bias=inputs.get("bias")
            )
        butlerQC.put(outputs, outputRefs)

    def run(
        self, *, raws: list[RawImage], camera: Camera, detector: int, bias: Exposure | None = None
    ) -> pipe_base.Struct:
        if len(raws) < self.config.min_inputs:
            raise pipe_base.NoWorkFound(f"{len(raws)} dark exposures < min_inputs={self.config.min_inputs}")
        dark: Exposure = combine_dark(raws, camera.detector(detector), bias=bias)
        self.metadata["n_inputs"] = len(raws)
        self.metadata["dark_median_e_per_s"] = float(np.median(dark.image[::4, ::4]))
        return pipe_base.Struct(dark=dark)


class DefectsConnections(pipe_base.PipelineTaskConnections, dimensions=("instrument", "detector")):
    dark = dark_input()
    flats = ct.PrerequisiteInput(
        doc="Master flats of the detector (every filter).",
        name="flat",
        storageClass="DrpExposure",
        dimensions=("instrument", "detector", "physical_filter"),
        isCalibration=True,
        multiple=True,
        minimum=0,
    )
    defects = ct.Output(
        doc="Defects of the detector: boxes of bad pixels (x0, y0, width, height).",
        name="defects",
        storageClass="ArrowAstropy",
        dimensions=("instrument", "detector"),
        isCalibration=True,
    )

    def __init__(self, *, config: Any = None) -> None:
        super().__init__(config=config)
        if config is not None and not config.use_dark:
            del self.dark
        if config is not None and not config.use_flats:
            del self.flats


class DefectsTaskConfig(pipe_base.PipelineTaskConfig, pipelineConnections=DefectsConnections):
    use_dark = pex_config.Field[bool](doc="Find hot pixels in the master dark.", default=True)
    use_flats = pex_config.Field[bool](
        doc="Find dead and low-response pixels in the master flats.", default=True
    )
    dark_min_rate = pex_config.Field[float](
        doc="Smallest excess dark current of a hot pixel (electrons/s).", default=0.1
    )
    dark_n_sigma = pex_config.Field[float](
        doc="A hot pixel's excess dark current also exceeds this many standard deviations.", default=5.0
    )
    flat_threshold = pex_config.Field[float](
        doc="Fractional departure from the local smooth flat beyond which a pixel is a defect.", default=0.2
    )


class DefectsTask(pipe_base.PipelineTask):
    """Defects of a detector from its master dark (hot pixels) and master flats (dead, low response)."""

    ConfigClass = DefectsTaskConfig
    _DefaultName = "cpDefects"
    config: DefectsTaskConfig

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:
        inputs = butlerQC.get(inputRefs)
        with translate_errors():
            outputs = self.run(dark=inputs.get("dark"), flats=inputs.get("flats") or [])
        butlerQC.put(outputs, outputRefs)

    def run(self, *, dark: Exposure | None = None, flats: list[Exposure] | None = None) -> pipe_base.Struct:
        flats = list(flats or [])
        if dark is None and not flats:
            raise pipe_base.NoWorkFound("no master dark and no master flat to find defects in")
        defects: Table = defects_from_calibs(
            dark=dark,
            flats=flats,
            dark_min_rate=self.config.dark_min_rate,
            dark_n_sigma=self.config.dark_n_sigma,
            flat_threshold=self.config.flat_threshold,
        )
        for key in ("NPIXBAD", "NHOT", "NFLATBAD"):
            self.metadata[key.lower()] = int(defects.meta[key])
        self.metadata["n_boxes"] = len(defects)
        return pipe_base.Struct(defects=defects)
