"""Images in memory and on disk: the Exposure, its mask planes and photometric calibration."""

from .exposure import Exposure, read_exposure, write_exposure
from .mask import MASK_PLANES, mask_bit, planes_set
from .photo_calib import AB_ZERO_POINT_NJY, PhotoCalib, mag_to_njy, njy_to_mag

__all__ = [
    "AB_ZERO_POINT_NJY",
    "MASK_PLANES",
    "Exposure",
    "PhotoCalib",
    "mag_to_njy",
    "mask_bit",
    "njy_to_mag",
    "planes_set",
    "read_exposure",
    "write_exposure",
]
