"""SmoothSegNet engine: liver and liver-tumor segmentation of CT.

The engine never imports ``slicer``, ``qt``, ``ctk`` or ``vtk`` (except :mod:`SmoothSegNetLib.mrml`,
which does so lazily); a test enforces this so that it runs headless and inside Slicer alike.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
