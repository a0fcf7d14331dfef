"""The label table: loaded exactly, checked rule by rule, converted to Slicer terminology entries."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from slicerio.segmentation import terminology_entry_from_string

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.terminology import (
    TERMINOLOGY_PATH,
    Code,
    TerminologyError,
    lesion_segments,
    load_terminology,
    output_segments,
    segment_for_label,
)


def bundled() -> dict[str, Any]:
    return json.loads(TERMINOLOGY_PATH.read_text(encoding="utf-8"))


def test_bundled_table_loads_exactly() -> None:
    specs = load_terminology()
    assert [(s.label, s.id, s.name) for s in specs] == [
        (1, "liver", "Liver"),
        (2, "tumor", "Tumor"),
        (3, "portal_vein", "Portal vein"),
        (4, "aorta", "Aorta"),
    ]
    liver, tumor = specs[0], specs[1]
    assert liver.color_rgb == (221, 130, 101)
    assert liver.type == Code("SCT", "10200004", "Liver")
    assert liver.category == Code("SCT", "123037004", "Anatomical Structure")
    assert liver.anatomic_region is None
    assert tumor.type == Code("SCT", "108369006", "Neoplasm")
    assert tumor.anatomic_region == Code("SCT", "10200004", "Liver")
    assert [s.training_only for s in specs] == [False, False, True, True]


def test_output_segments_are_liver_and_tumor_only() -> None:
    assert [s.label for s in output_segments()] == [1, 2]
    assert segment_for_label(4).name == "Aorta"
    with pytest.raises(TerminologyError, match=r"label 7 is not in the label table \(known labels: \[1, 2, 3, 4\]\)"):
        segment_for_label(7)


def test_lesion_segments_are_numbered_with_the_tumor_codes() -> None:
    lesions = lesion_segments(3)
    tumor = segment_for_label(2)
    assert [(s.label, s.id, s.name) for s in lesions] == [
        (1, "lesion_1", "Lesion 1"),
        (2, "lesion_2", "Lesion 2"),
        (3, "lesion_3", "Lesion 3"),
    ]
    assert all((s.category, s.type, s.anatomic_region, s.color_rgb) == (
        tumor.category, tumor.type, tumor.anatomic_region, tumor.color_rgb) for s in lesions)  # fmt: skip
    assert lesion_segments(0) == ()
    with pytest.raises(ValueError, match=r"count must be an integer 0\.\.65535"):
        lesion_segments(-1)


def test_slicer_terminology_entries_are_exact() -> None:
    liver, tumor = output_segments()
    assert liver.slicer_terminology_entry() == (
        "Segmentation category and type - DICOM master list~SCT^123037004^Anatomical Structure"
        "~SCT^10200004^Liver~^^~~^^~^^"
    )
    parsed = terminology_entry_from_string(tumor.slicer_terminology_entry())
    assert parsed == {
        "contextName": "Segmentation category and type - DICOM master list",
        "category": ["SCT", "49755003", "Morphologically Altered Structure"],
        "type": ["SCT", "108369006", "Neoplasm"],
        "anatomicContextName": "Anatomic codes - DICOM master list",
        "anatomicRegion": ["SCT", "10200004", "Liver"],
    }
    assert liver.color_float == pytest.approx((221 / 255, 130 / 255, 101 / 255))


def broken(edit: Any) -> dict[str, Any]:
    document = copy.deepcopy(bundled())
    edit(document)
    return document


CASES = [
    ("wrong-schema", lambda d: d.update(schema="other/1"), r"schema: must be 'smoothsegnet.terminology/1'"),
    ("no-segments", lambda d: d.update(segments=[]), r"segments: must be a non-empty list"),
    ("label-zero", lambda d: d["segments"][0].update(label=0), r"segments\[0\]\.label: must be an integer 1\.\.65535"),
    ("label-text", lambda d: d["segments"][1].update(label="2"), r"segments\[1\]\.label: must be an integer"),
    ("duplicate-label", lambda d: d["segments"][1].update(label=1), r"each label must be unique"),
    ("duplicate-id", lambda d: d["segments"][1].update(id="liver"), r"each id must be unique"),
    ("empty-name", lambda d: d["segments"][0].update(name=" "), r"segments\[0\]\.name: must be a non-empty string"),
    ("colour-256", lambda d: d["segments"][0].update(color_rgb=[0, 0, 256]), r"color_rgb: must be three integers"),
    ("colour-float", lambda d: d["segments"][0].update(color_rgb=[0.5, 0, 0]), r"color_rgb: must be three integers"),
    ("colour-two", lambda d: d["segments"][0].update(color_rgb=[1, 2]), r"color_rgb: must be three integers"),
    ("no-category", lambda d: d["segments"][0].pop("category"), r"'category' is required"),
    ("code-no-meaning", lambda d: d["segments"][0]["type"].pop("meaning"), r"\.type: must be an object"),
    ("code-caret", lambda d: d["segments"][0]["type"].update(meaning="Li^ver"), r"must not contain '\^'"),
    ("bad-region", lambda d: d["segments"][1].update(anatomic_region="liver"), r"anatomic_region: must be an object"),
    ("name-format", lambda d: d["segments"][1].update(lesion_name_format="Lesion"), r"must be a string containing"),
]


@pytest.mark.parametrize(("name", "edit", "message"), CASES, ids=[c[0] for c in CASES])
def test_malformed_table_is_refused_with_the_rule(tmp_path: Path, name: str, edit: Any, message: str) -> None:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(broken(edit)), encoding="utf-8")
    with pytest.raises(TerminologyError, match=message) as caught:
        load_terminology(path)
    assert isinstance(caught.value, InputError)
    assert "fix segments.json" in str(caught.value)


def test_unreadable_tables_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TerminologyError, match="is missing"):
        load_terminology(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json", encoding="utf-8")
    with pytest.raises(TerminologyError, match=r"is not valid JSON \(.* at line 1\)"):
        load_terminology(bad)
