"""Model cards: schema rules (one test per rule), network building, weights verified before loading."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from SmoothSegNetLib.errors import ModelError
from SmoothSegNetLib.models import (
    build_network,
    demo_card_template,
    load_card,
    load_weights,
    save_weights,
    sha256_file,
    write_trained_card,
)
from SmoothSegNetLib.models.network import forward_logits
from Testing._model_helpers import write_random_model

REPO = Path(__file__).resolve().parents[1]


def _valid_card() -> dict[str, Any]:
    card = demo_card_template("tumor")
    card["weights"]["sha256"] = "a" * 64
    return card


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "card.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_valid_card_parses_into_frozen_dataclasses(tmp_path: Path) -> None:
    card = load_card(_write(tmp_path, _valid_card()))
    assert card.id == "smoothsegnet-demo-tumor"
    assert card.task == "tumor"
    assert card.input.spacing_mm == (2.0, 2.0, 2.0)
    assert card.input.hu_window == (-200.0, 250.0)
    assert card.channel_of("tumor") == 2
    assert card.out_channels == 3
    assert card.weights_path() == tmp_path / "smoothsegnet-demo-tumor.safetensors"
    with pytest.raises(AttributeError):
        card.id = "other"  # type: ignore[misc]


def _mutate(path: str, value: Any) -> dict[str, Any]:
    card = _valid_card()
    node = card
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return card


_DELETE = object()
_LIVER_ONLY = [{"channel": 0, "id": "background", "name": "B"}, {"channel": 1, "id": "liver", "name": "L"}]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("task", "spleen", "task"),
        ("id", "Bad Id!", "id"),
        ("architecture.name", "os.system", "architecture.name"),
        ("input.hu_window", [250, -200], "input.hu_window"),
        ("input.orientation", "LLS", "input.orientation"),
        ("input.spacing_mm", [1.5, -1.0, 2.0], "input.spacing_mm"),
        ("weights.sha256", "xyz", "weights.sha256"),
        ("weights.file", "../evil.pt", "weights.file"),
        ("weights.format", "pickle", "weights.format"),
        ("architecture.args.out_channels", 2, "architecture.args.out_channels"),
        (
            "output.classes",
            _LIVER_ONLY,
            "output.classes",
        ),
        ("license", _DELETE, "license"),
        ("inference.overlap", 1.0, "inference.overlap"),
    ],
)
def test_bad_card_is_refused_naming_file_and_field(tmp_path: Path, path: str, value: Any, field: str) -> None:
    card_path = _write(tmp_path, _mutate(path, value))
    with pytest.raises(ModelError) as info:
        load_card(card_path)
    message = str(info.value)
    assert str(card_path) in message
    assert field.split(".")[-1] in message or field in message


def test_sliding_mode_needs_a_window(tmp_path: Path) -> None:
    card = _valid_card()
    card["inference"] = {"mode": "sliding"}
    with pytest.raises(ModelError, match=r"inference\.roi_size_ijk"):
        load_card(_write(tmp_path, card))


def test_missing_and_non_json_card_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_card(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_card(bad)


def test_bundled_paper_cards_build_the_paper_network() -> None:
    liver = load_card(REPO / "Resources/Models/paper-liver-segresnetvae.json")
    tumor = load_card(REPO / "Resources/Models/paper-tumor-segresnetvae.json")
    assert (liver.input.orientation, liver.input.spacing_mm, liver.inference.roi_size_ijk) == (
        "PLI",
        None,
        (512, 512, 16),
    )
    assert (tumor.inference.roi_size_ijk, tumor.input.hu_window, tumor.out_channels) == (
        (256, 256, 32),
        (-200.0, 250.0),
        3,
    )
    assert liver.weights.sha256 is None and tumor.weights.sha256 is None
    network = build_network(tumor)
    assert type(network).__name__ == "SegResNetVAE"
    assert network.conv_final[-1].conv.out_channels == 3  # type: ignore[index, union-attr]


def test_demo_templates_build_small_networks() -> None:
    for task, channels in (("liver", 2), ("tumor", 3)):
        template = demo_card_template(task)
        template["weights"]["sha256"] = "0" * 64
        from SmoothSegNetLib.models.card import card_from_dict

        network = build_network(card_from_dict(template))
        n_params = sum(p.numel() for p in network.parameters())
        assert n_params < 2_000_000
        out = forward_logits(network.eval(), torch.zeros(1, 1, 16, 16, 16))
        assert tuple(out.shape) == (1, channels, 16, 16, 16)


def test_write_trained_card_fills_hash_and_weights_load(tmp_path: Path) -> None:
    card_path = write_random_model(tmp_path, "liver", seed=3)
    card = load_card(card_path)
    weights = tmp_path / card.weights.file
    assert card.weights.sha256 == sha256_file(weights)
    assert card.weights.size_bytes == weights.stat().st_size
    network = load_weights(build_network(card), card)
    reference = build_network(card)
    torch.manual_seed(3)
    reference = build_network(card)
    for (name, a), (_, b) in zip(network.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), name


def test_tampered_weights_are_refused_before_loading(tmp_path: Path) -> None:
    card = load_card(write_random_model(tmp_path, "liver"))
    weights = tmp_path / card.weights.file
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256") as info:
        load_weights(build_network(card), card)
    assert card.weights.sha256 in str(info.value)


def test_unknown_hash_is_never_loaded(tmp_path: Path) -> None:
    template = copy.deepcopy(demo_card_template("liver"))
    card_path = write_random_model(tmp_path, "liver")
    data = json.loads(card_path.read_text())
    data["weights"]["sha256"] = None
    card_path.write_text(json.dumps(data))
    card = load_card(card_path)
    with pytest.raises(ModelError, match="--pin-sha256"):
        load_weights(build_network(card), card)
    assert template["weights"]["sha256"] is None


def test_pt_weights_load_with_weights_only(tmp_path: Path) -> None:
    card_path = write_random_model(tmp_path, "liver")
    data = json.loads(card_path.read_text())
    card = load_card(card_path)
    network = load_weights(build_network(card), card)
    pt = tmp_path / "w.pt"
    torch.save({"state_dict": network.state_dict()}, pt)
    data["weights"].update({"file": "w.pt", "format": "pt", "sha256": sha256_file(pt), "state_dict_key": "state_dict"})
    card_path.write_text(json.dumps(data))
    card = load_card(card_path)
    loaded = load_weights(build_network(card), card)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), network.state_dict().values()))


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    card_path = write_random_model(tmp_path, "liver")
    card = load_card(card_path)
    other = torch.nn.Conv3d(1, 2, 1)
    save_weights(other, tmp_path / card.weights.file)
    template = json.loads(card_path.read_text())
    write_trained_card(template, tmp_path / card.weights.file, card_path, {"data": "x"})
    card = load_card(card_path)
    with pytest.raises(ModelError, match="do not fit"):
        load_weights(build_network(card), card)
