"""A model card for the best weights of a training run that has not finished, to score it on tuning phantoms.

A run writes its card only when its budget is spent; a long run trained in sittings (``train --resume``, on this
CPU or a lent GPU) is worth a look half-way. ``python -m SmoothSegNetLib.training.snapshot RUN --like CARD -o DIR``
copies the run's ``best.safetensors`` into ``DIR`` (so that the run's later best does not change it) and writes
beside it a card with ``CARD``'s settings (grid, windows, inference, post-processing) and those weights: a card
the pipeline and the evaluation tools read like any other (``--tumor-model DIR/<id>.json``). Its id and title say
it is a snapshot, its ``training`` record gives the run folder, the iteration, the best validation Dice and where
it was reached, and the minutes trained, as read from the run's checkpoint. What ``CARD`` fitted to its own
weights is left out: the ONNX graph, the lesion classifier with its score floor, and the confidence floor (score
the snapshot with every floor off, then fit a classifier for it, as ``scripts/train_demo.sh`` does).

The weights must load into ``CARD``'s network (same architecture and channels), or nothing is written.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from SmoothSegNetLib.errors import SmoothSegNetError

#: Card fields fitted to the weights of the card they come from, left out of a snapshot's card.
FITTED_TO_WEIGHTS = ("lesion_classifier", "min_lesion_score", "min_lesion_confidence")


class SnapshotError(SmoothSegNetError):
    """The run or the card cannot make a snapshot (the message says why)."""


def _run_state(run: Path) -> dict[str, Any]:
    import torch

    from SmoothSegNetLib.training.trainer import BEST_NAME, CHECKPOINT_NAME

    checkpoint, best = run / CHECKPOINT_NAME, run / BEST_NAME
    if not checkpoint.is_file() or not best.is_file():
        raise SnapshotError(f"{run} holds no {CHECKPOINT_NAME} and {BEST_NAME}: give the folder of a training run")
    try:
        saved = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
        return {
            "iteration": int(saved["iteration"]),
            "best_iteration": int(saved["best_iteration"]),
            "best_dice": float(saved["best_dice"]),
            "elapsed_min": float(saved["elapsed_s"]) / 60.0,
        }
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise SnapshotError(f"{checkpoint} cannot be read as a training checkpoint: {exc}") from exc


def write_snapshot(run: str | Path, like: str | Path, outdir: str | Path) -> Path:
    """Copy ``run``'s best weights into ``outdir`` with a card of ``like``'s settings; returns the card's path.

    Raises:
        SnapshotError: no run there, or its weights do not fit ``like``'s network.
        ModelError: ``like`` is not a valid card.
    """
    from SmoothSegNetLib.models import card_from_dict

    run, outdir = Path(run), Path(outdir)
    state = _run_state(run)
    like_path = Path(like)
    try:
        card: dict[str, Any] = json.loads(like_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"--like {like_path} cannot be read as a JSON model card: {exc}") from exc
    card_from_dict(card, source=str(like_path))  # a valid card before anything is written
    name = f"{card['id']}-snapshot-{state['best_iteration']}"
    weights = outdir / f"{name}.safetensors"
    created = not outdir.exists()
    try:
        return _write(run, like_path, card, state, name, weights)
    except BaseException:
        if created and outdir.is_dir() and not any(outdir.iterdir()):
            outdir.rmdir()  # a failed snapshot leaves no empty folder behind
        raise


def _write(run: Path, like_path: Path, card: dict[str, Any], state: dict[str, Any], name: str, weights: Path) -> Path:
    """The copy of the best weights and the card (see :func:`write_snapshot`), each written whole."""
    from SmoothSegNetLib.models import build_network, card_from_dict, load_weights, sha256_file
    from SmoothSegNetLib.models.card import write_card_file
    from SmoothSegNetLib.outputs import atomic_path
    from SmoothSegNetLib.training.trainer import BEST_NAME

    outdir = weights.parent
    with atomic_path(weights) as tmp:
        shutil.copyfile(run / BEST_NAME, tmp)
        snapshot = copy.deepcopy(card)
        left_out = ["onnx"] if snapshot.pop("onnx", None) is not None else []
        post = snapshot.get("postprocessing", {})
        left_out += [key for key in FITTED_TO_WEIGHTS if post.pop(key, None) is not None]
        snapshot["id"] = name
        snapshot["title"] = (
            f"{card['title']} (snapshot of an unfinished training run: best weights at iteration "
            f"{state['best_iteration']})"
        )
        snapshot["weights"] = {
            **card["weights"],
            "file": weights.name,
            "sha256": sha256_file(tmp),
            "format": "safetensors",
            "size_bytes": tmp.stat().st_size,
            "url": None,
        }
        snapshot["training"] = {
            "snapshot": {
                "run": str(run.resolve()),
                "iteration": state["iteration"],
                "best_iteration": state["best_iteration"],
                "best_validation_dice": round(state["best_dice"], 4),
                "minutes_trained": round(state["elapsed_min"], 1),
                "settings_from": str(like_path.resolve()),
                "left_out": left_out,
            }
        }
        model = card_from_dict(snapshot, path=outdir / f"{name}.json", source=f"snapshot of {run}")
        try:
            load_weights(build_network(model), model, path=tmp)
        except SmoothSegNetError as exc:
            raise SnapshotError(f"the weights of {run} do not fit the network of {like_path}: {exc}") from exc
        except RuntimeError as exc:  # torch: missing or mis-shaped tensors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SnapshotError(f"the weights of {run} do not fit the network of {like_path}: {first}") from exc
        card_path = write_card_file(outdir / f"{name}.json", snapshot)
    return card_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a training run folder (checkpoint.pt, best.safetensors)")
    parser.add_argument("--like", type=Path, required=True, help="the card whose settings the snapshot takes")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for the snapshot's card and weights")
    args = parser.parse_args(argv)
    try:
        card = write_snapshot(args.run, args.like, args.output)
    except SmoothSegNetError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(f"snapshot card: {card}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
