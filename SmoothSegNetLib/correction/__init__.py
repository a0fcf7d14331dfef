"""Correcting a segmentation: adding a missed lesion at a point (``add-lesion``).

This layer sits above :mod:`SmoothSegNetLib.report` and :mod:`SmoothSegNetLib.inference`.

Public API::

    from SmoothSegNetLib.correction import AddLesionSettings, AddedLesion, PointSegmenter
"""

from __future__ import annotations

from SmoothSegNetLib.correction.settings import AddLesionSettings

__all__ = ["AddLesionSettings"]
