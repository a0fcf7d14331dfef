"""The ``smoothsegnet`` command line (also ``python -m SmoothSegNetLib``).

Exit status: 0 success; 2 bad input or usage (one ``error:`` line on stderr saying what to do);
1 internal failure; 130 cancelled (Ctrl-C / SIGTERM). On failure the output folder holds no new files.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType, ModuleType

from SmoothSegNetLib import __version__
from SmoothSegNetLib.errors import Cancelled, InputError, PacsError
from SmoothSegNetLib.progress import CancelFlag

#: Sub-command modules under ``SmoothSegNetLib.commands``, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "info",
    "inspect",
    "segment",
    "demo",
    "models",
    "report",
    "export",
    "add_lesion",
    "send",
    "phantom",
    "train",
    "evaluate",
    "followup",
)

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INPUT = 2
EXIT_CANCELLED = 130

log = logging.getLogger("SmoothSegNetLib")

#: Set by SIGINT/SIGTERM; long-running commands pass it as their cancel check.
CANCEL = CancelFlag()


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one ``error:`` line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_INPUT)


def _load_commands() -> list[ModuleType]:
    return [importlib.import_module(f"SmoothSegNetLib.commands.{name}") for name in COMMAND_MODULES]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="smoothsegnet", description="Liver and liver-tumor segmentation of CT (SmoothSegNet).")
    parser.add_argument("--version", action="version", version=f"smoothsegnet {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in _load_commands():
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # The first signal asks the running stage to stop at its next check; a second one is immediate.
    if CANCEL():
        raise KeyboardInterrupt
    CANCEL.set()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(int(args.verbose), 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, _on_signal)
    try:
        return run_guarded(lambda: int(args._run(args)), "run again with -vv for details and report it")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_guarded(run: Callable[[], int], hint: str = "report it") -> int:
    """``run()``'s exit status, or the status and one ``error:`` line on stderr for what it raised.

    The one mapping of failures to exit statuses, shared by the CLI and the Slicer module's child-process jobs:
    cancelled -> :data:`EXIT_CANCELLED`; bad input -> :data:`EXIT_INPUT`; a PACS failure, no memory, anything
    else -> :data:`EXIT_INTERNAL` (never a raw traceback for a user; ``hint`` says what to do about a bug). A
    ``SystemExit`` raised inside (an engine sub-command's usage error, which wrote its own line) keeps its code.
    """
    try:
        return run()
    except SystemExit as exc:
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT
    except (Cancelled, KeyboardInterrupt):
        sys.stderr.write("error: cancelled; no partial outputs were left\n")
        return EXIT_CANCELLED
    except InputError as exc:
        sys.stderr.write(f"error: {_one_line(exc)}\n")
        return EXIT_INPUT
    except PacsError as exc:
        sys.stderr.write(f"error: {_one_line(exc)}\n")
        return EXIT_INTERNAL
    except MemoryError:
        sys.stderr.write("error: out of memory; crop the CT to the abdomen or use a machine with more memory\n")
        return EXIT_INTERNAL
    except Exception as exc:  # the last line of defence
        log.debug("internal failure", exc_info=True)
        sys.stderr.write(f"error: internal failure ({type(exc).__name__}: {_one_line(exc)}); {hint}\n")
        return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
