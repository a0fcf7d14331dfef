"""The label table of SmoothSegNet outputs: label value -> segment name, colour and SNOMED CT codes.

The table lives in ``Resources/Terminology/segments.json`` (one source of truth for ``.seg.nrrd``,
DICOM-SEG, the Slicer module and the report); this module loads and checks it into frozen dataclasses and
converts a segment to Slicer's ``TerminologyEntry`` tag format.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.resources import RESOURCES_DIR

#: Where the label table is, relative to the repository / installed package root.
TERMINOLOGY_PATH = RESOURCES_DIR / "Terminology" / "segments.json"
TERMINOLOGY_SCHEMA_ID = "smoothsegnet.terminology/1"
#: Labels written to segmentation outputs (liver, tumor); others exist only in phantoms and training data.
OUTPUT_LABELS = (1, 2)

#: Slicer terminology context names used in the ``TerminologyEntry`` tag (DICOM master lists, which hold
#: every code of the table).
SLICER_TYPE_CONTEXT = "Segmentation category and type - DICOM master list"
SLICER_ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"


class TerminologyError(InputError):
    """The label table (or a segment description read from a file) is malformed."""


@dataclass(frozen=True)
class Code:
    """A coded concept: coding scheme designator (e.g. ``SCT``), code value, and code meaning."""

    scheme: str
    value: str
    meaning: str

    def as_slicer(self) -> str:
        """``scheme^value^meaning``, the code format of Slicer's ``TerminologyEntry`` tag."""
        return f"{self.scheme}^{self.value}^{self.meaning}"


@dataclass(frozen=True)
class SegmentSpec:
    """How one label value is presented: identifier, name, colour and codes.

    Attributes:
        label: label value in the labelmap (1..65535).
        id: stable segment identifier (``liver``, ``tumor``, ``lesion_3``).
        name: human-readable name (``Liver``, ``Lesion 3``).
        color_rgb: display colour, three integers 0..255.
        category: segmented property category (e.g. SCT 123037004 Anatomical Structure).
        type: segmented property type (e.g. SCT 10200004 Liver).
        anatomic_region: where the structure is, when the type alone does not say it (tumor: liver).
        lesion_name_format: for the tumor label, how one lesion is named (``"Lesion {id}"``).
        training_only: the label exists in phantoms / training data but never in segmentation outputs.
    """

    label: int
    id: str
    name: str
    color_rgb: tuple[int, int, int]
    category: Code
    type: Code
    anatomic_region: Code | None = None
    lesion_name_format: str | None = None
    training_only: bool = False

    @property
    def color_float(self) -> tuple[float, float, float]:
        """The colour as three floats 0..1 (Slicer's segment colour)."""
        r, g, b = self.color_rgb
        return (r / 255.0, g / 255.0, b / 255.0)

    def slicer_terminology_entry(self) -> str:
        """Slicer's ``TerminologyEntry`` string (context~category~type~modifier~anatomic context~region~modifier)."""
        region = self.anatomic_region.as_slicer() if self.anatomic_region else "^^"
        anatomic_context = SLICER_ANATOMIC_CONTEXT if self.anatomic_region else ""
        parts = (SLICER_TYPE_CONTEXT, self.category.as_slicer(), self.type.as_slicer(), "^^")
        return "~".join((*parts, anatomic_context, region, "^^"))


def _fail(where: str, rule: str, value: Any) -> TerminologyError:
    return TerminologyError(f"label table {where}: {rule}, got {value!r} — fix {TERMINOLOGY_PATH.name}")


def _optional_code(entry: Mapping[str, Any], key: str, where: str) -> Code | None:
    return None if entry.get(key) is None else _code(entry, key, where)


def _code(entry: Mapping[str, Any], key: str, where: str) -> Code:
    raw = entry.get(key)
    if raw is None:
        raise _fail(where, f"'{key}' is required (an object with scheme, value, meaning)", None)
    fields = ("scheme", "value", "meaning")
    if not isinstance(raw, Mapping) or not all(isinstance(raw.get(f), str) and raw.get(f) for f in fields):
        raise _fail(f"{where}.{key}", "must be an object with non-empty strings scheme, value, meaning", raw)
    if any(c in raw[f] for f in fields for c in "^~|"):
        raise _fail(f"{where}.{key}", "codes must not contain '^', '~' or '|' (Slicer separators)", raw)
    return Code(scheme=raw["scheme"], value=raw["value"], meaning=raw["meaning"])


def _color(raw: Any, where: str) -> tuple[int, int, int]:
    ok = isinstance(raw, Sequence) and len(raw) == 3
    ok = ok and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in raw)
    if not ok:
        raise _fail(f"{where}.color_rgb", "must be three integers 0..255", raw)
    return (int(raw[0]), int(raw[1]), int(raw[2]))


def segment_from_dict(entry: Any, where: str = "segment") -> SegmentSpec:
    """Build and check one :class:`SegmentSpec` from a table entry."""
    if not isinstance(entry, Mapping):
        raise _fail(where, "must be an object", entry)
    label = entry.get("label")
    if not isinstance(label, int) or isinstance(label, bool) or not 1 <= label <= 65535:
        raise _fail(f"{where}.label", "must be an integer 1..65535", label)
    for key in ("id", "name"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise _fail(f"{where}.{key}", "must be a non-empty string", entry.get(key))
    name_format = entry.get("lesion_name_format")
    if name_format is not None and (not isinstance(name_format, str) or "{id}" not in name_format):
        raise _fail(f"{where}.lesion_name_format", "must be a string containing '{id}'", name_format)
    return SegmentSpec(
        label=label,
        id=entry["id"],
        name=entry["name"],
        color_rgb=_color(entry.get("color_rgb"), where),
        category=_code(entry, "category", where),
        type=_code(entry, "type", where),
        anatomic_region=_optional_code(entry, "anatomic_region", where),
        lesion_name_format=name_format,
        training_only=bool(entry.get("training_only", False)),
    )


def parse_terminology(document: Any) -> tuple[SegmentSpec, ...]:
    """Check a label table document (the parsed JSON) and return its segments sorted by label."""
    if not isinstance(document, Mapping) or document.get("schema") != TERMINOLOGY_SCHEMA_ID:
        schema = document.get("schema") if isinstance(document, Mapping) else document
        raise _fail("schema", f"must be {TERMINOLOGY_SCHEMA_ID!r}", schema)
    entries = document.get("segments")
    if not isinstance(entries, list) or not entries:
        raise _fail("segments", "must be a non-empty list", entries)
    specs = [segment_from_dict(e, f"segments[{n}]") for n, e in enumerate(entries)]
    for key in ("label", "id", "name"):
        values = [getattr(s, key) for s in specs]
        if len(set(values)) != len(values):
            raise _fail("segments", f"each {key} must be unique", values)
    return tuple(sorted(specs, key=lambda s: s.label))


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> tuple[SegmentSpec, ...]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TerminologyError(f"label table {path} is missing: reinstall SmoothSegNet") from exc
    except json.JSONDecodeError as exc:
        raise TerminologyError(f"label table {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    return parse_terminology(document)


def load_terminology(path: str | Path | None = None) -> tuple[SegmentSpec, ...]:
    """All segments of the label table (default: the bundled ``Resources/Terminology/segments.json``)."""
    return _load(Path(path) if path is not None else TERMINOLOGY_PATH)


def segment_for_label(label: int, path: str | Path | None = None) -> SegmentSpec:
    """The table's segment for ``label``; raises :class:`TerminologyError` for an unknown label."""
    for spec in load_terminology(path):
        if spec.label == label:
            return spec
    known = [s.label for s in load_terminology(path)]
    raise TerminologyError(f"label {label!r} is not in the label table (known labels: {known})")


def output_segments(path: str | Path | None = None) -> tuple[SegmentSpec, ...]:
    """The segments of segmentation outputs: liver (1) and tumor (2)."""
    return tuple(segment_for_label(label, path) for label in OUTPUT_LABELS)


def lesion_segments(count: int, path: str | Path | None = None) -> tuple[SegmentSpec, ...]:
    """One segment per lesion, labels 1..count: ``Lesion 1`` ... with the tumor's codes and colour.

    Lesion ``n`` is instance ``n`` of the lesion labelmap (numbered by decreasing volume).
    """
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 65535:
        raise ValueError(f"count must be an integer 0..65535 (number of lesions), got {count!r}")
    tumor = segment_for_label(2, path)
    name_format = tumor.lesion_name_format or "Lesion {id}"
    return tuple(
        replace(tumor, label=n, id=f"lesion_{n}", name=name_format.format(id=n), lesion_name_format=None)
        for n in range(1, count + 1)
    )
