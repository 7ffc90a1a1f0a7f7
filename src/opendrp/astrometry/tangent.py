"""Gnomonic (tangent-plane) projection on numpy arrays.

Tangent-plane coordinates ``(xi, eta)`` are in degrees, ``xi`` towards increasing RA (east), ``eta`` north.
"""

from __future__ import annotations

import numpy as np

__all__ = ["angular_separation", "tangent_to_sky", "sky_to_tangent", "unit_vectors"]


def sky_to_tangent(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Project sky positions (deg) onto the plane tangent at (ra0, dec0); returns ``(xi, eta)`` in deg."""
    ra_r, dec_r = np.radians(ra), np.radians(dec)
    ra0_r, dec0_r = np.radians(ra0), np.radians(dec0)
    dra = ra_r - ra0_r
    cos_c = np.sin(dec0_r) * np.sin(dec_r) + np.cos(dec0_r) * np.cos(dec_r) * np.cos(dra)
    xi = np.cos(dec_r) * np.sin(dra) / cos_c
    eta = (np.cos(dec0_r) * np.sin(dec_r) - np.sin(dec0_r) * np.cos(dec_r) * np.cos(dra)) / cos_c
    return np.degrees(xi), np.degrees(eta)


def tangent_to_sky(xi: np.ndarray, eta: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `sky_to_tangent`: ``(xi, eta)`` in deg to ``(ra, dec)`` in deg (ra in [0, 360))."""
    x, y = np.radians(xi), np.radians(eta)
    ra0_r, dec0_r = np.radians(ra0), np.radians(dec0)
    rho = np.hypot(x, y)
    c = np.arctan(rho)
    sin_c, cos_c = np.sin(c), np.cos(c)
    with np.errstate(invalid="ignore", divide="ignore"):
        dec = np.arcsin(cos_c * np.sin(dec0_r) + np.where(rho > 0, y * sin_c * np.cos(dec0_r) / rho, 0.0))
    ra = ra0_r + np.arctan2(x * sin_c, rho * np.cos(dec0_r) * cos_c - y * np.sin(dec0_r) * sin_c)
    return np.degrees(ra) % 360.0, np.degrees(dec)


def unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Unit vectors ``(n, 3)`` of sky positions in degrees."""
    ra_r, dec_r = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    return np.stack([np.cos(dec_r) * np.cos(ra_r), np.cos(dec_r) * np.sin(ra_r), np.sin(dec_r)], axis=-1)


def angular_separation(ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray) -> np.ndarray:
    """Angular separation in degrees (haversine-stable vector form)."""
    v1, v2 = unit_vectors(ra1, dec1), unit_vectors(ra2, dec2)
    cross = np.linalg.norm(np.cross(v1, v2), axis=-1)
    dot = np.sum(v1 * v2, axis=-1)
    return np.degrees(np.arctan2(cross, dot))
