"""Calibration products: master bias and master flat from calibration exposures."""

from __future__ import annotations

from typing import Any

import lsst.pex.config as pex_config
import lsst.pipe.base as pipe_base
import lsst.pipe.base.connectionTypes as ct

from ..calib import combine_bias, combine_flat
from ..image import Exposure
from ..instrument import Camera
from ..raw import RawImage
from ._base import translate_errors
from ._connections import bias_input, camera_input, raw_input

__all__ = ["BiasTask", "BiasTaskConfig", "FlatTask", "FlatTaskConfig"]


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


class FlatTaskConfig(pipe_base.PipelineTaskConfig, pipelineConnections=FlatConnections):
    do_bias = pex_config.Field[bool](doc="Subtract the master bias before combining.", default=True)
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
                raws=inputs["raws"], camera=inputs["camera"], detector=detector, bias=inputs.get("bias")
            )
        butlerQC.put(outputs, outputRefs)

    def run(
        self, *, raws: list[RawImage], camera: Camera, detector: int, bias: Exposure | None = None
    ) -> pipe_base.Struct:
        if len(raws) < self.config.min_inputs:
            raise pipe_base.NoWorkFound(f"{len(raws)} flat exposures < min_inputs={self.config.min_inputs}")
        flat: Exposure = combine_flat(raws, camera.detector(detector), bias=bias)
        flat.metadata["NCOMBINE"] = len(raws)
        self.metadata["n_inputs"] = len(raws)
        return pipe_base.Struct(flat=flat)
