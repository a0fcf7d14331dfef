"""The model registry: bundled cards (``Resources/Models``) and the user's cache (``$SMOOTHSEGNET_HOME/models``).

Cache layout: ``models/<card id>/card.json``, the weights file named by the card, and for a card whose
sha256 is unknown (the paper's published checkpoints), ``pinned.json`` holding the hash the user confirmed
at install. Weights are loaded only when their hash matches the card's or the pinned one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from SmoothSegNetLib.errors import ModelError
from SmoothSegNetLib.models.card import ModelCard, load_card, write_card_file
from SmoothSegNetLib.models.onnx_graph import install_graph
from SmoothSegNetLib.models.weights import sha256_file
from SmoothSegNetLib.progress import ProgressCallback, no_progress
from SmoothSegNetLib.resources import RESOURCES_DIR

BUNDLED_DIR = RESOURCES_DIR / "Models"
_DOWNLOAD_CHUNK_BYTES = 1 << 16


def default_home() -> Path:
    """``$SMOOTHSEGNET_HOME`` or ``~/.smoothsegnet``."""
    value = os.environ.get("SMOOTHSEGNET_HOME")
    return Path(value).expanduser() if value else Path.home() / ".smoothsegnet"


@dataclass(frozen=True)
class ModelEntry:
    """One known model: its card, where the card lives, and the state of its weights."""

    card: ModelCard
    origin: str  # "cache" or "bundled"
    weights_path: Path
    expected_sha256: str | None
    pinned: bool
    onnx_path: Path | None = None
    onnx_sha256: str | None = None

    @property
    def weights_present(self) -> bool:
        return self.weights_path.is_file()

    @property
    def onnx_present(self) -> bool:
        return self.onnx_path is not None and self.onnx_path.is_file()


@dataclass(frozen=True)
class VerifyResult:
    card_id: str
    ok: bool
    message: str


Confirm = Callable[[str], bool]


class Registry:
    """Finds cards and their verified weights; installs and downloads weights into the cache."""

    def __init__(self, home: Path | None = None, bundled_dir: Path | None = None) -> None:
        self.home = home if home is not None else default_home()
        self.bundled_dir = bundled_dir if bundled_dir is not None else BUNDLED_DIR

    @property
    def cache_dir(self) -> Path:
        return self.home / "models"

    # -- lookup -------------------------------------------------------------------------------------
    def _card_files(self) -> list[tuple[Path, str]]:
        files: list[tuple[Path, str]] = []
        if self.cache_dir.is_dir():
            files += [(p, "cache") for p in sorted(self.cache_dir.glob("*/card.json"))]
        if self.bundled_dir.is_dir():
            files += [(p, "bundled") for p in sorted(self.bundled_dir.glob("*.json")) if _looks_like_card(p)]
        return files

    def entries(self) -> list[ModelEntry]:
        """Every known model, cache first (a cached card shadows a bundled one with the same id)."""
        seen: dict[str, ModelEntry] = {}
        for path, origin in self._card_files():
            card = load_card(path)
            if card.id not in seen:
                seen[card.id] = self._entry(card, origin)
        return list(seen.values())

    def _entry(self, card: ModelCard, origin: str) -> ModelEntry:
        cached = self.cache_dir / card.id / card.weights.file
        weights = cached if cached.is_file() else card.weights_path()
        pinned = self._pinned_sha256(card.id)
        expected = card.weights.sha256 if card.weights.sha256 is not None else pinned
        graph: Path | None = None
        if card.onnx is not None:
            cached_graph = self.cache_dir / card.id / card.onnx.file
            graph = cached_graph if cached_graph.is_file() else card.onnx_path()
        return ModelEntry(
            card,
            origin,
            weights,
            expected,
            pinned is not None and card.weights.sha256 is None,
            graph,
            card.onnx.sha256 if card.onnx is not None else None,
        )

    def _pinned_sha256(self, card_id: str) -> str | None:
        path = self.cache_dir / card_id / "pinned.json"
        if not path.is_file():
            return None
        try:
            value = json.loads(path.read_text(encoding="utf-8"))["sha256"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"pinned hash file {path} is damaged: delete it and install the weights again") from exc
        return str(value)

    def find(self, name: str | os.PathLike[str]) -> ModelEntry:
        """A model by card path, id, or unique id prefix (e.g. ``paper-liver``).

        Raises:
            ModelError: unknown or ambiguous name (the message lists the known ids).
        """
        candidate = Path(name)
        if str(name).endswith(".json") or candidate.is_file():
            card = load_card(candidate)
            cached = self.cache_dir / card.id / "card.json"
            return self._entry(card, "cache" if cached.is_file() else "file")
        entries = self.entries()
        exact = [e for e in entries if e.card.id == str(name)]
        matches = exact or [e for e in entries if e.card.id.startswith(str(name))]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(sorted(e.card.id for e in entries)) or "none"
        if not matches:
            raise ModelError(f"model {str(name)!r} is not known: give a card file or one of the ids: {known}")
        ids = [e.card.id for e in matches]
        raise ModelError(f"model {str(name)!r} is ambiguous: it matches {ids}; give the full id")

    def weights_for(self, card: ModelCard) -> tuple[Path, str | None]:
        """Weights path and the hash they must have (card's, or the pinned one)."""
        entry = self._entry(card, "file")
        return entry.weights_path, entry.expected_sha256

    def _staging_dir(self) -> Path:
        staging = self.cache_dir / ".downloads"
        staging.mkdir(parents=True, exist_ok=True)
        return staging

    # -- install / download -------------------------------------------------------------------------
    def install(
        self,
        weights_file: str | os.PathLike[str],
        card: str | os.PathLike[str] | None = None,
        *,
        pin_sha256: bool = False,
        confirm: Confirm | None = None,
        onnx: bool = True,
    ) -> ModelEntry:
        """Copy weights (offline) into the cache after checking their hash, with the model's ONNX graph.

        The graph beside the card is checked (sha256, and agreement with the weights on a probe input when
        PyTorch is installed) and copied; a card without one gets one exported when PyTorch is installed, and
        the cached card records its sha256 (:func:`~SmoothSegNetLib.models.onnx_graph.install_graph`).

        Args:
            weights_file: a weights file, or a card JSON whose weights file lies beside it.
            card: the card (id or file) the weights belong to; needed when ``weights_file`` is weights.
            pin_sha256: for a card without sha256: record this file's hash as the one to trust.
            confirm: asked (with the hash shown) before pinning; ``None`` = refuse to pin.
            onnx: also install (or export) the ONNX graph; ``False`` installs the weights only (the model then
                runs with the torch runtime only).

        Raises:
            ModelError: hash mismatch, unknown hash without ``pin_sha256``, pinning not confirmed, ONNX graph
                with the wrong hash or disagreeing with the weights (nothing is installed then).
        """
        source = Path(weights_file)
        if not source.is_file():
            raise ModelError(f"file {source} does not exist: give the weights file (or a card JSON) to install")
        if card is None:
            if source.suffix != ".json":
                raise ModelError(
                    f"install {source}: say which card the weights belong to with --card ID|CARD.json, "
                    "or give the card JSON itself (weights beside it)"
                )
            model_card = load_card(source)
            source = model_card.weights_path()
            if not source.is_file():
                raise ModelError(f"card {model_card.path}: its weights file {source} is missing beside it")
        else:
            model_card = self.find(card).card
        actual = sha256_file(source)
        expected = model_card.weights.sha256
        pinned = False
        if expected is None:
            if not pin_sha256:
                raise ModelError(
                    f"card {model_card.id!r} has no sha256, so weights cannot be checked: "
                    f"the file's sha256 is {actual}; "
                    "if you trust this file, run again with --pin-sha256 (and --yes) to pin it"
                )
            if confirm is None or not confirm(actual):
                raise ModelError(f"pinning sha256 {actual} for {model_card.id!r} was not confirmed; nothing installed")
            pinned = True
        elif actual != expected:
            raise ModelError(
                f"file {source} has sha256 {actual} but card {model_card.id!r} expects {expected}: "
                "refusing to install it; get the right file"
            )
        target_dir = self.cache_dir / model_card.id
        staging = Path(tempfile.mkdtemp(prefix=".install-", dir=self._staging_dir()))
        try:
            graph = install_graph(model_card, source, actual, staging) if onnx else None
            target_dir.mkdir(parents=True, exist_ok=True)
            for produced in staging.iterdir():
                os.replace(produced, target_dir / produced.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        _copy_atomic(source, target_dir / model_card.weights.file)
        data = dict(model_card.raw)
        data.pop("onnx", None)
        if graph is not None:
            data["onnx"] = graph
        write_card_file(target_dir / "card.json", data)
        if pinned:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            record = {"sha256": actual, "source": str(source), "pinned_at_utc": stamp}
            _write_atomic(target_dir / "pinned.json", json.dumps(record, indent=2) + "\n")
        return self.find(model_card.id)

    def download(
        self,
        name: str,
        *,
        url: str | None = None,
        progress: ProgressCallback = no_progress,
        pin_sha256: bool = False,
        confirm: Confirm | None = None,
        timeout_s: float = 60.0,
    ) -> ModelEntry:
        """Stream the card's weights from its URL to a temporary file, check the sha256, then move into place.

        Raises:
            ModelError: no URL, network failure, or hash mismatch (the temporary file is removed).
        """
        entry = self.find(name)
        card = entry.card
        source_url = url or card.weights.url
        if not source_url:
            raise ModelError(
                f"card {card.id!r} has no weights.url: download the file yourself and use 'models install'"
            )
        if card.weights.sha256 is None and not pin_sha256:
            raise ModelError(
                f"card {card.id!r} has no sha256, so a download cannot be checked; run again with --pin-sha256 "
                "to see the hash and confirm it"
            )
        staging = self.cache_dir / ".downloads"
        staging.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f"{card.id}-", suffix=".partial", dir=staging)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                _stream(source_url, out, progress, timeout_s)
            named = tmp_as(tmp, card.weights.file)
            return self.install(named, card=str(card.path), pin_sha256=pin_sha256, confirm=confirm)
        finally:
            for leftover in (tmp, tmp.with_name(card.weights.file)):
                leftover.unlink(missing_ok=True)

    # -- verify -------------------------------------------------------------------------------------
    def verify(self, name: str | None = None) -> list[VerifyResult]:
        """Check the sha256 of one model's weights, or of every model whose weights are present."""
        entries = [self.find(name)] if name else self.entries()
        results = []
        for entry in entries:
            cid = entry.card.id
            if not entry.weights_present:
                ok = False
                message = f"weights {entry.card.weights.file} not installed"
            elif entry.expected_sha256 is None:
                ok, message = False, "no sha256 in the card and none pinned: install with --pin-sha256"
            else:
                actual = sha256_file(entry.weights_path)
                ok = actual == entry.expected_sha256
                message = "ok" if ok else f"sha256 mismatch: file {actual}, expected {entry.expected_sha256}"
            if ok and entry.onnx_path is not None:
                ok, message = _verify_graph(entry)
            results.append(VerifyResult(cid, ok, message))
        return results


def _verify_graph(entry: ModelEntry) -> tuple[bool, str]:
    """The ONNX graph's part of ``verify`` (the weights already verified)."""
    assert entry.onnx_path is not None
    if not entry.onnx_path.is_file():
        return False, f"weights ok, ONNX graph {entry.onnx_path.name} missing"
    actual = sha256_file(entry.onnx_path)
    if actual != entry.onnx_sha256:
        return False, f"ONNX graph sha256 mismatch: file {actual}, expected {entry.onnx_sha256}"
    return True, "ok (weights and ONNX graph)"


def tmp_as(tmp: Path, name: str) -> Path:
    """Rename a downloaded temporary file so that its name is the card's weights file name (same folder)."""
    target = tmp.with_name(name)
    os.replace(tmp, target)
    return target


def _stream(url: str, out: object, progress: ProgressCallback, timeout_s: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(_DOWNLOAD_CHUNK_BYTES):
                out.write(chunk)  # type: ignore[attr-defined]
                done += len(chunk)
                progress("download", done / total if total else 0.0, f"{done / 1e6:.1f} MB")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ModelError(
            f"download of {url} failed: {exc}; check the URL and the network, or install from a file"
        ) from exc
    progress("download", 1.0, "complete")


def _looks_like_card(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("schema") == "smoothsegnet.model_card/1"


def _copy_atomic(source: Path, target: Path) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.partial-", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp_name)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _write_atomic(target: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.partial-", dir=target.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp_name, target)
