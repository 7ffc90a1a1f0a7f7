"""Vectorized extraction of postage stamps around many sources at once."""

from __future__ import annotations

import numpy as np

__all__ = ["gather_stamps", "stamp_grid"]


def stamp_grid(half: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets ``(dx, dy)`` of a ``(2 half + 1)**2`` stamp, each of shape ``(1, size, size)``."""
    offs = np.arange(-half, half + 1, dtype=np.float64)
    return offs[None, None, :], offs[None, :, None]


def gather_stamps(
    array: np.ndarray, ix: np.ndarray, iy: np.ndarray, half: int, *, fill: float | int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Stamps of ``array`` centred on integer pixels ``(ix, iy)``.

    Parameters
    ----------
    array : `numpy.ndarray`, shape ``(ny, nx)``
        Image, variance or mask.
    ix, iy : `numpy.ndarray` [int]
        Central pixel of each stamp.
    half : `int`
        Stamps are ``2 half + 1`` pixels on a side.
    fill : scalar
        Value of stamp pixels that fall outside the array.

    Returns
    -------
    stamps : `numpy.ndarray`, shape ``(n, 2 half + 1, 2 half + 1)``
    inside : `numpy.ndarray` [bool], same shape
        Stamp pixels that fall on the array.
    """
    ny, nx = array.shape
    offs = np.arange(-half, half + 1)
    yy = np.asarray(iy, np.int64)[:, None, None] + offs[None, :, None]
    xx = np.asarray(ix, np.int64)[:, None, None] + offs[None, None, :]
    inside = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
    stamps = array[np.clip(yy, 0, ny - 1), np.clip(xx, 0, nx - 1)]
    if not inside.all():
        stamps = np.where(inside, stamps, fill)
    return stamps, inside
