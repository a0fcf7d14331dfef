"""The model registry: offline install, pinning for cards without sha256, downloads from a loopback server, verify."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from SmoothSegNetLib.errors import ModelError
from SmoothSegNetLib.models import Registry, load_card, sha256_file
from Testing._model_helpers import write_random_model
from Testing.conftest import run_cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def registry(_isolated_home: Path) -> Registry:
    return Registry(home=_isolated_home)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static HTTP server on 127.0.0.1 serving ``tmp_path/www`` (no internet involved)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined, method-assign]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_install_a_card_with_its_weights_then_find_and_verify(tmp_path: Path, registry: Registry) -> None:
    card_path = write_random_model(tmp_path / "trained", "liver")
    entry = registry.install(card_path)
    assert entry.origin == "cache"
    assert entry.weights_path == registry.cache_dir / "test-random-liver" / "test-random-liver.safetensors"
    assert sha256_file(entry.weights_path) == load_card(card_path).weights.sha256
    assert registry.find("test-random").card.id == "test-random-liver"  # unique prefix
    assert [(r.card_id, r.ok) for r in registry.verify("test-random-liver")] == [("test-random-liver", True)]
    entry.weights_path.write_bytes(b"tampered")
    result = registry.verify("test-random-liver")[0]
    assert not result.ok and "mismatch" in result.message


def test_install_of_wrong_weights_is_refused_and_nothing_is_copied(tmp_path: Path, registry: Registry) -> None:
    card_path = write_random_model(tmp_path / "trained", "liver")
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"not the weights")
    with pytest.raises(ModelError, match="refusing to install") as info:
        registry.install(other, str(card_path))
    assert sha256_file(other) in str(info.value)
    assert not (registry.cache_dir / "test-random-liver").exists()


def test_paper_card_needs_an_explicit_confirmed_pin(tmp_path: Path, registry: Registry) -> None:
    weights = tmp_path / "liver_3DSegResNetVAE.pth"
    weights.write_bytes(b"pretend checkpoint bytes")
    digest = sha256_file(weights)
    with pytest.raises(ModelError, match="--pin-sha256") as info:
        registry.install(weights, "paper-liver")
    assert digest in str(info.value)
    with pytest.raises(ModelError, match="not confirmed"):
        registry.install(weights, "paper-liver", pin_sha256=True, confirm=lambda sha: False)
    assert not (registry.cache_dir / "paper-liver-segresnetvae").exists()
    shown: list[str] = []
    # onnx=False: these pretend bytes cannot be loaded to export an ONNX graph (Testing/test_onnx_models.py).
    entry = registry.install(
        weights, "paper-liver", pin_sha256=True, confirm=lambda sha: shown.append(sha) or True, onnx=False
    )
    assert shown == [digest]
    assert entry.pinned and entry.expected_sha256 == digest
    pinned = json.loads((registry.cache_dir / "paper-liver-segresnetvae" / "pinned.json").read_text())
    assert pinned["sha256"] == digest
    assert registry.verify("paper-liver-segresnetvae")[0].ok
    # A different file later is refused against the pinned hash.
    (registry.cache_dir / "paper-liver-segresnetvae" / weights.name).write_bytes(b"swapped")
    assert not registry.verify("paper-liver-segresnetvae")[0].ok


def test_unknown_and_ambiguous_names(registry: Registry) -> None:
    with pytest.raises(ModelError, match="not known") as info:
        registry.find("nonexistent")
    assert "paper-liver-segresnetvae" in str(info.value)
    with pytest.raises(ModelError, match="ambiguous"):
        registry.find("paper-")


def test_download_streams_checks_sha256_and_moves_into_place(
    tmp_path: Path, registry: Registry, server: tuple[str, Path]
) -> None:
    url, root = server
    card_path = write_random_model(tmp_path / "trained", "tumor")
    card = load_card(card_path)
    (root / card.weights.file).write_bytes((tmp_path / "trained" / card.weights.file).read_bytes())
    fractions: list[float] = []
    entry = registry.download(
        str(card_path), url=f"{url}/{card.weights.file}", progress=lambda s, f, m="": fractions.append(f)
    )
    assert entry.weights_path.is_file() and sha256_file(entry.weights_path) == card.weights.sha256
    assert fractions[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in fractions)
    assert list((registry.cache_dir / ".downloads").iterdir()) == []


def test_download_with_wrong_content_is_refused_and_leaves_nothing(
    tmp_path: Path, registry: Registry, server: tuple[str, Path]
) -> None:
    url, root = server
    card_path = write_random_model(tmp_path / "trained", "tumor")
    (root / "evil.safetensors").write_bytes(b"evil")
    with pytest.raises(ModelError, match="refusing to install"):
        registry.download(str(card_path), url=f"{url}/evil.safetensors")
    assert not (registry.cache_dir / "test-random-tumor").exists()
    assert list((registry.cache_dir / ".downloads").iterdir()) == []
    with pytest.raises(ModelError, match=r"download of .* failed"):
        registry.download(str(card_path), url=f"{url}/missing.safetensors")


def test_models_cli_list_install_pin_verify(tmp_path: Path) -> None:
    weights = tmp_path / "tumor_3DSegResNetVAE.pth"
    weights.write_bytes(b"pretend tumor checkpoint")
    refused = run_cli("models", "install", str(weights), "--card", "paper-tumor")
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and sha256_file(weights) in lines[0]
    unconfirmed = run_cli("models", "install", str(weights), "--card", "paper-tumor", "--pin-sha256")
    assert unconfirmed.returncode == 2 and "not confirmed" in unconfirmed.stderr
    # --no-onnx: pretend bytes cannot be loaded to export the ONNX graph (Testing/test_onnx_models.py does that).
    done = run_cli("models", "install", str(weights), "--card", "paper-tumor", "--pin-sha256", "--yes", "--no-onnx")
    assert done.returncode == 0, done.stderr
    listing = run_cli("models", "list", "--json")
    rows = {row["id"]: row for row in json.loads(listing.stdout)}
    assert rows["paper-tumor-segresnetvae"]["weights"] == "pinned"
    assert rows["paper-liver-segresnetvae"]["weights"] == "not installed"
    verify = run_cli("models", "verify", "paper-tumor-segresnetvae")
    assert verify.returncode == 0 and verify.stdout.startswith("OK")
    failing = run_cli("models", "verify")
    assert failing.returncode == 2 and "paper-liver-segresnetvae" in failing.stderr
