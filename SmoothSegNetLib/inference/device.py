"""Choosing the compute device, CPU threads, mixed precision, and falling back on GPU out-of-memory."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch

from SmoothSegNetLib.errors import InputError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")
T = TypeVar("T")


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; an explicit device must be available.

    Raises:
        InputError: unknown name, or the requested device is not available on this machine.
    """
    base = name.split(":", 1)[0]
    if base not in DEVICES:
        raise InputError(f"--device must be one of {', '.join(DEVICES)} (cuda:N allowed), got {name!r}")
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise InputError(
            f"--device {name}: no CUDA GPU is available here (torch {torch.__version__}); use --device cpu"
        )
    if base == "mps" and not _mps_available():
        raise InputError(f"--device {name}: Apple MPS is not available here; use --device cpu")
    return torch.device(name)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def set_threads(threads: int | None) -> None:
    """Set the number of CPU threads torch uses (``None`` keeps torch's default).

    Raises:
        InputError: ``threads`` < 1.
    """
    if threads is None:
        return
    if threads < 1:
        raise InputError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(int(threads))


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool = True, cpu_bf16: bool = False) -> Iterator[None]:
    """Mixed precision: float16 on CUDA (``enabled``), bfloat16 on CPU only when ``cpu_bf16``; else a no-op."""
    if enabled and device.type == "cuda":
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            yield
    elif cpu_bf16 and device.type == "cpu":
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            yield
    else:
        yield


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a GPU out-of-memory error (CUDA or MPS)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def run_with_oom_fallback(
    run: Callable[[torch.device, int], T], device: torch.device, batch_size: int
) -> tuple[T, torch.device, list[str]]:
    """Call ``run(device, batch_size)``; on GPU out-of-memory retry with batch size 1, then on CPU.

    Returns:
        ``(result, device used, warnings)``; the warnings say what fallback happened and why.
    """
    warnings: list[str] = []
    attempts: list[tuple[torch.device, int]] = [(device, batch_size)]
    if device.type != "cpu":
        if batch_size > 1:
            attempts.append((device, 1))
        attempts.append((torch.device("cpu"), 1))
    for n, (dev, batch) in enumerate(attempts):
        try:
            return run(dev, batch), dev, warnings
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            if not is_out_of_memory(exc) or n == len(attempts) - 1:
                raise
            nxt = attempts[n + 1]
            message = (
                f"out of GPU memory on {dev} with batch size {batch}; retrying on {nxt[0]} with batch size {nxt[1]} "
                "(use a smaller window or --device cpu to avoid this)"
            )
            log.warning(message)
            warnings.append(message)
            _free_gpu(dev)
    raise AssertionError("unreachable")  # pragma: no cover


def _free_gpu(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
