"""Global–local inference.

Public API::

    from SmoothSegNetLib.inference import segment, SegmentOptions, SegmentationResult, Segmenter
"""

from __future__ import annotations

from SmoothSegNetLib.inference.options import (
    DEFAULT_LIVER_MODEL,
    DEFAULT_TUMOR_MODEL,
    SegmentationResult,
    SegmentOptions,
)
from SmoothSegNetLib.inference.pipeline import Segmenter, segment

__all__ = [
    "DEFAULT_LIVER_MODEL",
    "DEFAULT_TUMOR_MODEL",
    "SegmentOptions",
    "SegmentationResult",
    "Segmenter",
    "segment",
]
