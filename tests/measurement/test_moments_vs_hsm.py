"""Our vectorized adaptive moments against GalSim's HSM (``FindAdaptiveMom``), the reference implementation
of the same algorithm (Bernstein & Jarvis 2002; Hirata & Seljak 2003), on pixelized Moffat and Gaussian
profiles."""

from __future__ import annotations

import galsim
import numpy as np
import pytest

from opendrp.measurement import adaptive_moments


@pytest.mark.parametrize(
    ("profile", "e1", "e2"),
    [("gaussian", 0.0, 0.0), ("gaussian", 0.15, -0.08), ("moffat", 0.05, 0.03), ("moffat", -0.2, 0.1)],
)
def test_adaptive_moments_match_galsim_hsm(profile: str, e1: float, e2: float) -> None:
    size, fwhm = 41, 4.0
    if profile == "gaussian":
        obj = galsim.Gaussian(fwhm=fwhm)
    else:
        obj = galsim.Moffat(beta=3.5, fwhm=fwhm)
    obj = obj.shear(e1=e1, e2=e2).shift(0.3, -0.2)
    img = obj.drawImage(nx=size, ny=size, scale=1.0)  # pixel-integrated, centre at the stamp centre + shift
    hsm = galsim.hsm.FindAdaptiveMom(img)
    arr = img.array[None].astype(float)
    am = adaptive_moments(arr, np.ones(arr.shape, bool), sigma0=2.0, max_iter=100, tol=1e-7)
    assert not am.flag[0]
    ixx, iyy, ixy = am.ixx[0], am.iyy[0], am.ixy[0]
    sigma = (ixx * iyy - ixy**2) ** 0.25
    assert sigma == pytest.approx(hsm.moments_sigma, rel=1e-4)
    assert (ixx - iyy) / (ixx + iyy) == pytest.approx(hsm.observed_shape.e1, abs=1e-4)
    assert 2 * ixy / (ixx + iyy) == pytest.approx(hsm.observed_shape.e2, abs=1e-4)
    # centroid: HSM's is in 1-based image coordinates of the stamp
    half = size // 2
    assert am.x[0] == pytest.approx(hsm.moments_centroid.x - (half + 1), abs=1e-3)
    assert am.y[0] == pytest.approx(hsm.moments_centroid.y - (half + 1), abs=1e-3)
