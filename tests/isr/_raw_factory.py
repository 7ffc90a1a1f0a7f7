"""Synthetic raw read-outs with a known truth, for ISR and calibration tests."""

from __future__ import annotations

import numpy as np

from opendrp.instrument.camera import AmplifierSpec, DetectorSpec
from opendrp.raw.format import RawImage


def make_detector(
    nx: int = 64, ny: int = 48, n_amp: int = 2, prescan: int = 3, overscan: int = 8
) -> DetectorSpec:
    amps = tuple(
        AmplifierSpec(
            name=chr(65 + i),
            index=i,
            nx=nx // n_amp,
            ny=ny,
            prescan=prescan,
            overscan=overscan,
            parallel_overscan=4,
            flip_x=bool(i % 2),
            gain=2.0 + 0.5 * i,
            read_noise=3.0 + i,
            saturation=60000.0,
        )
        for i in range(n_amp)
    )
    return DetectorSpec(0, "test", nx, ny, 0.0, 0.0, 0.0, "SCIENCE", amps)


def make_raw(
    detector: DetectorSpec,
    image_e: np.ndarray,
    *,
    offsets: tuple[float, ...] = (1000.0, 1200.0),
    row_slope: float = 0.05,
    noise: bool = False,
    rng: np.random.Generator | None = None,
    exptime: float = 30.0,
    data_typ: str = "OBJECT",
) -> RawImage:
    """Raw ADU array whose assembled, overscan-corrected, gain-corrected image is ``image_e`` (electrons)."""
    rng = rng or np.random.default_rng(1)
    raw = np.zeros(detector.raw_shape, np.float64)
    ny = detector.ny
    for amp in detector.amplifiers:
        level = offsets[amp.index] + row_slope * np.arange(ny)[:, None]  # per-row bias drift, ADU
        data = image_e[amp.assembled_slice()] / amp.gain
        if noise:
            data = data + rng.normal(0, amp.read_noise / amp.gain, data.shape)
        if amp.flip_x:
            data = data[:, ::-1]
        raw[amp.raw_data_slice()] = data + level
        ys, xs = amp.raw_overscan_slice()
        over = np.broadcast_to(level, (ny, amp.overscan)).copy()
        if noise:
            over += rng.normal(0, amp.read_noise / amp.gain, over.shape)
        raw[ys, xs] = over
        raw[amp.raw_prescan_slice()] = 5.0
        raw[ny:, amp.raw_x0 : amp.raw_x0 + amp.raw_width] = offsets[amp.index]
    meta = {
        "INSTRUME": "TEST",
        "EXPID": 7,
        "DET-ID": 0,
        "FILTER01": "HSC-I",
        "EXPTIME": exptime,
        "DATE-OBS": "2024-01-01T00:00:00",
        "DATA-TYP": data_typ,
        "BORE-RA": 150.0,
        "BORE-DEC": 2.0,
    }
    return RawImage(pixels=raw.astype(np.float32), metadata=meta)
