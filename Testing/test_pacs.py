"""Sending to a real Orthanc on loopback: C-STORE and STOW-RS, what arrived, PACS down / refusing, retry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from _orthanc import Orthanc, free_port, orthanc  # noqa: F401  (session fixture)
from _report_helpers import OBLIQUE, ct_with, ellipsoid_mask, grid
from conftest import run_cli

from SmoothSegNetLib.case_outputs import write_case_outputs
from SmoothSegNetLib.errors import PacsError
from SmoothSegNetLib.io import read_volume, write_ct_series
from SmoothSegNetLib.outputs import StagedOutputDir
from SmoothSegNetLib.pacs import DimseTarget, parse_host_port, send_dimse
from SmoothSegNetLib.report import label_lesions, measure

pytestmark = pytest.mark.orthanc


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(output folder with seg.dcm, sr.dcm, report.json; source series folder)."""
    g = grid((8, 32, 32), (1.0, 1.0, 2.0), OBLIQUE)
    labels = np.zeros(g.shape_kji, np.uint8)
    labels[ellipsoid_mask(g, g.index_to_lps([16, 16, 4]), (12.0, 10.0, 7.0), np.eye(3))] = 1
    labels[ellipsoid_mask(g, g.index_to_lps([14, 16, 4]), (4.0, 4.0, 4.0), np.eye(3)) & (labels == 1)] = 2
    series = tmp_path_factory.mktemp("series")
    write_ct_series(ct_with(labels, g), series)
    ct = read_volume(series)
    lesions = label_lesions(labels == 2, ct.geometry)
    out = tmp_path_factory.mktemp("case") / "out"
    with StagedOutputDir(out) as stage:
        write_case_outputs(stage, ct, labels, lesions, measure(ct, labels, lesions), dicom_sr=True, overview=False)
    return out, series


def _uids(paths: list[Path]) -> set[str]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths}


def _assert_arrived(orthanc: Orthanc, out: Path, series: Path | None) -> None:  # noqa: F811
    stored = orthanc.instances_by_sop_uid()
    expected = [out / "seg.dcm", out / "sr.dcm", *(sorted(series.glob("*.dcm")) if series else [])]
    assert set(stored) == _uids(expected)
    for path in expected:
        local = pydicom.dcmread(path)
        remote = pydicom.dcmread(pydicom.filebase.DicomBytesIO(stored[str(local.SOPInstanceUID)]))
        if "PixelData" in local:
            assert remote.PixelData == local.PixelData
        assert remote.SOPClassUID == local.SOPClassUID


def test_cstore_sends_seg_sr_and_source(orthanc: Orthanc, case: tuple[Path, Path]) -> None:  # noqa: F811
    out, series = case
    orthanc.delete_everything()
    result = run_cli(
        "send",
        str(out),
        "--dicom",
        f"127.0.0.1:{orthanc.dicom_port}",
        "--aet",
        orthanc.aet,
        "--source-series",
        str(series),
    )
    assert result.returncode == 0, result.stderr
    assert "sent 10 object(s)" in result.stdout
    _assert_arrived(orthanc, out, series)


def test_stow_rs_sends_seg_and_sr(orthanc: Orthanc, case: tuple[Path, Path]) -> None:  # noqa: F811
    out, _ = case
    orthanc.delete_everything()
    result = run_cli("send", str(out), "--dicomweb", orthanc.dicomweb_url)
    assert result.returncode == 0, result.stderr
    _assert_arrived(orthanc, out, None)


def test_pacs_down_then_retry(orthanc: Orthanc, case: tuple[Path, Path]) -> None:  # noqa: F811
    out, _ = case
    orthanc.delete_everything()
    before = sorted(p.name for p in out.iterdir())
    down = run_cli("send", str(out), "--dicom", f"127.0.0.1:{free_port()}", "--aet", orthanc.aet, "--timeout", "5")
    assert down.returncode == 1
    assert down.stderr.startswith("error: the PACS at 127.0.0.1:")
    assert "could not be reached" in down.stderr and "files stay on disk" in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == before
    retry = run_cli("send", str(out), "--dicom", f"127.0.0.1:{orthanc.dicom_port}", "--aet", orthanc.aet)
    assert retry.returncode == 0, retry.stderr
    _assert_arrived(orthanc, out, None)


def test_dicomweb_down_is_a_clear_error(case: tuple[Path, Path]) -> None:
    out, _ = case
    result = run_cli("send", str(out), "--dicomweb", f"http://127.0.0.1:{free_port()}/dicom-web", "--timeout", "5")
    assert result.returncode == 1
    assert "error: the DICOMweb server at http://127.0.0.1:" in result.stderr
    assert "could not be reached" in result.stderr


def test_wrong_called_aet_is_refused(orthanc: Orthanc, case: tuple[Path, Path]) -> None:  # noqa: F811
    out, _ = case
    orthanc.delete_everything()
    target = DimseTarget("127.0.0.1", orthanc.dicom_port, "NOT_THE_PACS")
    with pytest.raises(PacsError, match=r"(refused|aborted) the association: check the called AE title"):
        send_dimse([out / "seg.dcm"], target)
    assert orthanc.get("/instances") == []


def test_nothing_to_send_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("send", str(tmp_path), "--dicom", "127.0.0.1:104", "--aet", "X")
    assert result.returncode == 2
    assert result.stderr.startswith("error: OUTDIR") and "holds no seg.dcm or sr.dcm" in result.stderr


def test_dicom_without_aet_is_a_usage_error(case: tuple[Path, Path]) -> None:
    result = run_cli("send", str(case[0]), "--dicom", "127.0.0.1:104")
    assert result.returncode == 2
    assert "--dicom needs --aet" in result.stderr


@pytest.mark.parametrize("bad", ["localhost", "host:0", "host:70000", ":104", "host:x"])
def test_bad_host_port(bad: str) -> None:
    with pytest.raises(ValueError, match="--dicom must be HOST:PORT"):
        parse_host_port(bad)


def test_host_port_parsed() -> None:
    assert parse_host_port("pacs.example.org:11112") == ("pacs.example.org", 11112)


def test_dicomweb_wrong_root_is_refused(orthanc: Orthanc, case: tuple[Path, Path]) -> None:  # noqa: F811
    out, _ = case
    orthanc.delete_everything()
    result = run_cli("send", str(out), "--dicomweb", f"{orthanc.base_url}/not-dicom-web")
    assert result.returncode == 1
    assert "refused the upload: HTTP 404" in result.stderr
    assert orthanc.get("/instances") == []


def test_bad_ae_title_is_a_usage_error(case: tuple[Path, Path]) -> None:
    result = run_cli("send", str(case[0]), "--dicom", "127.0.0.1:104", "--aet", "A_TITLE_LONGER_THAN_16")
    assert result.returncode == 2
    assert "--aet must be 1 to 16 ASCII characters" in result.stderr


def test_cstore_failure_status_after_an_accepted_association(case: tuple[Path, Path]) -> None:
    """A real pynetdicom storage SCP on loopback that accepts the association but answers SEG stores with
    0xA700 (out of resources): send fails with that status named, exit 1, files kept; SR stores would pass."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import Comprehensive3DSRStorage, SegmentationStorage

    out, _ = case
    received: list[str] = []

    def on_store(event: evt.Event) -> int:
        if event.dataset.SOPClassUID == SegmentationStorage:
            return 0xA700
        received.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    scp = AE(ae_title="FULLPACS")
    scp.add_supported_context(SegmentationStorage, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    scp.add_supported_context(Comprehensive3DSRStorage, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    port = free_port()
    server = scp.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        before = sorted(p.name for p in out.iterdir())
        with pytest.raises(PacsError, match=r"refused .*seg\.dcm: C-STORE status 0xA700"):
            send_dimse([out / "seg.dcm", out / "sr.dcm"], DimseTarget("127.0.0.1", port, "FULLPACS"))
        assert received == []  # the SR after the refused SEG is not sent
        result = run_cli("send", str(out), "--dicom", f"127.0.0.1:{port}", "--aet", "FULLPACS", "--timeout", "5")
        assert result.returncode == 1
        assert result.stderr.startswith("error: the PACS at 127.0.0.1:") and "C-STORE status 0xA700" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert sorted(p.name for p in out.iterdir()) == before
        # The same server stores the SR alone: the failure was the SEG's status, not the association.
        sent = send_dimse([out / "sr.dcm"], DimseTarget("127.0.0.1", port, "FULLPACS"))
        assert sent.sent_sop_instance_uids == received and len(received) == 1
    finally:
        server.shutdown()
