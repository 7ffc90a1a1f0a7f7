"""Instrument descriptions: cameras as YAML files."""

from .camera import AmplifierSpec, Camera, DetectorSpec, FilterSpec, builtin_camera_path, load_camera

__all__ = ["AmplifierSpec", "Camera", "DetectorSpec", "FilterSpec", "builtin_camera_path", "load_camera"]
