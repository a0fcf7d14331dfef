"""``smoothsegnet demo -o OUTDIR``: segment the bundled sample CT with the bundled demo weights."""

from __future__ import annotations

import argparse
from pathlib import Path

from SmoothSegNetLib.commands.segment import add_model_arguments, options_from_args, run_cases
from SmoothSegNetLib.errors import InputError, ModelError
from SmoothSegNetLib.inference import DEFAULT_LIVER_MODEL, DEFAULT_TUMOR_MODEL
from SmoothSegNetLib.inference.cases import Case
from SmoothSegNetLib.models import Registry
from SmoothSegNetLib.resources import RESOURCES_DIR

NAME = "demo"
HELP = "segment the bundled sample CT with the bundled demo weights (synthetic data; not for clinical use)"

SAMPLE_CT = RESOURCES_DIR / "Sample" / "sample_ct.nrrd"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    add_model_arguments(parser)
    parser.set_defaults(series=None)


def check_demo_assets(sample: Path = SAMPLE_CT, registry: Registry | None = None) -> None:
    """Raise a clear :class:`InputError` if the sample CT or the demo models are missing."""
    if not sample.is_file():
        raise InputError(
            f"the bundled sample CT {sample} is missing: reinstall SmoothSegNet or run 'smoothsegnet phantom'"
        )
    registry = registry if registry is not None else Registry()
    for name in (DEFAULT_LIVER_MODEL, DEFAULT_TUMOR_MODEL):
        try:
            entry = registry.find(name)
        except ModelError as exc:
            raise ModelError(
                f"the demo model {name} is missing ({exc}); the demo weights are made by 'bash scripts/train_demo.sh'"
            ) from exc
        if not entry.weights_present:
            raise ModelError(
                f"the demo weights {entry.weights_path} are missing; they are made by 'bash scripts/train_demo.sh' "
                f"or installed with 'smoothsegnet models install CARD.json'"
            )


def run(args: argparse.Namespace) -> int:
    check_demo_assets()
    args.overwrite = True
    options = options_from_args(args, DEFAULT_LIVER_MODEL, DEFAULT_TUMOR_MODEL, liver_only=False)
    return run_cases([Case(SAMPLE_CT, Path(args.output))], args, options)
