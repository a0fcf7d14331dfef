"""GUI MOCK test, DICOM path: a CT loaded from a DICOM series is segmented from the panel, exported as
DICOM-SEG + SR (the engine's ``export``) and sent to a REAL Orthanc PACS on loopback. Mocked: Slicer's Qt
widgets and its DICOM database (a CTK object: a dict from SOP instance UID to file stands in for it)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from _orthanc import Orthanc, orthanc  # noqa: F401  (the session fixture)
from _slicer_gui_mock import open_panel, poll_until_done

from SmoothSegNetLib.io import read_volume, write_ct_series
from SmoothSegNetLib.volume import CTVolume, Geometry

pytestmark = pytest.mark.orthanc


@pytest.fixture
def dicom_panel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    a = np.full((10, 14, 16), -500, np.int16)
    a[2:8, 3:11, 3:13] = 100
    a[3:6, 4:7, 4:7] = 200  # one lesion: 27 voxels
    geometry = Geometry.create(a.shape, (0.8, 0.8, 2.5), (-30.0, 12.0, 55.0))
    write_ct_series(CTVolume(a, geometry), tmp_path / "series")
    ct = read_volume(tmp_path / "series")  # what the CT looks like once loaded
    assert ct.dicom is not None
    files = {s.sop_instance_uid: Path(s.path) for s in ct.dicom.slices}
    opened = open_panel(monkeypatch, tmp_path, ct.array, ct.geometry, dicom_files=files)
    opened["series_uid"] = ct.dicom.series_instance_uid
    opened["dicom_files"] = files  # the stand-in database reads this dict: tests may take slices out
    yield opened
    opened["widget"].cleanup()


def test_guimock_dicom_seg_sr_export_and_send_to_orthanc(
    dicom_panel: dict[str, Any],
    orthanc: Orthanc,  # noqa: F811
    tmp_path: Path,
) -> None:
    widget, dialogs = dicom_panel["widget"], dicom_panel["dialogs"]
    ui = widget.ui
    orthanc.delete_everything()
    widget.onApplyButton()
    poll_until_done(widget)
    assert dialogs.errors == []
    assert ui.exportDicomButton.enabled  # the CT came from DICOM
    ui.exportDirectoryButton.directory = str(tmp_path / "exports")
    ui.pacsHostLineEdit.text, ui.pacsPortSpinBox.value, ui.pacsAetLineEdit.text = (
        "127.0.0.1",
        orthanc.dicom_port,
        orthanc.aet,
    )
    widget._savePacsSettings()
    assert ui.sendToPacsButton.enabled
    widget.onSendToPacsButton()  # exports seg.dcm + sr.dcm first, then C-STOREs them
    poll_until_done(widget)
    assert dialogs.errors == []
    outdir = tmp_path / "exports" / "CT abdomen-SmoothSegNet"
    seg = pydicom.dcmread(outdir / "seg.dcm")
    sr = pydicom.dcmread(outdir / "sr.dcm")
    assert seg.Modality == "SEG" and sr.Modality == "SR"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == dicom_panel["series_uid"]
    stored = orthanc.instances_by_sop_uid()
    assert set(stored) == {seg.SOPInstanceUID, sr.SOPInstanceUID}
    # The PACS rewrites the file meta header; the dataset's pixel data must arrive byte for byte.
    assert pydicom.dcmread(io.BytesIO(stored[seg.SOPInstanceUID])).PixelData == seg.PixelData


def _segment_and_point_at_orthanc(panel: dict[str, Any], orthanc: Orthanc, exports: Path) -> Any:  # noqa: F811
    widget = panel["widget"]
    orthanc.delete_everything()
    widget.onApplyButton()
    poll_until_done(widget)
    widget.ui.exportDirectoryButton.directory = str(exports)
    widget.ui.pacsHostLineEdit.text = "127.0.0.1"
    widget.ui.pacsPortSpinBox.value = orthanc.dicom_port
    widget.ui.pacsAetLineEdit.text = orthanc.aet
    widget._savePacsSettings()
    return widget


def _stored_segment_labels(orthanc: Orthanc) -> list[list[str]]:  # noqa: F811
    stored = [pydicom.dcmread(io.BytesIO(data)) for data in orthanc.instances_by_sop_uid().values()]
    return [[s.SegmentLabel for s in ds.SegmentSequence] for ds in stored if ds.Modality == "SEG"]


def test_send_to_pacs_sends_the_current_segments_not_an_earlier_export(
    dicom_panel: dict[str, Any],
    orthanc: Orthanc,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Issue 12 item 6: a seg.dcm left by an earlier export must not be sent after the segments changed."""
    widget = _segment_and_point_at_orthanc(dicom_panel, orthanc, tmp_path / "exports")
    widget.onSendToPacsButton()
    poll_until_done(widget)
    assert dicom_panel["dialogs"].errors == []
    assert _stored_segment_labels(orthanc) == [["Liver", "Lesion 1", "Liver including tumors"]]
    orthanc.delete_everything()
    node = widget._parameterNode.outputSegmentation
    node.GetSegmentation().RemoveSegment("lesion_1")  # the radiologist deletes the lesion in Segment Editor
    widget.onSendToPacsButton()
    poll_until_done(widget)
    assert dicom_panel["dialogs"].errors == []
    # Today's segments, not the earlier seg.dcm (the whole liver is its own overlapping segment, issue 12 item 5).
    assert _stored_segment_labels(orthanc) == [["Liver", "Liver including tumors"]]
    seg = pydicom.dcmread(tmp_path / "exports" / "CT abdomen-SmoothSegNet" / "seg.dcm")
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["Liver", "Liver including tumors"]


def test_a_failed_export_stops_the_send(
    dicom_panel: dict[str, Any],
    orthanc: Orthanc,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Issue 12 item 6: when the export fails, nothing is sent (not even the seg.dcm of an earlier export)."""
    widget, dialogs = _segment_and_point_at_orthanc(dicom_panel, orthanc, tmp_path / "exports"), dicom_panel["dialogs"]
    widget.onSendToPacsButton()
    poll_until_done(widget)
    assert dialogs.errors == [] and len(orthanc.instances_by_sop_uid()) == 2
    orthanc.delete_everything()
    files = dicom_panel["dicom_files"]
    files.pop(next(iter(files)))  # one slice is no longer in Slicer's DICOM database: the export fails
    widget.onSendToPacsButton()
    poll_until_done(widget)
    assert len(dialogs.errors) == 1 and "no longer in the DICOM database" in dialogs.errors[0]
    assert orthanc.instances_by_sop_uid() == {}  # nothing was sent
    assert not widget.ui.statusLabel.text.startswith("sent")
