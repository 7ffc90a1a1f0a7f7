"""Defects: hot pixels from a master dark, dead or low-response pixels from master flats, as boxes.

A defect list is a table of boxes (``x0``, ``y0``, ``width``, ``height``, 0-based pixels of the assembled
CCD), like Rubin's ``Defects``: row runs of bad pixels merged vertically, so a bad column is one row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from astropy.table import Table

from ..image import Exposure, mask_bit
from .combine import find_flat_defects

__all__ = ["defects_from_calibs", "defects_to_mask", "find_dark_defects", "mask_to_defects"]

_BAD = mask_bit("BAD")


def find_dark_defects(
    dark: np.ndarray,
    *,
    variance: np.ndarray | None = None,
    min_rate: float = 0.1,
    n_sigma: float = 5.0,
) -> np.ndarray:
    """Hot pixels: dark current above the typical level by more than ``min_rate`` and ``n_sigma``.

    Parameters
    ----------
    dark : `numpy.ndarray`
        Master dark (electrons/s/pixel).
    variance : `numpy.ndarray`, optional
        Its variance ((electrons/s)**2); without it, the robust scatter of the dark is used.
    min_rate : `float`
        Smallest excess dark current (electrons/s) that makes a hot pixel.
    n_sigma : `float`
        The excess must also exceed this many standard deviations of the dark measurement.

    Returns
    -------
    hot : `numpy.ndarray` [bool]
    """
    d = np.asarray(dark, np.float32)
    finite = np.isfinite(d)
    sample = d[::4, ::4][finite[::4, ::4]]
    if sample.size == 0:
        return ~finite
    level = float(np.median(sample))
    if variance is None:
        sigma = np.float32(1.4826 * float(np.median(np.abs(sample - level))))
        sig = np.full(d.shape, sigma, np.float32)
    else:
        sig = np.sqrt(np.maximum(np.asarray(variance, np.float32), 0.0))
    excess = d - np.float32(level)
    return ~finite | ((excess > min_rate) & (excess > n_sigma * sig))


def mask_to_defects(bad: np.ndarray) -> Table:
    """Boxes covering the ``True`` pixels of a mask: row runs, merged over consecutive rows alike.

    Returns
    -------
    defects : `astropy.table.Table`
        ``x0``, ``y0``, ``width``, ``height`` (pixels, int32); metadata ``NX``, ``NY``.
    """
    bad = np.asarray(bad, bool)
    ny, nx = bad.shape
    b = np.zeros((ny, nx + 2), np.int8)
    b[:, 1:-1] = bad
    d = np.diff(b, axis=1)
    ys, xs = np.nonzero(d == 1)
    _, xe = np.nonzero(d == -1)
    width = xe - xs
    boxes: list[list[int]] = []
    # runs sorted by (x0, width, y): a run continuing the previous box one row down extends it
    order = np.lexsort((ys, width, xs))
    last: dict[tuple[int, int], list[int]] = {}
    for k in order:
        key = (int(xs[k]), int(width[k]))
        box = last.get(key)
        if box is not None and box[1] + box[3] == int(ys[k]):
            box[3] += 1
        else:
            box = [int(xs[k]), int(ys[k]), int(width[k]), 1]
            boxes.append(box)
            last[key] = box
    arr = np.array(boxes, np.int32).reshape(-1, 4)
    table = Table({n: arr[:, i] for i, n in enumerate(("x0", "y0", "width", "height"))})
    table.meta.update({"NX": nx, "NY": ny, "NPIXBAD": int(bad.sum())})
    return table


def defects_to_mask(defects: Table, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask (``shape``) of the pixels covered by a defect table (boxes clipped to the image)."""
    out = np.zeros(shape, bool)
    if defects is None or len(defects) == 0:
        return out
    x0, y0, w, h = (np.asarray(defects[c], np.int64) for c in ("x0", "y0", "width", "height"))
    ny, nx = shape
    single = (w == 1) & (h == 1) & (x0 >= 0) & (y0 >= 0) & (x0 < nx) & (y0 < ny)  # hot pixels: most rows
    out[y0[single], x0[single]] = True
    for i in np.flatnonzero(~single):
        out[max(y0[i], 0) : y0[i] + h[i], max(x0[i], 0) : x0[i] + w[i]] = True
    return out


def defects_from_calibs(
    *,
    dark: Exposure | None = None,
    flats: Sequence[Exposure] = (),
    dark_min_rate: float = 0.1,
    dark_n_sigma: float = 5.0,
    flat_threshold: float = 0.2,
    flat_block: int = 32,
) -> Table:
    """Defects of one detector from its master dark (hot pixels) and master flats (dead, low response).

    Parameters
    ----------
    dark : `opendrp.image.Exposure`, optional
        Master dark (electrons/s).
    flats : sequence of `opendrp.image.Exposure`
        Master flats (any filters) of the detector; their ``BAD`` pixels and pixels departing from the local
        smooth response by more than ``flat_threshold`` are defects.
    dark_min_rate, dark_n_sigma : `float`
        See `find_dark_defects`.
    flat_threshold, flat_block : `float`, `int`
        See `opendrp.calib.find_flat_defects`.

    Returns
    -------
    defects : `astropy.table.Table`
        Boxes (see `mask_to_defects`), with metadata ``NHOT`` and ``NFLATBAD`` (pixels).
    """
    shapes = {c.shape for c in ([dark] if dark is not None else []) + list(flats)}
    if len(shapes) != 1:
        raise ValueError(f"need a dark or flats of one shape to find defects, got shapes {sorted(shapes)}")
    shape = shapes.pop()
    hot = np.zeros(shape, bool)
    if dark is not None:
        hot = find_dark_defects(
            dark.image, variance=dark.variance, min_rate=dark_min_rate, n_sigma=dark_n_sigma
        )
    flat_bad = np.zeros(shape, bool)
    for flat in flats:
        flat_bad |= (flat.mask & _BAD) != 0
        flat_bad |= find_flat_defects(flat.image, threshold=flat_threshold, block=flat_block)
    table = mask_to_defects(hot | flat_bad)
    table.meta.update({"NHOT": int(hot.sum()), "NFLATBAD": int(flat_bad.sum())})
    return table
