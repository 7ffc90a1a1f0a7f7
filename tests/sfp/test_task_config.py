"""CalibrateImageTaskConfig -> CalibrateConfig."""

from opendrp.photometry import library_colour_terms
from opendrp.tasks.sfp import CalibrateImageTaskConfig


def test_colour_term_library_reaches_calibrate_config() -> None:
    config = CalibrateImageTaskConfig()
    assert config.calibrate_config().resolved_colour_terms() == {}
    config.colour_term_library = "hsc/ps1"
    config.colour_terms = {"r": "r,i,0.0,0.0,0.0"}
    cal = config.calibrate_config()
    assert cal.colour_term_library == "hsc/ps1"
    terms = cal.resolved_colour_terms()
    expected = library_colour_terms("hsc/ps1")
    assert set(terms) == set(expected) | {"r"}
    assert terms["r"] == "r,i,0.0,0.0,0.0"  # the explicit term overrides the library's
    assert terms["g"] == expected["g"]
