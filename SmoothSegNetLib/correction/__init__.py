"""Correcting a segmentation: adding a missed lesion at a point (``add-lesion``), and the liver scan that lists
regions like the ones a user would add as review candidates (:mod:`SmoothSegNetLib.correction.scan`).

This layer sits above :mod:`SmoothSegNetLib.report` and :mod:`SmoothSegNetLib.inference`. The search itself
(``settings``, ``grow``, ``star``, ``rim_fit``, ``recentre``, ``search``, ``scan``) needs only the array helpers
of :mod:`SmoothSegNetLib.inference` (``preprocess``, ``postprocess``, ``lesion_features``, ``lesion_classifier``,
``thresholds``); the pipeline's tumor stage calls the scan through a function-level import
(:meth:`SmoothSegNetLib.inference.pipeline.Segmenter.liver_scan`), the one call from below into this package.

Public API::

    from SmoothSegNetLib.correction import AddLesionSettings, AddedLesion, PointSegmenter
"""

from __future__ import annotations

from SmoothSegNetLib.correction.settings import AddLesionSettings

__all__ = ["AddLesionSettings"]
