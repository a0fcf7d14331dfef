"""Segment masks kept as their bounding box, and the labelmap built from them (numpy only, no Slicer).

:func:`SmoothSegNetLib.mrml.labelmap_from_segmentation` reads each segment straight from Slicer's shared
labelmap layers. A lesion is a few thousand voxels of a CT of 10**8: holding, comparing and hashing each
segment on the full grid made re-measuring take seconds (issue 15). Here a mask is its tight bounding box
on the grid; the labelmap is assembled with exactly the rules of the per-segment export it replaces.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Prefix of the digests written since masks are hashed by their bounding box (older tags have none).
DIGEST_PREFIX = "v2:"

LIVER_LABEL = 1
TUMOR_LABEL = 2

Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class BoxMask:
    """A binary mask on a grid of ``shape_kji``, stored as its tight bounding box.

    Attributes:
        shape_kji: the grid's shape (slices, rows, columns).
        box: where ``mask`` lies on the grid; ``None`` for an empty mask.
        mask: bool array of the box's shape, with at least one voxel on each face (``None`` when empty).
    """

    shape_kji: tuple[int, int, int]
    box: Box | None
    mask: np.ndarray | None

    @classmethod
    def from_region(cls, shape_kji: Sequence[int], offset_kji: Sequence[int], region: np.ndarray) -> BoxMask:
        """The mask ``region`` (bool, placed with its first voxel at ``offset_kji``), cut to its bounding box."""
        shape = (int(shape_kji[0]), int(shape_kji[1]), int(shape_kji[2]))
        if region.size == 0:
            return cls(shape, None, None)
        bounds = []
        for axis in range(3):
            other = tuple(a for a in range(3) if a != axis)
            hits = np.flatnonzero(region.any(axis=other))
            if hits.size == 0:
                return cls(shape, None, None)
            bounds.append((int(hits[0]), int(hits[-1]) + 1))
        local = tuple(slice(low, high) for low, high in bounds)
        box = tuple(slice(o + low, o + high) for o, (low, high) in zip(offset_kji, bounds))
        return cls(shape, box, np.ascontiguousarray(region[local], dtype=bool))  # type: ignore[arg-type]

    @classmethod
    def from_full(cls, mask: np.ndarray) -> BoxMask:
        """The mask of a full-grid array (non-zero voxels)."""
        return cls.from_region(mask.shape, (0, 0, 0), mask != 0)

    def any(self) -> bool:
        return self.box is not None

    def full(self) -> np.ndarray:
        """The mask on the whole grid (bool)."""
        array = np.zeros(self.shape_kji, dtype=bool)
        if self.box is not None:
            array[self.box] = self.mask
        return array

    def digest(self) -> str:
        """A digest of the mask on its grid: equal masks, and only they, have equal digests."""
        hasher = hashlib.sha1(repr(self.shape_kji).encode())
        if self.box is not None and self.mask is not None:
            hasher.update(repr([(s.start, s.stop) for s in self.box]).encode())
            hasher.update(np.packbits(self.mask).tobytes())
        return DIGEST_PREFIX + hasher.hexdigest()

    def legacy_digest(self) -> str:
        """The digest tags held before :data:`DIGEST_PREFIX` (sha1 of the full grid's packed bits): slow."""
        return hashlib.sha1(np.packbits(self.full()).tobytes()).hexdigest()

    def matches(self, tag: str | None) -> bool:
        """Whether ``tag`` (a segment's digest tag, either format) is this mask's digest."""
        if tag is None:
            return False
        return tag == (self.digest() if tag.startswith(DIGEST_PREFIX) else self.legacy_digest())


@dataclass(frozen=True)
class SegmentMask:
    """One segment to assemble: its role (1 liver, 2 tumor), sort key among lesions and digest tag."""

    segment_id: str
    role: int
    lesion_order: tuple[int, int]
    digest_tag: str | None
    mask: BoxMask


def assemble(
    shape_kji: tuple[int, int, int], segments: Sequence[SegmentMask]
) -> tuple[np.ndarray, np.ndarray, dict[int, str], tuple[int, ...], bool]:
    """(labelmap, lesions, lesion id -> segment id, edited lesion ids, liver edited) from segment masks.

    The rules of the per-segment export: liver segments fill free voxels with 1; non-empty tumor segments,
    sorted by ``lesion_order`` and numbered 1..n, then set 2 over anything (a lesion painted over the
    liver is tumor) and their number where no earlier lesion is (the lower id wins an overlap).
    """
    labelmap = np.zeros(shape_kji, dtype=np.uint8)
    lesions = np.zeros(shape_kji, dtype=np.uint16)
    liver_edited = False
    tumors = []
    for item in segments:
        if item.role == LIVER_LABEL:
            if item.mask.box is not None:
                region = labelmap[item.mask.box]
                region[item.mask.mask & (region == 0)] = LIVER_LABEL
            liver_edited = liver_edited or not item.mask.matches(item.digest_tag)
        elif item.mask.any():
            tumors.append(item)
    lesion_ids: dict[int, str] = {}
    edited: list[int] = []
    for lesion_id, item in enumerate(sorted(tumors, key=lambda t: t.lesion_order), start=1):
        box, mask = item.mask.box, item.mask.mask
        assert box is not None and mask is not None  # only non-empty tumor masks were kept
        labelmap[box][mask] = TUMOR_LABEL
        instances = lesions[box]
        instances[mask & (instances == 0)] = lesion_id
        lesion_ids[lesion_id] = item.segment_id
        if not item.mask.matches(item.digest_tag):
            edited.append(lesion_id)
    return labelmap, lesions, lesion_ids, tuple(edited), liver_edited
