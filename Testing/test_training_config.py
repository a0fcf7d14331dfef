"""Training configuration files: defaults, nesting, and one refusal per rule (naming the field)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from SmoothSegNetLib.training.config import ConfigError, config_from_dict, config_to_dict, load_config

REPO = Path(__file__).resolve().parents[1]


def test_demo_configs_load() -> None:
    for stage in ("liver", "tumor"):
        config = load_config(REPO / "Resources" / "Training" / f"demo-{stage}.json")
        assert config.stage == stage
        assert config.data.kind == "phantom"
        assert config.data.train_seeds[1] <= config.data.val_seeds[0]
        assert config.out_channels == (2 if stage == "liver" else 3)


def test_every_bundled_config_is_valid() -> None:
    paths = sorted((REPO / "Resources" / "Training").glob("*.json"))
    assert len(paths) >= 5
    for path in paths:
        config = load_config(path)
        if config.card_template != "demo":
            assert (Path(config.base_dir) / config.card_template).is_file(), path


def test_nested_values_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {"stage": "tumor", "loss": {"smoothing": "conventional", "epsilon": 0.2}, "patch_size_ijk": [32, 32, 16]}
        )
    )
    config = load_config(path)
    assert config.loss.smoothing == "conventional" and config.loss.epsilon == 0.2
    assert config.patch_size_ijk == (32, 32, 16)
    assert config.base_dir == str(tmp_path)
    again = config_from_dict(config_to_dict(config))
    assert again.loss == config.loss and again.patch_size_ijk == config.patch_size_ijk


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stage": "kidney"}, "field stage must be one of liver, tumor, got 'kidney'"),
        ({"stage": "liver", "colour": 1}, "field colour is not a known setting"),
        ({"stage": "liver", "data": {"kind": "dicom"}}, "field data.kind must be one of"),
        ({"stage": "liver", "data": {"kind": "nifti"}}, "field data.root is required for data.kind 'nifti'"),
        ({"stage": "liver", "data": {"train_seeds": [5, 5]}}, "field data.train_seeds must be [first, end)"),
        (
            {"stage": "liver", "data": {"train_seeds": [0, 10], "val_seeds": [5, 6]}},
            "field data.val_seeds must not overlap",
        ),
        ({"stage": "liver", "data": {"folds": 5, "fold": 5}}, "field data.fold must be an integer in [0, data.folds)"),
        ({"stage": "liver", "data": {"wall_lesion_fraction": 1.5}}, "field data.wall_lesion_fraction must be"),
        ({"stage": "liver", "data": {"wall_lesion_fraction": -0.1}}, "field data.wall_lesion_fraction must be"),
        ({"stage": "tumor", "data": {"small_lesions": [3, 1]}}, "field data.small_lesions must be [low, high]"),
        ({"stage": "tumor", "data": {"small_lesions": [0, 1.5]}}, "field data.small_lesions must be [low, high]"),
        ({"stage": "tumor", "data": {"small_lesions": 2}}, "field data.small_lesions must be [low, high]"),
        ({"stage": "liver", "loss": {"smoothing": "clinical"}}, "clinical needs the 3-class tumor stage"),
        (
            {"stage": "tumor", "loss": {"smoothing": "soft"}},
            "field loss.smoothing must be one of clinical, conventional, none",
        ),
        (
            {"stage": "tumor", "loss": {"lambda_tlvr": -1}},
            "field loss.lambda_tlvr must be a number in [0.0, 100.0], got -1",
        ),
        (
            {"stage": "tumor", "loss": {"lambda_false": 101}},
            "field loss.lambda_false must be a number in [0.0, 100.0], got 101",
        ),
        ({"stage": "tumor", "loss": {"tlvr_scope": "slab"}}, "field loss.tlvr_scope must be patch or whole"),
        ({"stage": "tumor", "patch_size_ijk": [30, 32, 32]}, "field patch_size_ijk must be three multiples of 8"),
        ({"stage": "tumor", "batch_size": 0}, "field batch_size must be an integer >= 1, got 0"),
        ({"stage": "tumor", "select_weights": "first"}, "field select_weights must be best or last, got 'first'"),
        ({"stage": "tumor", "augment": {"flip_axes": [3]}}, "field augment.flip_axes must list network axes"),
        ({"stage": "tumor", "learning_rate": "fast"}, "field learning_rate must be a number"),
        ({"stage": "tumor", "channels_last": "yes"}, "field channels_last must be true or false, got 'yes'"),
        ({"stage": "tumor", "amp": 1}, "field amp must be true or false, got 1"),
        ({"schema": "other/1", "stage": "tumor"}, "field schema must be 'smoothsegnet.train_config/1'"),
        (
            {"stage": "tumor", "data": {"liver_mask_dilation_mm": [5, 2]}},
            "field data.liver_mask_dilation_mm must be [low, high] millimetres with 0 <= low <= high <= 50",
        ),
        ({"stage": "tumor", "data": {"liver_mask_dilation_mm": [-1, 2]}}, "field data.liver_mask_dilation_mm"),
        ({"stage": "tumor", "data": {"liver_mask_dilation_mm": 3}}, "field data.liver_mask_dilation_mm"),
        ({"stage": "tumor", "input_spacing_mm": 1.4}, "field input_spacing_mm must be null or three numbers"),
        ({"stage": "tumor", "input_spacing_mm": [1.4, 1.4]}, "field input_spacing_mm must be null or three numbers"),
        (
            {"stage": "tumor", "input_spacing_mm": [1.4, 0, 1.4]},
            "field input_spacing_mm must be null or three numbers of millimetres in [0.3, 10], got [1.4, 0, 1.4]",
        ),
        ({"stage": "tumor", "input_spacing_mm": [1.4, 1.4, "2"]}, "field input_spacing_mm must be null or three"),
        ({"stage": "tumor", "input_spacing_mm": [1.4, 1.4, True]}, "field input_spacing_mm must be null or three"),
    ],
)
def test_bad_values_name_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict(data, source="t.json")


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist: pass --config"):
        load_config(tmp_path / "none.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        load_config(broken)


def test_input_spacing_sets_the_cards_grid_and_the_training_renders() -> None:
    """A fine-tune on another grid (docs/small-lesions.md section 11): the card it writes and every training phantom
    it renders take the config's spacing, not the template card's 2 mm."""
    from SmoothSegNetLib.models import card_from_dict
    from SmoothSegNetLib.training.phantom_data import render_spec
    from SmoothSegNetLib.training.run import card_template_for

    plain = config_from_dict({"stage": "tumor"})
    fine = config_from_dict({"stage": "tumor", "input_spacing_mm": [1.4, 1.4, 1.4]})
    assert card_template_for(plain)["input"]["spacing_mm"] == [2.0, 2.0, 2.0]
    template = card_template_for(fine)
    assert template["input"]["spacing_mm"] == [1.4, 1.4, 1.4]
    assert {k: v for k, v in template.items() if k != "input"} == {
        k: v for k, v in card_template_for(plain).items() if k != "input"
    }
    card = card_from_dict(template, source="t")
    specs = [render_spec(seed, card, fine.data) for seed in range(1000, 1020)]
    # Jitter is +-15 % of the base spacing: 1.19-1.61 mm on the fine grid, 1.7-2.3 mm on the template's.
    assert all(1.19 <= s <= 1.61 for spec in specs for s in spec.spacing_mm)
    assert config_from_dict(config_to_dict(fine)).input_spacing_mm == (1.4, 1.4, 1.4)
