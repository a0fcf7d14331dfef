"""Builders for the DICOM input tests: Enhanced CT converted from our own classic series, edited with pydicom."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from _io_helpers import make_ct, write_series
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from SmoothSegNetLib.volume import CTVolume


def enhanced_from_classic(
    paths: list[Path], folder: Path, *, name: str = "enhanced.dcm", seed: int = 0
) -> tuple[Path, Dataset]:
    """Convert a classic series (our writer's files) into one Legacy Converted Enhanced CT object with
    highdicom, from the files in a shuffled order; returns its path and dataset."""
    datasets = [pydicom.dcmread(p) for p in paths]
    random.Random(seed).shuffle(datasets)
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        legacy_datasets=datasets,
        series_instance_uid=hd.UID(),
        series_number=2,
        sop_instance_uid=hd.UID(),
        instance_number=1,
    )
    folder.mkdir(parents=True, exist_ok=True)
    enhanced.save_as(folder / name, enforce_file_format=True)
    return folder / name, pydicom.dcmread(folder / name)


def enhanced_series(
    tmp: Path, edit: Callable[[Dataset], None] | None = None, ct: CTVolume | None = None, **kwargs: object
) -> Path:
    """A folder holding one Enhanced CT object made from ``ct`` (default :func:`make_ct`), edited by ``edit``."""
    paths = write_series(ct if ct is not None else make_ct(), tmp / "classic", **kwargs)
    path, ds = enhanced_from_classic(paths, tmp / "enhanced")
    if edit is not None:
        edit(ds)
        ds.save_as(path, enforce_file_format=True)
    return tmp / "enhanced"


def per_frame(ds: Dataset, frame: int) -> Dataset:
    """The Per-Frame Functional Groups item of ``frame`` (1-based)."""
    return ds.PerFrameFunctionalGroupsSequence[frame - 1]


def move_to_per_frame(ds: Dataset, group: str) -> None:
    """Move the shared functional group ``group`` into every frame's item (so frames can differ)."""
    shared = ds.SharedFunctionalGroupsSequence[0]
    item = shared[group].value[0]
    for frame_item in ds.PerFrameFunctionalGroupsSequence:
        copy = Dataset()
        copy.update(item)
        setattr(frame_item, group, [copy])
    del shared[group]


def set_raw(ds: Dataset, keyword: str, vr: str, value: bytes) -> None:
    """Store ``value`` as the raw bytes of ``keyword`` (so unreadable values such as DS 'abc' can be written)."""
    tag = Tag(keyword)
    padded = value + b" " * (len(value) % 2)
    ds._dict[tag] = RawDataElement(tag, vr, len(padded), padded, 0, False, True)  # type: ignore[attr-defined]


def frame_positions(ds: Dataset) -> np.ndarray:
    """ImagePositionPatient of every frame (frame order)."""
    items = ds.PerFrameFunctionalGroupsSequence
    return np.array([[float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient] for item in items])
