"""Sending DICOM objects to a PACS: DIMSE C-STORE (pynetdicom) or DICOMweb STOW-RS (urllib).

Failures raise :class:`~SmoothSegNetLib.errors.PacsError` (the command line exits with status 1): the files
sent stay where they were, so the same command can simply be run again.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from SmoothSegNetLib.errors import InputError, PacsError

log = logging.getLogger(__name__)

DEFAULT_CALLING_AET = "SMOOTHSEGNET"
DEFAULT_TIMEOUT_S = 30.0
_STOW_FAILED_SOP_SEQUENCE = "00081198"


@dataclass(frozen=True)
class DimseTarget:
    """A DICOM node: host, port and its AE title; ``calling_aet`` is ours."""

    host: str
    port: int
    called_aet: str
    calling_aet: str = DEFAULT_CALLING_AET
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass
class SendResult:
    """What arrived: SOP instance UIDs accepted by the PACS, in sending order."""

    sent_sop_instance_uids: list[str] = field(default_factory=list)


def _check_aet(value: str, name: str) -> str:
    if not value or len(value) > 16 or not value.isascii() or "\\" in value or value != value.strip():
        raise InputError(
            f"{name} must be 1 to 16 ASCII characters without backslash or surrounding spaces, got {value!r}"
        )
    return value


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); raises InputError naming the rule."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InputError(f"--dicom must be HOST:PORT with a port 1..65535 (e.g. pacs.local:104), got {text!r}")
    return host.strip("[]"), int(port_text)


def read_for_sending(paths: Sequence[Path]) -> list[Dataset]:
    """Read the files to send (with pixels); InputError for a file that is not DICOM."""
    datasets: list[Dataset] = []
    for path in paths:
        try:
            datasets.append(pydicom.dcmread(path))
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise InputError(f"{path} is not a readable DICOM file ({exc}): nothing was sent") from exc
    return datasets


@contextlib.contextmanager
def _quiet_pynetdicom() -> Iterator[None]:
    """pynetdicom logs its own ERROR lines for a refused connection; our PacsError says it better (once).

    With ``-vv`` (our logger at DEBUG) its log is kept, for diagnosis.
    """
    logger = logging.getLogger("pynetdicom")
    previous = logger.level
    if not log.isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _reachable(target: DimseTarget) -> bool:
    """Whether a TCP connection to the PACS can be opened at all."""
    try:
        with socket.create_connection((target.host, target.port), timeout=min(target.timeout_s, 5.0)):
            return True
    except OSError:
        return False


def _where(target: DimseTarget) -> str:
    return f"the PACS at {target.host}:{target.port} (called AE title {target.called_aet!r})"


def send_dimse(paths: Sequence[Path], target: DimseTarget) -> SendResult:
    """C-STORE every file to ``target`` in one association.

    Raises:
        PacsError: the PACS cannot be reached, refuses the association (e.g. a wrong called AE title), does
            not accept a SOP class, or answers a C-STORE with a failure status.
    """
    from pynetdicom import AE

    _check_aet(target.called_aet, "--aet")
    _check_aet(target.calling_aet, "--calling-aet")
    datasets = read_for_sending(paths)
    ae = AE(ae_title=target.calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = target.timeout_s
    contexts = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets})
    for sop_class, syntax in contexts:
        ae.add_requested_context(sop_class, [syntax])
    with _quiet_pynetdicom():
        return _store_all(ae, paths, datasets, target)


def _store_all(ae: Any, paths: Sequence[Path], datasets: Sequence[Dataset], target: DimseTarget) -> SendResult:
    assoc = ae.associate(target.host, target.port, ae_title=target.called_aet)
    if not assoc.is_established:
        if assoc.is_rejected:
            raise PacsError(
                f"{_where(target)} refused the association: check the called AE title (--aet) and that it "
                f"knows our AE title {target.calling_aet!r}; the files stay on disk, send again when fixed"
            )
        if _reachable(target):
            # Some PACS close the connection instead of answering A-ASSOCIATE-RJ (pynetdicom then sees an abort).
            raise PacsError(
                f"{_where(target)} accepted the connection but aborted the association: check the called AE "
                f"title (--aet) and that it knows our AE title {target.calling_aet!r}; the files stay on disk, "
                "send again when fixed"
            )
        raise PacsError(
            f"{_where(target)} could not be reached (connection refused or timed out): check the host, the port "
            "and that the PACS is running; the files stay on disk, send again when it is up"
        )
    result = SendResult()
    try:
        for path, ds in zip(paths, datasets):
            try:
                status = assoc.send_c_store(ds)
            except (ValueError, RuntimeError) as exc:  # no accepted presentation context, association lost
                raise PacsError(
                    f"{_where(target)} does not accept {path} (SOP class {ds.SOPClassUID}, transfer syntax "
                    f"{ds.file_meta.TransferSyntaxUID}): {exc}"
                ) from exc
            code = getattr(status, "Status", None)
            if code is None:
                raise PacsError(f"{_where(target)} gave no answer to the C-STORE of {path} (connection lost)")
            if code not in (0x0000, 0xB000, 0xB006, 0xB007):
                raise PacsError(f"{_where(target)} refused {path}: C-STORE status 0x{code:04X}")
            result.sent_sop_instance_uids.append(str(ds.SOPInstanceUID))
            log.info("sent %s (%s)", path, ds.SOPInstanceUID)
    finally:
        assoc.release()
    return result


def _multipart(datasets_bytes: Sequence[bytes], boundary: str) -> bytes:
    parts = []
    for payload in datasets_bytes:
        parts.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + payload + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def send_dicomweb(paths: Sequence[Path], url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> SendResult:
    """STOW-RS every file to ``{url}/studies`` in one multipart request.

    Raises:
        InputError: the URL is not http(s).
        PacsError: the server cannot be reached, answers with an HTTP error, or lists failed instances.
    """
    if not url.startswith(("http://", "https://")):
        raise InputError(f"--dicomweb must be an http:// or https:// URL of the DICOMweb root, got {url!r}")
    datasets = read_for_sending(paths)
    boundary = f"smoothsegnet-{uuid.uuid4().hex}"
    body = _multipart([Path(p).read_bytes() for p in paths], boundary)
    request = urllib.request.Request(
        url.rstrip("/") + "/studies",
        data=body,
        method="POST",
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = response.read()
    except urllib.error.HTTPError as exc:
        raise PacsError(
            f"the DICOMweb server at {url} refused the upload: HTTP {exc.code} {exc.reason}; "
            "the files stay on disk, send again when fixed"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PacsError(
            f"the DICOMweb server at {url} could not be reached ({reason}): check the URL and that it is "
            "running; the files stay on disk, send again when it is up"
        ) from exc
    _check_stow_answer(answer, url, datasets)
    return SendResult([str(ds.SOPInstanceUID) for ds in datasets])


def _check_stow_answer(answer: bytes, url: str, datasets: Sequence[Dataset]) -> None:
    import json

    try:
        document = json.loads(answer.decode("utf-8")) if answer.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        return  # some servers answer XML or nothing on success; the HTTP status said OK
    failed = document.get(_STOW_FAILED_SOP_SEQUENCE, {}).get("Value", []) if isinstance(document, dict) else []
    if failed:
        raise PacsError(f"the DICOMweb server at {url} did not store {len(failed)} of {len(datasets)} instances")
