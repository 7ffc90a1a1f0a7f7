"""Multi-band processing on coadds: merge detections across bands, flag primaries, build the Object table."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from astropy.table import Table
from scipy.spatial import cKDTree

from ..skymap import PatchInfo, RingsSkyMap, TractInfo

__all__ = [
    "PATCH_BITS",
    "SOURCE_BITS",
    "coadd_apcorr_stars",
    "make_object_id",
    "make_object_table",
    "merge_detections",
    "primary_flags",
    "reference_band",
]

SOURCE_BITS = 20  #: bits of the per-patch object index in objectId
PATCH_BITS = 11  #: bits of the patch id in objectId


def make_object_id(tract: int, patch: int, index: np.ndarray) -> np.ndarray:
    """Unique 64-bit object ids: ``tract << 31 | patch << 20 | index``."""
    index = np.asarray(index, dtype=np.int64)
    if patch >= 1 << PATCH_BITS or (index.size and index.max() >= 1 << SOURCE_BITS):
        raise ValueError(f"patch {patch} or object index too large for the objectId layout")
    return (np.int64(tract) << (PATCH_BITS + SOURCE_BITS)) | (np.int64(patch) << SOURCE_BITS) | index


def merge_detections(
    detections: Mapping[str, Table],
    *,
    radius_pixels: float = 2.0,
    link_columns: tuple[str, str] = ("x_detect", "y_detect"),
) -> Table:
    """Merge per-band detection catalogs into one list of objects.

    Detections closer than ``radius_pixels`` (in the common patch frame) are linked transitively
    (friends-of-friends); each merged object takes the position ``x``, ``y`` of its highest-S/N detection.
    Links are made on ``link_columns`` when the tables have them (the detection positions, before
    re-centring: faint detections re-centred independently in two bands can drift apart by more than the
    radius and would make duplicate objects), else on ``x``, ``y``.

    Parameters
    ----------
    detections : mapping of band -> `Table`
        Each with ``x``, ``y`` (patch pixels) and ``sn`` (detection significance).

    Returns
    -------
    merged : `Table`
        ``x``, ``y``, ``detect_band`` (band of the best detection), ``detect_sn``, ``n_bands``,
        and ``detected_{band}`` flags.
    """
    bands = list(detections)
    xs, ys, lxs, lys, sns, band_idx = [], [], [], [], [], []
    for k, band in enumerate(bands):
        t = detections[band]
        xs.append(np.asarray(t["x"], float))
        ys.append(np.asarray(t["y"], float))
        has_link = all(c in t.colnames for c in link_columns)
        lxs.append(np.asarray(t[link_columns[0]] if has_link else t["x"], float))
        lys.append(np.asarray(t[link_columns[1]] if has_link else t["y"], float))
        sns.append(np.asarray(t["sn"], float))
        band_idx.append(np.full(len(t), k))
    if not xs or sum(len(a) for a in xs) == 0:
        out = Table(
            {"x": np.zeros(0), "y": np.zeros(0), "detect_sn": np.zeros(0), "n_bands": np.zeros(0, int)}
        )
        out["detect_band"] = np.zeros(0, dtype="U8")
        for band in bands:
            out[f"detected_{band}"] = np.zeros(0, bool)
        return out
    x, y = np.concatenate(xs), np.concatenate(ys)
    sn, bi = np.concatenate(sns), np.concatenate(band_idx)
    # friends-of-friends groups through union-find over close pairs
    parent = np.arange(x.size)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    lx, ly = np.concatenate(lxs), np.concatenate(lys)
    pairs = cKDTree(np.column_stack([lx, ly])).query_pairs(radius_pixels, output_type="ndarray")
    for i, j in pairs:
        ri, rj = find(int(i)), find(int(j))
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(x.size)])
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(roots):
        groups.setdefault(int(r), []).append(i)
    best: list[int] = []
    n_bands: list[int] = []
    flags: dict[str, list[bool]] = {b: [] for b in bands}
    for members in groups.values():
        m = np.asarray(members)
        best.append(int(m[np.argmax(sn[m])]))
        present = set(bi[m].tolist())
        n_bands.append(len(present))
        for k, b in enumerate(bands):
            flags[b].append(k in present)
    best_a = np.asarray(best)
    order = np.lexsort((x[best_a], y[best_a]))  # deterministic order: by row, then column
    best_a = best_a[order]
    out = Table(
        {
            "x": x[best_a],
            "y": y[best_a],
            "detect_sn": sn[best_a],
            "n_bands": np.asarray(n_bands)[order],
        }
    )
    out["detect_band"] = np.array([bands[k] for k in bi[best_a]], dtype="U8")
    for b in bands:
        out[f"detected_{b}"] = np.asarray(flags[b], bool)[order]
    return out


def primary_flags(
    ra: np.ndarray,
    dec: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    *,
    patch: PatchInfo,
    tract: TractInfo,
    skymap: RingsSkyMap,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(isPatchInner, isTractInner, isPrimary)`` of objects at patch pixels (x, y) / sky (ra, dec).

    An object is primary in exactly one patch of one tract: the patch whose inner region and the tract
    whose inner region (the tract the sky map assigns the position to) contain it.
    """
    is_patch_inner = patch.contains_inner(x, y)
    is_tract_inner = skymap.find_tract(ra, dec) == tract.id if len(ra) else np.zeros(0, bool)
    return is_patch_inner, is_tract_inner, is_patch_inner & is_tract_inner


def reference_band(sn: Mapping[str, np.ndarray], priority: list[str]) -> np.ndarray:
    """Per object, the band with the highest PSF-flux S/N (ties broken by ``priority`` order)."""
    bands = [b for b in priority if b in sn] + [b for b in sn if b not in priority]
    stack = np.stack([np.nan_to_num(np.asarray(sn[b], float), nan=-np.inf) for b in bands])
    return np.array(bands, dtype="U8")[np.argmax(stack, axis=0)]


def coadd_apcorr_stars(
    forced: Table,
    *,
    min_sn: float = 50.0,
    isolation_radius: float = 24.0,
    neighbour_fraction: float = 0.01,
    clip: float = 3.0,
) -> np.ndarray:
    """The point sources of a coadd's forced measurement that its aperture corrections are fitted on.

    Point-like (``extendedness == 0``), ``psfFlux / psfFluxErr > min_sn``, no saturated, bad, edge,
    cosmic-ray or interpolated pixel flag, isolated (no other source within ``isolation_radius`` pixels,
    twice the 12-pixel ``calibFlux`` radius, holds more than ``neighbour_fraction`` of the flux), and with a
    ratio ``calibFlux / psfFlux`` within ``clip`` robust sigmas (1.4826 MAD) of the candidates' median: the
    correction is then fitted by weighted least squares, which one bright star with an undetected neighbour
    in its aperture would otherwise dominate.

    Returns
    -------
    stars : `numpy.ndarray` [bool]
    """
    n = len(forced)
    if n == 0:
        return np.zeros(0, bool)
    flux = np.asarray(forced["psfFlux"], float)
    err = np.asarray(forced["psfFluxErr"], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        sn = flux / err
    ok = (
        (np.asarray(forced["extendedness"], float) == 0) & (sn > min_sn) & ~np.asarray(forced["psfFlux_flag"])
    )
    for col in ("saturated", "bad", "edge", "cr", "interpolated"):
        name = f"pixelFlags_{col}"
        if name in forced.colnames:
            ok &= ~np.asarray(forced[name], bool)
    xy = np.column_stack([np.asarray(forced["x"], float), np.asarray(forced["y"], float)])
    f_any = np.nan_to_num(np.maximum(flux, np.asarray(forced["calibFlux"], float)), nan=0.0)
    tree = cKDTree(xy)
    for i in np.flatnonzero(ok):
        others = [j for j in tree.query_ball_point(xy[i], isolation_radius) if j != i]
        if others and f_any[others].max() > neighbour_fraction * flux[i]:
            ok[i] = False
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(forced["calibFlux"], float) / flux
    ok &= np.isfinite(ratio)
    if ok.sum() >= 3:
        med = np.median(ratio[ok])
        mad = 1.4826 * np.median(np.abs(ratio[ok] - med))
        ok &= np.abs(ratio - med) <= clip * max(mad, 1e-6)
    return ok


#: per-band columns copied from the forced measurement into the Object table
BAND_COLUMNS = (
    "psfFlux",
    "psfFluxErr",
    "psfFlux_flag",
    "psfFlux_apCorr",
    "kronFlux",
    "kronFluxErr",
    "kronRad",
    "gaussianFlux",
    "gaussianFluxErr",
    "petrosianFlux",
    "petrosianFluxErr",
    "petrosianRadius",
    "petrosian_flag",
    "ap06Flux",
    "ap06FluxErr",
    "ap09Flux",
    "ap09FluxErr",
    "ap12Flux",
    "ap12FluxErr",
    "calibFlux",
    "calibFluxErr",
    "ixx",
    "iyy",
    "ixy",
    "ixxPSF",
    "iyyPSF",
    "ixyPSF",
    "extendedness",
    "pixelFlags_saturated",
    "pixelFlags_edge",
    "pixelFlags_bad",
)


def make_object_table(merged: Table, forced: Mapping[str, Table], *, band_priority: list[str]) -> Table:
    """Join per-band forced measurements (rows aligned with ``merged``) into one wide Object table.

    ``merged`` carries ``objectId``, ``coord_ra``, ``coord_dec``, ``x``, ``y``, ``tract``, ``patch`` and the
    ``detect_is*`` flags; each ``forced[band]`` has the measurement columns (Rubin names, nJy).
    """
    out = Table()
    for col in ("objectId", "coord_ra", "coord_dec", "x", "y", "tract", "patch"):
        out[col] = merged[col]
    for col in ("detect_isPrimary", "detect_isPatchInner", "detect_isTractInner", "detect_band", "n_bands"):
        if col in merged.colnames:
            out[col] = merged[col]
    sn = {}
    for band, table in forced.items():
        if len(table) != len(merged):
            raise ValueError(f"forced catalog of band {band} has {len(table)} rows, merged has {len(merged)}")
        for col in BAND_COLUMNS:
            if col in table.colnames:
                out[f"{band}_{col}"] = table[col]
        with np.errstate(divide="ignore", invalid="ignore"):
            sn[band] = np.asarray(table["psfFlux"], float) / np.asarray(table["psfFluxErr"], float)
    if forced:
        ref = reference_band(sn, band_priority)
        out["refBand"] = ref
        ext = np.full(len(merged), np.nan)
        for band, table in forced.items():
            if "extendedness" in table.colnames:
                sel = ref == band
                ext[sel] = np.asarray(table["extendedness"], float)[sel]
        out["refExtendedness"] = ext
    for col in ("coord_ra", "coord_dec"):
        out[col].unit = "deg"
    for col in out.colnames:
        if col.endswith(("Flux", "FluxErr")):
            out[col].unit = "nJy"
    return out
