"""``smoothsegnet models list | install | download | verify``: the model registry on the command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from SmoothSegNetLib.commands.segment import make_progress
from SmoothSegNetLib.models import Registry

NAME = "models"
HELP = "list, install (offline), download and verify model weights; export a card's network to ONNX"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    sub.required = True
    listing = sub.add_parser("list", help="known models and the state of their weights")
    listing.add_argument("--json", action="store_true", help="print JSON")
    install = sub.add_parser("install", help="install weights from a file (offline) after checking their sha256")
    install.add_argument("file", metavar="FILE", help="weights file, or a card JSON with its weights beside it")
    install.add_argument("--card", metavar="ID|CARD", help="the card the weights belong to")
    install.add_argument(
        "--no-onnx",
        action="store_true",
        help="install the weights only, without checking or exporting the ONNX graph (torch runtime only)",
    )
    _pin_arguments(install)
    download = sub.add_parser("download", help="download a model's weights from its card's URL")
    download.add_argument("id", metavar="ID", help="card id")
    download.add_argument("--url", help="download from this URL instead of the card's")
    download.add_argument("--progress", choices=("text", "jsonl", "none"), default=None)
    _pin_arguments(download)
    verify = sub.add_parser("verify", help="check the sha256 of installed weights")
    verify.add_argument("id", nargs="?", metavar="ID", help="one model (default: all with weights)")
    export = sub.add_parser(
        "export", help="export a card's network to ONNX beside the card and record it in the card (needs PyTorch)"
    )
    export.add_argument("card", metavar="CARD.json", help="the card file (its weights verified first)")


def _pin_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pin-sha256",
        action="store_true",
        help="for a card without sha256 (the paper's checkpoints): trust this file's hash from now on",
    )
    parser.add_argument("--yes", action="store_true", help="confirm pinning without asking")


def _confirm(args: argparse.Namespace) -> Callable[[str], bool]:
    def ask(sha256: str) -> bool:
        sys.stderr.write(f"sha256 of the weights: {sha256}\n")
        if args.yes:
            return True
        if not sys.stdin.isatty():
            sys.stderr.write("not confirmed: run again with --yes to pin this hash\n")
            return False
        answer = input("Pin this hash and trust these weights from now on? [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    return ask


def run(args: argparse.Namespace) -> int:
    registry = Registry()
    if args.action == "list":
        return _list(registry, args.json)
    if args.action == "install":
        entry = registry.install(
            args.file, args.card, pin_sha256=args.pin_sha256, confirm=_confirm(args), onnx=not args.no_onnx
        )
        sys.stdout.write(f"installed {entry.card.id} -> {entry.weights_path}\n")
        return 0
    if args.action == "download":
        entry = registry.download(
            args.id,
            url=args.url,
            progress=make_progress(args.progress),
            pin_sha256=args.pin_sha256,
            confirm=_confirm(args),
        )
        sys.stdout.write(f"downloaded {entry.card.id} -> {entry.weights_path}\n")
        return 0
    if args.action == "export":
        return _export(registry, args.card)
    results = registry.verify(args.id)
    for result in results:
        sys.stdout.write(f"{'OK  ' if result.ok else 'FAIL'} {result.card_id}: {result.message}\n")
    failed = [r.card_id for r in results if not r.ok]
    if failed:
        sys.stderr.write(f"error: {len(failed)} model(s) failed verification: {', '.join(failed)}; reinstall them\n")
        return 2
    return 0


def _export(registry: Registry, card_file: str) -> int:
    from SmoothSegNetLib.errors import InputError
    from SmoothSegNetLib.models.card import load_card
    from SmoothSegNetLib.models.onnx_graph import export_beside_card

    if not card_file.endswith(".json"):
        raise InputError(
            f"models export: give the card's JSON file (the graph is written beside it), got {card_file!r}"
        )
    card = load_card(card_file)
    weights, sha256 = registry.weights_for(card)
    section = export_beside_card(card, weights, sha256)
    sys.stdout.write(
        f"exported {card.id} -> {section['file']} (opset {section['opset']}, sha256 {section['sha256']})\n"
    )
    return 0


def _list(registry: Registry, as_json: bool) -> int:
    rows = []
    for entry in registry.entries():
        if not entry.weights_present:
            state = "not installed"
        elif entry.expected_sha256 is None:
            state = "present, unpinned (install with --pin-sha256)"
        else:
            state = "pinned" if entry.pinned else "present"
        rows.append(
            {
                "id": entry.card.id,
                "task": entry.card.task,
                "version": entry.card.version,
                "origin": entry.origin,
                "weights": state,
                "onnx": "present" if entry.onnx_present else ("missing" if entry.onnx_path else "none"),
                "title": entry.card.title,
            }
        )
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    for row in rows:
        line = f"{row['id']:32s} {row['task']:6s} {row['version']:8s} {row['origin']:8s} {row['weights']}"
        sys.stdout.write(f"{line}; onnx {row['onnx']}\n")
    if not rows:
        sys.stdout.write("no models known\n")
    return 0
