import numpy as np
import pytest

from opendrp.errors import AlgorithmError
from opendrp.photometry import fit_zero_point


def test_recovers_calibration_and_rejects_outliers():
    rng = np.random.default_rng(3)
    n = 200
    inst = np.exp(rng.uniform(np.log(1e3), np.log(1e6), n))
    inst_err = np.sqrt(inst + 300.0 * 30)
    calib = 57.5
    ref = calib * (inst + rng.normal(size=n) * inst_err) * (1 + 0.01 * rng.normal(size=n))
    ref_err = 0.01 * ref
    ref[:10] *= 1.5  # variable stars / bad matches
    res = fit_zero_point(inst, inst_err, ref, ref_err)
    assert res.photo_calib.calibration_mean == pytest.approx(calib, rel=2e-3)
    assert not res.used[:10].any()
    assert res.zero_point == pytest.approx(31.4 - 2.5 * np.log10(calib), abs=0.01)
    # quoted error consistent with the scatter of the 1% reference errors over ~150 stars
    assert 0.0003 < res.zero_point_err < 0.003


def test_too_few_stars():
    with pytest.raises(AlgorithmError, match="zero point"):
        fit_zero_point(np.array([1e4, 2e4]), np.array([100.0, 150.0]), np.array([5e5, 1e6]))
