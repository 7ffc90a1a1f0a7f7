"""The coadd and multi-band task configs name the offending field."""

from __future__ import annotations

import pytest

from opendrp.errors import ConfigurationError
from opendrp.tasks.coadd import AssembleCoaddTaskConfig, MakeWarpTaskConfig
from opendrp.tasks.multiband import DetectCoaddTaskConfig, ForcedPhotCoaddTaskConfig


@pytest.mark.parametrize(
    "cls, field, value, where",
    [
        (MakeWarpTaskConfig, "psf_cells", [0, 2], "makeWarp.psf_cells"),
        (MakeWarpTaskConfig, "psf_cells", [1, 2, 3], "makeWarp.psf_cells"),
        (AssembleCoaddTaskConfig, "clip_footprint", 4, "assembleCoadd.clip_footprint"),
        (AssembleCoaddTaskConfig, "clip_fraction", -0.1, "assembleCoadd.clip_fraction"),
        (AssembleCoaddTaskConfig, "clip_sigma", -1.0, "assembleCoadd.clip_sigma"),
        (
            ForcedPhotCoaddTaskConfig,
            "aperture_correction_degree",
            5,
            "forcedPhotCoadd.aperture_correction_degree",
        ),
        (
            ForcedPhotCoaddTaskConfig,
            "aperture_correction_min_stars",
            0,
            "forcedPhotCoadd.aperture_correction_min_stars",
        ),
    ],
)
def test_validate_names_the_field(cls, field, value, where):
    config = cls()
    config.validate()  # the defaults are valid
    setattr(config, field, value)
    with pytest.raises(ConfigurationError) as info:
        config.validate()
    assert info.value.where == where


def test_defaults():
    assert list(MakeWarpTaskConfig().psf_cells) == [1, 1]
    assert AssembleCoaddTaskConfig().psf_clip_tolerance is True
    assert DetectCoaddTaskConfig().centroid_method == "psf"
    forced = ForcedPhotCoaddTaskConfig()
    assert (
        forced.do_aperture_correction and forced.correlated_noise and forced.aperture_correction_degree == 0
    )
