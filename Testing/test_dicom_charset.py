"""DICOM-SEG and SR declare and write UTF-8 (ISO_IR 192): non-ASCII text round-trips (issue 17).

A valid ``segment --dicom-seg --dicom-sr`` run used to print "Failed to encode value with encodings: latin_1"
lines and a raw UserWarning, and stored ``?`` for the em dash of the demo model titles: highdicom copied the
source series' ISO_IR 100 (Latin-1) into the SEG and SR.
"""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom

from SmoothSegNetLib.io import write_ct_series
from SmoothSegNetLib.volume import CTVolume, Geometry
from Testing._model_helpers import write_threshold_model
from Testing.conftest import run_cli

PATIENT = "Müller^Zoë"
TUMOR_TITLE = "TEST tumor ≥ 5 mm — µ-threshold"


def _ct() -> CTVolume:
    a = np.full((12, 24, 28), -500, np.int16)
    a[2:10, 4:20, 4:24] = 100
    a[4:8, 8:12, 8:14] = 200
    return CTVolume(a, Geometry.create(a.shape, (0.9, 0.9, 2.5), (-10.0, 20.0, 50.0)))


def test_seg_and_sr_are_utf8_and_non_ascii_text_round_trips(tmp_path: Path) -> None:
    liver = write_threshold_model(tmp_path / "models", "liver", threshold_hu=50, orientation="PLI")
    tumor = write_threshold_model(tmp_path / "models", "tumor", threshold_hu=150)
    card = json.loads(tumor.read_text(encoding="utf-8"))
    card["title"] = TUMOR_TITLE
    tumor.write_text(json.dumps(card, ensure_ascii=False), encoding="utf-8")
    # The source series is Latin-1 (ISO_IR 100), as our writer and many scanners write it.
    write_ct_series(_ct(), tmp_path / "series", patient_name=PATIENT, attributes={"StudyDescription": "Leber µ"})
    out = tmp_path / "out"
    models = ["--liver-model", str(liver), "--tumor-model", str(tumor)]
    result = run_cli(
        "segment", str(tmp_path / "series"), "-o", str(out), *models, "--dicom-sr", "--progress", "none",
        "--skip-plausibility-check",  # a small synthetic series, not a body
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Failed to encode" not in result.stderr and "Warning" not in result.stderr, result.stderr
    for name in ("seg.dcm", "sr.dcm"):
        ds = pydicom.dcmread(out / name)
        assert ds.SpecificCharacterSet == "ISO_IR 192"
        assert str(ds.PatientName) == PATIENT
        assert ds.StudyDescription == "Leber µ"
        raw = (out / name).read_bytes()
        assert "Müller^Zoë".encode() in raw  # written as UTF-8, not as Latin-1 or '?'
    seg = hd.seg.segread(str(out / "seg.dcm"))
    names = [
        seg.get_segment_description(n).algorithm_identification[0].AlgorithmName
        for n in seg.get_segment_numbers()
        if seg.get_segment_description(n).segment_label.startswith("Lesion")
    ]
    assert names == [TUMOR_TITLE]
    assert TUMOR_TITLE.encode() in (out / "seg.dcm").read_bytes()


def test_long_strings_are_cut_to_64_utf8_bytes_between_characters() -> None:
    from SmoothSegNetLib.dicom_export.common import long_string

    # A demo title cut at 64 characters was 66 bytes in UTF-8 ('—' is 3 bytes): dciodvfy refused the SEG.
    assert long_string("a" * 62 + "—bc") == "a" * 62
    assert long_string("a" * 61 + "—bc") == "a" * 61 + "—"
    assert long_string("short — ok") == "short — ok"
