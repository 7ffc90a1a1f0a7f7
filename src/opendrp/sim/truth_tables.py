"""The artefact truth tables: every defect, cosmic ray, bleed trail, ghost and satellite trail simulated.

Pixel positions are 0-based assembled-CCD coordinates (``x`` along the rows, ``y`` along the columns);
rows ``y0..y1`` are inclusive.  See ``docs/simulator.md`` for the columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..instrument import Camera
from .artifacts import bad_column_segments, dust_rings, hot_pixels
from .config import SimConfig
from .detector import static_rng
from .survey import ExposurePlan

__all__ = ["artifact_tables", "defect_table", "dust_ring_table"]

_COLUMNS = {
    "defects": ["detector", "kind", "x", "y0", "y1", "value"],
    "dust_rings": ["detector", "x", "y", "radius", "width", "depth"],
    "cosmic_rays": ["exposure_id", "detector", "x0", "y0", "x1", "y1", "electrons"],
    "bleed_trails": ["exposure_id", "detector", "x", "y0", "y1"],
    "ghosts": ["exposure_id", "detector", "source_id", "x", "y", "radius", "electrons"],
    "satellite_trails": ["exposure_id", "ra", "dec", "pa", "mag_per_arcsec"],
}


def _frame(name: str, rows: list[Any]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=_COLUMNS[name])


def defect_table(config: SimConfig, camera: Camera) -> pd.DataFrame:
    """Bad column segments (``value`` = remaining response) and hot pixels (``value`` = e-/s) per detector.

    The same fixed generators as the images (`opendrp.sim.detector.static_rng`), so the list is exact.
    """
    ins = config.instrument
    rows: list[tuple[int, str, int, int, int, float]] = []
    for det_id, det in camera.detectors.items():
        shape = (det.ny, det.nx)
        for x, y0, y1, response in bad_column_segments(
            shape, ins.n_bad_columns, static_rng(config.seed, 6, det_id)
        ):
            rows.append((det_id, "bad_column", x, y0, y1, response))
        if ins.dark_current > 0.0 or ins.hot_pixel_fraction > 0.0:
            idx, rates = hot_pixels(
                shape, ins.hot_pixel_fraction, ins.hot_pixel_rate, static_rng(config.seed, 5, det_id)
            )
            ys, xs = np.divmod(idx, det.nx)
            rows += [
                (det_id, "hot_pixel", int(x), int(y), int(y), float(r)) for x, y, r in zip(xs, ys, rates)
            ]
    return _frame("defects", rows)


def dust_ring_table(config: SimConfig, camera: Camera) -> pd.DataFrame:
    """Dust rings of the flat response per detector (pixels; ``depth`` = largest fractional loss)."""
    ins = config.instrument
    rows = []
    for det_id, det in camera.detectors.items():
        rings = dust_rings(
            (det.ny, det.nx), ins.n_dust_rings, ins.dust_ring_depth, static_rng(config.seed, 8, det_id)
        )
        rows += [(det_id, *ring) for ring in rings]
    return _frame("dust_rings", rows)


def artifact_tables(
    config: SimConfig, camera: Camera, exposures: list[ExposurePlan], results: list[Any]
) -> dict[str, pd.DataFrame]:
    """All artefact tables of a simulation, by name (``truth/{name}.parquet``).

    Parameters
    ----------
    config, camera, exposures
        The simulation.
    results : `list` [`opendrp.sim.simulate.UnitResult`]
        What every (exposure, detector) unit drew (cosmic rays, bleed trails, ghosts).
    """
    crs, bleeds, ghosts = [], [], []
    for r in results:
        crs += [(r.exposure_id, r.detector, *c) for c in r.cosmic_rays]
        bleeds += [(r.exposure_id, r.detector, *b) for b in r.bleed_trails]
        ghosts += [(r.exposure_id, r.detector, *g) for g in r.ghosts]
    trails = [
        (e.exposure_id, *e.trail, config.conditions.satellite_trail_mag)
        for e in exposures
        if e.observation_type == "science" and e.trail is not None
    ]
    return {
        "defects": defect_table(config, camera),
        "dust_rings": dust_ring_table(config, camera),
        "cosmic_rays": _frame("cosmic_rays", crs),
        "bleed_trails": _frame("bleed_trails", bleeds),
        "ghosts": _frame("ghosts", ghosts),
        "satellite_trails": _frame("satellite_trails", trails),
    }
