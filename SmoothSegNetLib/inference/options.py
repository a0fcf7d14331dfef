"""Options and result of :func:`SmoothSegNetLib.inference.segment`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.report.candidates import Candidates, LesionThresholds

DEFAULT_LIVER_MODEL = "smoothsegnet-demo-liver"
DEFAULT_TUMOR_MODEL = "smoothsegnet-demo-tumor"


@dataclass(frozen=True)
class SegmentOptions:
    """What to run and how.

    Attributes:
        liver_model: liver card id (registry) or card file path.
        tumor_model: tumor card id or path.
        liver_only: skip the tumor stage.
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``.
        runtime: ``auto`` (torch on a GPU, the ONNX graphs on the CPU) | ``torch`` | ``onnx`` (the fastest
            installed CPU engine) | ``openvino`` | ``onnxruntime`` (see :mod:`SmoothSegNetLib.inference.runtime`).
        threads: CPU threads for the networks (``None`` = the runtime's default).
        min_lesion_ml: lesions smaller than this are dropped (``None`` = the tumor card's value).
        min_lesion_confidence: lesions whose mean tumor decision probability is below this are dropped (given
            back to the liver); ``None`` = the tumor card's value (0 = keep all).
        min_lesion_score: lesions that the tumor card's lesion classifier scores below this are review candidates
            (``None`` = the card's; 0 = keep all; needs a card with a classifier).
        candidate_probability: also list regions whose tumor probability reaches this but not 0.5 as review
            candidates (``None`` = the card's; 0 = off).
        candidate_fine_spacing_mm: also run the tumor network on an isotropic grid of this spacing (mm) and list
            its components that touch no lesion as review candidates (``None`` = the card's; 0 = off).
        candidate_scan: also scan the liver's CT for lesions the network missed and list at most this many of its
            findings per case as review candidates (``None`` = the card's; 0 = off).
        refine: morphological Chan–Vese refinement of tumors (``None`` = as the tumor card says).
        refine_grid: where Chan–Vese runs, ``isotropic`` or ``input`` (the paper's; depends on the slice
            thickness), see :class:`~SmoothSegNetLib.inference.refine.RefineGrid` (``None`` = the tumor card's).
        probability_map: also return the decision probabilities on the input grid.
        batch_size: windows per forward pass (``None`` = the card's).
        amp: mixed precision (float16) on GPU.
        cpu_bf16: bfloat16 autocast on CPU (fast on CPUs with AMX / AVX512-BF16; outputs differ slightly from
            float32, so it is off by default — bench/speed.py measures the agreement).
    """

    liver_model: str = DEFAULT_LIVER_MODEL
    tumor_model: str = DEFAULT_TUMOR_MODEL
    liver_only: bool = False
    device: str = "auto"
    runtime: str = "auto"
    threads: int | None = None
    min_lesion_ml: float | None = None
    min_lesion_confidence: float | None = None
    min_lesion_hu: float | None = None
    min_lesion_score: float | None = None
    candidate_probability: float | None = None
    candidate_fine_spacing_mm: float | None = None
    candidate_scan: int | None = None
    refine: bool | None = None
    refine_grid: str | None = None
    probability_map: bool = False
    batch_size: int | None = None
    amp: bool = True
    cpu_bf16: bool = False

    def __post_init__(self) -> None:
        from SmoothSegNetLib.inference.runtime import RUNTIMES

        if self.runtime not in RUNTIMES:
            raise InputError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if self.min_lesion_ml is not None and not (math.isfinite(self.min_lesion_ml) and self.min_lesion_ml >= 0):
            raise InputError(f"--min-lesion-ml must be a number >= 0 (ml), got {self.min_lesion_ml!r}")
        conf = self.min_lesion_confidence
        if conf is not None and not (math.isfinite(conf) and 0 <= conf < 1):
            raise InputError(f"--min-lesion-confidence must be a number in [0, 1), got {conf!r}")
        hu = self.min_lesion_hu
        if hu is not None and not (math.isfinite(hu) and -1024 <= hu <= 3071):
            raise InputError(f"--min-lesion-hu must be a number in [-1024, 3071] (HU), got {hu!r}")
        score = self.min_lesion_score
        if score is not None and not (math.isfinite(score) and 0 <= score < 1):
            raise InputError(f"--min-lesion-score must be a number in [0, 1), got {score!r}")
        cand = self.candidate_probability
        if cand is not None and not (math.isfinite(cand) and 0 <= cand < 0.5):
            raise InputError(f"--candidate-probability must be a number in [0, 0.5) (0 = off), got {cand!r}")
        fine = self.candidate_fine_spacing_mm
        if fine is not None and not (math.isfinite(fine) and (fine == 0 or 0.5 <= fine <= 10)):
            raise InputError(f"--candidate-fine-spacing must be 0 (off) or a spacing in [0.5, 10] mm, got {fine!r}")
        scan = self.candidate_scan
        if scan is not None and not (isinstance(scan, int) and not isinstance(scan, bool) and 0 <= scan <= 20):
            raise InputError(f"--candidate-scan must be a whole number of findings in [0, 20] (0 = off), got {scan!r}")
        if self.refine_grid is not None and self.refine_grid not in ("isotropic", "input"):
            raise InputError(f"--refine-grid must be isotropic or input, got {self.refine_grid!r}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads must be >= 1, got {self.threads!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {self.batch_size!r}")


@dataclass(frozen=True)
class SegmentationResult:
    """The segmentation of one CT, on exactly the CT's grid.

    Attributes:
        labelmap: uint8 ``[k, j, i]``: 0 background, 1 liver, 2 tumor.
        lesions: uint16 ``[k, j, i]``: lesion n has value n (1 = largest), 0 elsewhere.
        confidence: lesion id -> mean tumor decision probability inside the lesion (0..1).
        probability: with ``probability_map``: ``{"liver": ..., "tumor": ...}`` float16 ``[k, j, i]``.
        warnings: normal-but-notable outcomes (no liver found, tumor-free liver, GPU fallback).
        models: one dict per model used (id, title, version, task, sha256).
        timings_s: seconds per stage.
        device: the device that ran the networks.
        thresholds: the lesion floors used (volume, confidence, attenuation) and their sources.
        candidates: tumor components the floors dropped (given back to the liver in ``labelmap``), on the grid.
        runtime: what ran them (runtime, engine, precision, device), e.g. ``onnx (openvino 2026.4.1) f32 on cpu``.
    """

    labelmap: np.ndarray
    lesions: np.ndarray
    confidence: dict[int, float]
    probability: dict[str, np.ndarray] | None = None
    warnings: tuple[str, ...] = ()
    models: tuple[dict[str, Any], ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    thresholds: LesionThresholds = field(default_factory=LesionThresholds)
    candidates: Candidates | None = None
    runtime: str = ""
