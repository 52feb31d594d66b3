"""Slice and Conquer: click-based interactive 3D segmentation (all logic; no Qt)."""

__version__ = "0.1.0"
