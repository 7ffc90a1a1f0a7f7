"""Connections that several tasks declare alike (each call makes a new connection object)."""

from __future__ import annotations

import lsst.pipe.base.connectionTypes as ct

__all__ = [
    "bias_input",
    "camera_input",
    "dark_input",
    "defects_input",
    "flat_input",
    "raw_input",
    "sky_map_input",
]


def raw_input(doc: str) -> ct.Input:
    """Raw exposures of one detector (``multiple``: a visit or a calibration set has several)."""
    return ct.Input(
        doc=doc,
        name="raw",
        storageClass="DrpRawImage",
        dimensions=("instrument", "exposure", "detector"),
        multiple=True,
    )


def camera_input() -> ct.PrerequisiteInput:
    return ct.PrerequisiteInput(
        doc="Camera description.", name="camera", storageClass="DrpCamera", dimensions=("instrument",)
    )


def bias_input(*, defer_load: bool = False) -> ct.PrerequisiteInput:
    """``defer_load``: the task reads it (or some of its components) itself."""
    return ct.PrerequisiteInput(
        doc="Master bias.",
        deferLoad=defer_load,
        name="bias",
        storageClass="DrpExposure",
        dimensions=("instrument", "detector"),
        isCalibration=True,
    )


def dark_input(*, defer_load: bool = False) -> ct.PrerequisiteInput:
    """``defer_load``: the task reads it (or some of its components) itself."""
    return ct.PrerequisiteInput(
        doc="Master dark (electrons per second).",
        deferLoad=defer_load,
        name="dark",
        storageClass="DrpExposure",
        dimensions=("instrument", "detector"),
        isCalibration=True,
    )


def defects_input() -> ct.PrerequisiteInput:
    return ct.PrerequisiteInput(
        doc="Defects of the detector (boxes of bad pixels: x0, y0, width, height).",
        name="defects",
        storageClass="ArrowAstropy",
        dimensions=("instrument", "detector"),
        isCalibration=True,
    )


def flat_input(*, defer_load: bool = False) -> ct.PrerequisiteInput:
    """``defer_load``: the task reads it (or some of its components) itself."""
    return ct.PrerequisiteInput(
        doc="Master flat.",
        deferLoad=defer_load,
        name="flat",
        storageClass="DrpExposure",
        dimensions=("instrument", "detector", "physical_filter"),
        isCalibration=True,
    )


def sky_map_input() -> ct.PrerequisiteInput:
    return ct.PrerequisiteInput(
        doc="The sky map.", name="skyMap", storageClass="DrpSkyMap", dimensions=("skymap",)
    )
