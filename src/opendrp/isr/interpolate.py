"""Interpolation over masked pixels (defects) along rows."""

from __future__ import annotations

import numpy as np

__all__ = ["interpolate_rows", "interpolate_rows_many"]


def interpolate_rows(
    image: np.ndarray, bad: np.ndarray, *, max_width: int = 64, inplace: bool = False
) -> np.ndarray:
    """Replace bad pixels by linear interpolation between the nearest good pixels of the same row.

    Suited to bad columns and small defects (the common CCD defects).  Runs of bad pixels wider than
    ``max_width`` or touching a row end are filled with the nearest good value.  The work is proportional to
    the number of bad pixels (runs are found with array operations, no per-pixel Python loop).

    Parameters
    ----------
    image : `numpy.ndarray`
        Image to interpolate (a modified copy is returned).
    bad : `numpy.ndarray` [bool]
        Pixels to replace.
    max_width : `int`
        Runs longer than this (pixels) are filled with the nearest good value instead.
    inplace : `bool`
        Modify ``image`` itself (no full-size copy) and return it.

    Returns
    -------
    out : `numpy.ndarray`
        Copy of ``image`` (``image`` itself when ``inplace``) with the bad pixels replaced (rows with no
        good pixel are left unchanged).
    """
    out = image if inplace else np.array(image, copy=True)
    interpolate_rows_many((out,), bad, max_width=max_width)
    return out


def interpolate_rows_many(images: tuple[np.ndarray, ...], bad: np.ndarray, *, max_width: int = 64) -> None:
    """`interpolate_rows` in place on several images sharing one bad-pixel mask (the runs found once)."""
    bad = np.asarray(bad, dtype=bool)
    rows = np.flatnonzero(bad.any(axis=1))
    if rows.size == 0:
        return
    nx = bad.shape[1]
    b = np.zeros((rows.size, nx + 2), np.int8)
    b[:, 1:-1] = bad[rows]
    d = np.diff(b, axis=1)
    r_s, x_s = np.nonzero(d == 1)  # run starts (row-major order)
    r_e, x_e = np.nonzero(d == -1)  # run ends (exclusive)
    row = rows[r_s]
    left, right = x_s - 1, x_e
    has_l, has_r = left >= 0, right < nx
    width = x_e - x_s
    run = np.repeat(np.arange(row.size), width)
    first = np.repeat(np.cumsum(width) - width, width)
    pos = x_s[run] + (np.arange(run.size) - first)
    t = (pos - left[run]) / (right[run] - left[run])
    both = (has_l & has_r & (width <= max_width))[run]
    nearest_left = (pos - left[run]) <= (right[run] - pos)
    use_left = has_l[run] & (nearest_left | ~has_r[run])
    out_rows = row[run]
    ar = np.arange(row.size)
    for out in images:
        src = out[row]  # (n_runs, nx) rows holding runs; small when defects are few
        vl = np.where(has_l, src[ar, np.clip(left, 0, nx - 1)], np.nan).astype(float)
        vr = np.where(has_r, src[ar, np.clip(right, 0, nx - 1)], np.nan).astype(float)
        near = np.where(use_left, vl[run], vr[run])
        val = np.where(both, vl[run] + t * (vr[run] - vl[run]), near)
        ok = np.isfinite(val)
        out[out_rows[ok], pos[ok]] = val[ok]
