"""A real Orthanc PACS on loopback for the send tests (Debian packages ``orthanc`` and ``orthanc-dicomweb``).

``orthanc`` is a session-scoped fixture: Orthanc runs with its own temporary configuration (free DICOM and
HTTP ports on 127.0.0.1, storage in a temporary folder, the DICOMweb plugin, a checked called AE title) and
is stopped at the end of the session.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import require_tool

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
ORTHANC_AET = "SSN_ORTHANC"
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Orthanc:
    dicom_port: int
    http_port: int
    aet: str
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.base_url}/dicom-web"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base_url + path, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body

    def delete_everything(self) -> None:
        for instance in self.get("/instances"):
            request = urllib.request.Request(f"{self.base_url}/instances/{instance}", method="DELETE")
            urllib.request.urlopen(request, timeout=10).close()

    def instances_by_sop_uid(self) -> dict[str, bytes]:
        """SOP instance UID -> the stored file's bytes, for everything Orthanc holds."""
        stored = {}
        for instance in self.get("/instances"):
            tags = self.get(f"/instances/{instance}/simplified-tags")
            stored[tags["SOPInstanceUID"]] = self.get(f"/instances/{instance}/file")
        return stored


def _wait_ready(orthanc: Orthanc, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Orthanc exited with {process.returncode}: {orthanc.log_path.read_text()[-2000:]}")
        try:
            plugins = orthanc.get("/plugins")
            if "dicom-web" in plugins:
                with socket.create_connection(("127.0.0.1", orthanc.dicom_port), timeout=1):
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"Orthanc did not become ready in {START_TIMEOUT_S} s: {orthanc.log_path.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """Start Orthanc on free loopback ports; yield how to reach it; stop it at the end of the session."""
    # /usr/sbin is not on every PATH; the Debian package installs the server there.
    binary = "/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else require_tool("Orthanc")
    if not DICOMWEB_PLUGIN.exists():
        pytest.fail(f"{DICOMWEB_PLUGIN} is missing: install the Debian package orthanc-dicomweb (scripts/setup.sh)")
    root = tmp_path_factory.mktemp("orthanc")
    server = Orthanc(free_port(), free_port(), ORTHANC_AET, root / "orthanc.log")
    config = {
        "Name": "SmoothSegNet test PACS",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "storage"),
        "HttpServerEnabled": True,
        "HttpPort": server.http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": True,
        "DicomAet": server.aet,
        "DicomPort": server.dicom_port,
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowStore": True,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "ConcurrentJobs": 1,
        "HttpThreadsCount": 4,
    }
    config_path = root / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    with server.log_path.open("wb") as log:
        process = subprocess.Popen([binary, str(config_path)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
