"""Colour terms: reference magnitudes transformed into the instrument passband; the zero point's colour
slope."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from opendrp.errors import ConfigurationError
from opendrp.photometry import ColourTerm, fit_zero_point, reference_colour


def _refcat(n: int, rng: np.random.Generator) -> Table:
    t = Table()
    r = rng.uniform(17, 21, n)
    g_r = rng.uniform(0.2, 1.5, n)
    r_i = 0.4 * g_r + rng.normal(0, 0.02, n)
    for band, mag in (("g", r + g_r), ("r", r), ("i", r - r_i)):
        t[f"{band}_flux"] = 10 ** (-0.4 * (mag - 31.4))
        t[f"{band}_fluxErr"] = 0.005 * t[f"{band}_flux"]
    return t


def test_transform_and_zero_point_with_a_colour_term() -> None:
    rng = np.random.default_rng(1)
    ref = _refcat(200, rng)
    term = ColourTerm.parse("r,i,0.01,-0.12,0.02")
    r_i = -2.5 * np.log10(np.asarray(ref["r_flux"]) / np.asarray(ref["i_flux"]))
    m_inst_system = -2.5 * np.log10(np.asarray(ref["r_flux"])) + 31.4 + 0.01 - 0.12 * r_i + 0.02 * r_i**2
    flux, err = term.transform(ref)
    np.testing.assert_allclose(-2.5 * np.log10(flux) + 31.4, m_inst_system, atol=1e-10)
    assert np.all(err > 0)
    # an instrument whose passband differs: electrons = true flux in its system / 57.5 nJy per electron
    inst = 10 ** (-0.4 * (m_inst_system - 31.4)) / 57.5 * (1 + 0.002 * rng.normal(size=200))
    colour, name = reference_colour(ref, "r")
    assert name == "g-r"
    without = fit_zero_point(inst, 0.002 * inst, np.asarray(ref["r_flux"]), colour=colour)
    with_term = fit_zero_point(inst, 0.002 * inst, flux, err, colour=colour)
    assert with_term.scatter_mag < 0.004 < without.scatter_mag
    assert abs(with_term.photo_calib.calibration_mean / 57.5 - 1) < 2e-3
    # the missing colour term shows as a slope of the zero point against the colour (r-i = 0.4 (g-r))
    assert without.colour_slope < -0.03 and abs(without.colour_slope / without.colour_slope_err) > 10
    assert abs(with_term.colour_slope) < 3 * with_term.colour_slope_err + 1e-3


def test_bad_colour_terms_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        ColourTerm.parse("r")
    with pytest.raises(ConfigurationError):
        ColourTerm.parse("r,i,zero")
    with pytest.raises(ConfigurationError, match="z_flux"):
        ColourTerm.parse("z,i,0,0.1").transform(_refcat(5, np.random.default_rng(0)))
    assert reference_colour(Table({"x": [1.0]}), "r") is None


def test_hsc_ps1_library_defaults_per_band() -> None:
    from opendrp.photometry import library_colour_terms
    from opendrp.sfp import CalibrateConfig

    terms = library_colour_terms("hsc/ps1")
    assert sorted(terms) == ["g", "i", "r", "y", "z"]
    g = ColourTerm.parse(terms["g"])
    assert (g.primary, g.secondary) == ("g", "r")
    # a star with PS1 g - r = 0.5 is 0.0073 + 0.0325 - 0.0038 = 0.036 mag fainter in HSC-G
    t = Table({"g_flux": [10 ** (-0.4 * (20.0 - 31.4))], "r_flux": [10 ** (-0.4 * (19.5 - 31.4))]})
    flux, _ = g.transform(t)
    assert -2.5 * np.log10(flux[0]) + 31.4 == pytest.approx(
        20.0 + 0.00730066 + 0.5 * 0.06508481 - 0.25 * 0.0151057
    )
    assert library_colour_terms("") == {}
    cfg = CalibrateConfig(colour_term_library="HSC/ps1", colour_terms={"r": "r,i,0.0,0.1"})
    cfg.validate()
    resolved = cfg.resolved_colour_terms()
    assert resolved["r"] == "r,i,0.0,0.1" and resolved["i"] == terms["i"]
    with pytest.raises(ConfigurationError, match="colour terms"):
        CalibrateConfig(colour_term_library="hsc/gaia").validate()
