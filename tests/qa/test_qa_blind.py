"""Blind insertions: recovered eggs, unexplained (spurious) objects, recovered photometry."""

import numpy as np
import pandas as pd

from opendrp.qa import PolygonFootprint, blind_metrics, match_catalogs


def test_blind_insertions_scored() -> None:
    rng = np.random.default_rng(3)
    n_truth = 300
    ra = 150.0 + rng.uniform(-0.05, 0.05, n_truth)
    dec = 2.0 + rng.uniform(-0.05, 0.05, n_truth)
    flux = 10 ** rng.uniform(3.5, 5.0, n_truth)
    # 40 eggs: 30 recovered (constant, exact flux), 10 missed; plus 5 spurious objects
    n_egg = 40
    e_ra = 150.0 + rng.uniform(-0.05, 0.05, n_egg)
    e_dec = 2.0 + rng.uniform(-0.05, 0.05, n_egg)
    e_flux = np.full(n_egg, 5e4)
    blind = pd.DataFrame(
        {"id": 10**9 + np.arange(n_egg), "ra": e_ra, "dec": e_dec, "kind": "constant", "g_flux": e_flux}
    )
    s_ra = 150.0 + rng.uniform(-0.05, 0.05, 5)
    s_dec = 2.0 + rng.uniform(-0.05, 0.05, 5)
    o_ra = np.concatenate([ra, e_ra[:30], s_ra])
    o_dec = np.concatenate([dec, e_dec[:30], s_dec])
    o_flux = np.concatenate([flux, e_flux[:30], np.full(5, 1e4)])
    objects = pd.DataFrame(
        {
            "objectId": np.arange(o_ra.size),
            "coord_ra": o_ra,
            "coord_dec": o_dec,
            "detect_isPrimary": True,
            "g_psfFlux": o_flux,
            "g_psfFluxErr": o_flux / 200.0,
            "refExtendedness": 0.0,
        }
    )
    square = (np.array([149.9, 150.1, 150.1, 149.9]), np.array([1.9, 1.9, 2.1, 2.1]))
    i_obj, _, _ = match_catalogs(
        objects["coord_ra"].to_numpy(), objects["coord_dec"].to_numpy(), ra, dec, radius_arcsec=0.5
    )
    unmatched = np.ones(len(objects), bool)
    unmatched[i_obj] = False
    assert unmatched.sum() in (
        34,
        35,
    )  # 30 eggs + 5 spurious; a close pair of random points may steal a match
    b = blind_metrics(
        objects,
        unmatched,
        blind,
        ["g"],
        in_footprint=PolygonFootprint([square]).contains(e_ra, e_dec),
        radius_arcsec=0.5,
        mag_bin_width=0.5,
        snr_min=50.0,
    )
    assert b["n_inserted"]["value"] == 40
    assert b["n_recovered"]["value"] == 30
    assert b["by_kind"]["constant"]["recovered_fraction"]["value"] == 0.75
    # objects matched to neither the truth nor an egg:
    assert b["n_unexplained_objects"]["value"] in (4, 5)
    assert abs(b["bands"]["g"]["photometry"]["offset_median"]["value"]) < 1e-9
