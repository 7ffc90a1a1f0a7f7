"""Merging detections across bands, object ids, primary flags and the Object table."""

import numpy as np
import pytest
from astropy.table import Table

from opendrp.multiband import (
    make_object_id,
    make_object_table,
    merge_detections,
    primary_flags,
    reference_band,
)
from opendrp.skymap import RingsSkyMap, SkyMapConfig


def test_merge_links_across_bands_and_keeps_best_position() -> None:
    g = Table({"x": [10.0, 50.0, 90.0], "y": [10.0, 50.0, 90.0], "sn": [20.0, 8.0, 6.0]})
    r = Table({"x": [10.8, 50.3, 200.0], "y": [10.2, 49.9, 5.0], "sn": [10.0, 30.0, 7.0]})
    merged = merge_detections({"g": g, "r": r}, radius_pixels=2.0)
    assert len(merged) == 4
    by_pos = {(round(float(x)), round(float(y))): row for x, y, row in zip(merged["x"], merged["y"], merged)}
    assert by_pos[(10, 10)]["detect_band"] == "g"  # g has the higher S/N there
    assert by_pos[(50, 50)]["detect_band"] == "r"
    assert float(by_pos[(50, 50)]["x"]) == pytest.approx(50.3)
    assert by_pos[(50, 50)]["n_bands"] == 2 and by_pos[(90, 90)]["n_bands"] == 1
    assert bool(by_pos[(200, 5)]["detected_r"]) and not bool(by_pos[(200, 5)]["detected_g"])


def test_merge_empty() -> None:
    merged = merge_detections({"g": Table({"x": [], "y": [], "sn": []})})
    assert len(merged) == 0


def test_object_ids_unique_across_patches() -> None:
    a = make_object_id(9810, 3, np.arange(1000))
    b = make_object_id(9810, 4, np.arange(1000))
    c = make_object_id(9811, 3, np.arange(1000))
    allids = np.concatenate([a, b, c])
    assert len(np.unique(allids)) == 3000
    assert (int(a[5]) >> 31) == 9810


def test_primary_exactly_once_in_overlaps() -> None:
    skymap = RingsSkyMap(SkyMapConfig(patch_inner_pixels=500, patch_border_pixels=50))
    tract_id = int(skymap.find_tract([150.1], [2.2])[0])
    tract = skymap.tract(tract_id)
    rng = np.random.default_rng(0)
    # points around a patch corner, seen by the 4 patches sharing it
    tx, ty = 1000 + rng.uniform(-60, 60, 300), 1500 + rng.uniform(-60, 60, 300)
    ra, dec = tract.wcs.wcs_pix2world(tx, ty, 0)
    counts = np.zeros(tx.size, int)
    for pid in tract.patches_overlapping(ra, dec):
        patch = tract.patch(pid)
        x, y = patch.wcs.wcs_world2pix(ra, dec, 0)
        inside = (x > -0.5) & (y > -0.5) & (x < patch.shape[1] - 0.5) & (y < patch.shape[0] - 0.5)
        _, _, primary = primary_flags(ra, dec, x, y, patch=patch, tract=tract, skymap=skymap)
        counts += primary & inside
    assert np.all(counts == 1)


def test_object_table_reference_band() -> None:
    merged = Table(
        {
            "objectId": [1, 2],
            "coord_ra": [1.0, 2.0],
            "coord_dec": [0.0, 0.0],
            "x": [0.0, 1.0],
            "y": [0.0, 1.0],
            "tract": [1, 1],
            "patch": [0, 0],
            "detect_isPrimary": [True, False],
        }
    )
    g = Table({"psfFlux": [100.0, 10.0], "psfFluxErr": [1.0, 1.0], "extendedness": [0.0, 1.0]})
    r = Table({"psfFlux": [50.0, 40.0], "psfFluxErr": [1.0, 1.0], "extendedness": [1.0, 0.0]})
    t = make_object_table(merged, {"g": g, "r": r}, band_priority=["i", "r", "g"])
    assert list(t["refBand"]) == ["g", "r"]
    assert list(t["refExtendedness"]) == [0.0, 0.0]
    assert t["g_psfFlux"].unit == "nJy"
    assert list(reference_band({"g": np.array([5.0]), "r": np.array([5.0])}, ["r", "g"])) == ["r"]


def test_merge_links_on_detection_positions_and_keeps_refined_ones() -> None:
    """Re-centred positions 2.6 px apart, detections 0.5 px apart: one object, at the best re-centred one."""
    g = Table({"x": [10.0], "y": [20.0], "x_detect": [11.0], "y_detect": [20.0], "sn": [30.0]})
    r = Table({"x": [12.6], "y": [20.0], "x_detect": [11.5], "y_detect": [20.0], "sn": [10.0]})
    merged = merge_detections({"g": g, "r": r}, radius_pixels=2.0)
    assert len(merged) == 1 and merged["x"][0] == 10.0 and merged["detect_band"][0] == "g"
    assert len(merge_detections({"g": g, "r": r}, radius_pixels=2.0, link_columns=("x", "y"))) == 2
