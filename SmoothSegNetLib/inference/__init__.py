"""Global–local inference.

Public API::

    from SmoothSegNetLib.inference import segment, SegmentOptions, SegmentationResult, Segmenter

``segment`` and ``Segmenter`` are imported on first use, so that importing this package (e.g. by the command
line parser) does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from SmoothSegNetLib.inference.options import (
    DEFAULT_LIVER_MODEL,
    DEFAULT_TUMOR_MODEL,
    SegmentationResult,
    SegmentOptions,
)

if TYPE_CHECKING:
    from SmoothSegNetLib.inference.pipeline import Segmenter, segment

__all__ = [
    "DEFAULT_LIVER_MODEL",
    "DEFAULT_TUMOR_MODEL",
    "SegmentOptions",
    "SegmentationResult",
    "Segmenter",
    "segment",
]


def __getattr__(name: str) -> Any:
    if name in ("segment", "Segmenter"):
        from SmoothSegNetLib.inference import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
