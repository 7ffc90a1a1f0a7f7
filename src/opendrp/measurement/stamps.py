"""Vectorized extraction of postage stamps around many sources at once."""

from __future__ import annotations

import numpy as np

__all__ = ["gather_stamps", "stamp_grid", "stamp_index", "take_stamps"]


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
    flat, inside = stamp_index(array.shape, ix, iy, half)
    return take_stamps(array, flat, inside, fill=fill), inside


def stamp_index(
    shape: tuple[int, ...], ix: np.ndarray, iy: np.ndarray, half: int
) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (clipped to the array) and ``inside`` flags of the stamps of `gather_stamps`, computed
    once for several arrays of the same ``shape`` (see `take_stamps`)."""
    ny, nx = int(shape[0]), int(shape[1])
    offs = np.arange(-half, half + 1)
    ixa = np.asarray(ix, np.int64)
    iya = np.asarray(iy, np.int64)
    if ixa.size == 0 or (
        ixa.min() >= half and iya.min() >= half and ixa.max() < nx - half and iya.max() < ny - half
    ):  # every stamp on the array: one broadcast sum
        flat = (iya * nx + ixa)[:, None, None] + (offs[:, None] * nx + offs[None, :])[None]
        return flat, np.ones(flat.shape, bool)
    yy = iya[:, None, None] + offs[None, :, None]
    xx = ixa[:, None, None] + offs[None, None, :]
    inside = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
    return np.clip(yy, 0, ny - 1) * nx + np.clip(xx, 0, nx - 1), inside


def take_stamps(
    array: np.ndarray, flat: np.ndarray, inside: np.ndarray, *, fill: float | int = 0
) -> np.ndarray:
    """Stamps of ``array`` at the indices of `stamp_index` (``fill`` outside the array)."""
    stamps = np.take(np.ravel(array), flat)  # a flat take: about twice as fast as 2-d fancy indexing
    if not inside.all():
        stamps = np.where(inside, stamps, fill)
    return stamps
