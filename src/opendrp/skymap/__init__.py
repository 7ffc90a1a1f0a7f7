"""The sky map: tracts and patches."""

from .rings import PatchInfo, RingsSkyMap, SkyMapConfig, TractInfo

__all__ = ["PatchInfo", "RingsSkyMap", "SkyMapConfig", "TractInfo"]
