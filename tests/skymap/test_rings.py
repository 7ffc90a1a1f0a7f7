"""Rings sky map: tracts, patches, inner regions and primary flags."""

import numpy as np
import pytest

from opendrp.errors import ConfigurationError
from opendrp.skymap import RingsSkyMap, SkyMapConfig


@pytest.fixture(scope="module")
def skymap() -> RingsSkyMap:
    return RingsSkyMap(SkyMapConfig(patch_inner_pixels=1000, patch_border_pixels=100))


def test_every_position_is_in_its_tracts_inner_region(skymap: RingsSkyMap) -> None:
    rng = np.random.default_rng(3)
    ra = rng.uniform(0, 360, 400)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 400)))
    tracts = skymap.find_tract(ra, dec)
    assert tracts.min() >= 0 and tracts.max() < skymap.n_tracts
    for t in np.unique(tracts)[:60]:
        sel = tracts == t
        assert skymap.tract(int(t)).contains_inner(ra[sel], dec[sel]).all()


def test_tract_grid_covers_its_inner_region(skymap: RingsSkyMap) -> None:
    tract = skymap.tract(int(skymap.find_tract([150.1], [2.2])[0]))
    ny, nx = tract.shape
    # sample the inner region's corners: they must project inside the pixel grid
    for ra in tract.ra_range:
        for dec in tract.dec_range:
            x, y = tract.sky_to_pixel(np.array([ra]), np.array([dec]))
            assert -0.5 <= x[0] < nx and -0.5 <= y[0] < ny


def test_patches_tile_inner_regions(skymap: RingsSkyMap) -> None:
    tract = skymap.tract(int(skymap.find_tract([45.0], [-20.0])[0]))
    rng = np.random.default_rng(5)
    ny, nx = tract.shape
    tx, ty = rng.uniform(0, nx - 1, 500), rng.uniform(0, ny - 1, 500)
    ra, dec = tract.wcs.wcs_pix2world(tx, ty, 0)
    # every point is in the inner region of exactly one patch
    counts = np.zeros(tx.size, int)
    for pid in tract.patches_overlapping(ra, dec):
        patch = tract.patch(pid)
        px, py = patch.wcs.wcs_world2pix(ra, dec, 0)
        counts += patch.contains_inner(px, py)
        # the patch WCS is the tract WCS shifted by the patch origin
        assert np.allclose(px + patch.outer_bbox[0], tx, atol=1e-6)
    assert np.all(counts == 1)


def test_config_validation() -> None:
    with pytest.raises(ConfigurationError, match="patch_border_pixels"):
        SkyMapConfig.from_dict({"patch_inner_pixels": 100, "patch_border_pixels": 200})
    with pytest.raises(ConfigurationError, match="unknown field"):
        SkyMapConfig.from_dict({"patch_size": 100})
    assert SkyMapConfig.from_dict({"patch_inner_pixels": "2000"}).patch_inner_pixels == 2000
