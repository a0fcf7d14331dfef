"""Phantom seeds given on a command line: ``A:B`` (half-open) or one seed."""

from __future__ import annotations

from SmoothSegNetLib.errors import InputError


def seed_range(text: str) -> range:
    """The seeds of ``A:B`` (half-open) or of a single ``A``.

    Raises:
        InputError: not integers, an empty range or a negative seed (the message names ``--seeds``).
    """
    first, sep, end = str(text).partition(":")
    try:
        seeds = range(int(first), int(end)) if sep else range(int(first), int(first) + 1)
    except ValueError:
        raise InputError(f"--seeds must be A:B (a half-open range of integers), got {text!r}") from None
    if len(seeds) == 0 or seeds.start < 0:
        raise InputError(f"--seeds must be a non-empty range of seeds >= 0, got {text!r}")
    return seeds
