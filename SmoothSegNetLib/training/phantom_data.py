"""Training cases from the synthetic phantom generator, rendered directly near the stage's grid.

Each seed is one synthetic patient. Its render grid varies with the seed: spacing jittered around the
card's spacing (by up to ``data.spacing_jitter``, in-plane axes equal), a field of view jittered around
``data.phantom_size_mm`` (tumor stage: a smaller field centred like the generator's, which holds the
liver), an oblique direction for a ``data.oblique_fraction`` of seeds, and for a ``data.wall_lesion_fraction``
of seeds one more lesion whose edge meets the body-wall muscle (``make_phantom(..., wall_lesion=True)``), and
a count drawn from ``data.small_lesions`` of extra 5-20 mm lesions (``make_phantom(..., small_lesions=n)``).
The case is then prepared by :func:`~SmoothSegNetLib.training.prepare.prepare_case` — the inference
pipeline's own resampling — so the network learns from the same path it is used on.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from SmoothSegNetLib.models.card import ModelCard
from SmoothSegNetLib.progress import CancelCheck, ProgressCallback, check_cancel, no_progress
from SmoothSegNetLib.training.config import DataConfig
from SmoothSegNetLib.training.patches import PreparedCase
from SmoothSegNetLib.training.prepare import mask_dilation_for, prepare_case

log = logging.getLogger(__name__)

#: Field of view (mm) of tumor-stage renders: enough for the liver, which the generator places inside it.
TUMOR_STAGE_FOV_MM = (300.0, 300.0, 250.0)
_STAGE_STREAM = {"liver": 11, "tumor": 23}
_WALL_LESION_STREAM = 41  # not 37: mask_dilation_for draws from [seed, 37]
_SMALL_LESION_STREAM = 43


@dataclass(frozen=True)
class RenderSpec:
    """How one phantom seed is rendered for training."""

    seed: int
    size_ijk: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    oblique: bool
    wall_lesion: bool = False
    small_lesions: int = 0


def render_spec(seed: int, card: ModelCard, data: DataConfig) -> RenderSpec:
    """The seed's render grid for ``card``'s stage (deterministic in the seed)."""
    rng = np.random.default_rng([seed, _STAGE_STREAM[card.task]])
    base = card.input.spacing_mm or (1.0, 1.0, 1.0)
    jitter = data.spacing_jitter
    in_plane = base[0] * (1.0 + rng.uniform(-jitter, jitter))
    through = base[2] * (1.0 + rng.uniform(-jitter, jitter))
    spacing = (round(in_plane, 4), round(in_plane * base[1] / base[0], 4), round(through, 4))
    fov = np.asarray(data.phantom_size_mm if card.task == "liver" else TUMOR_STAGE_FOV_MM, dtype=float)
    fov = fov * rng.uniform(0.85, 1.1, 3)
    size = tuple(int(max(16, math.ceil(f / s))) for f, s in zip(fov, spacing))
    oblique = bool(rng.random() < data.oblique_fraction)
    # A stream of its own, so that a config without wall lesions renders every seed as before.
    wall = data.wall_lesion_fraction > 0 and bool(
        np.random.default_rng([seed, _WALL_LESION_STREAM]).random() < data.wall_lesion_fraction
    )
    low, high = data.small_lesions
    small = int(np.random.default_rng([seed, _SMALL_LESION_STREAM]).integers(low, high + 1)) if high > 0 else 0
    return RenderSpec(seed, (size[0], size[1], size[2]), spacing, oblique, wall, small)


def render_phantom(spec: RenderSpec) -> Any:
    """The phantom of ``spec`` (a :class:`SmoothSegNetLib.phantom.Phantom`)."""
    from SmoothSegNetLib.phantom import make_phantom

    return make_phantom(
        spec.seed,
        spec.size_ijk,
        spec.spacing_mm,
        spec.oblique,
        wall_lesion=spec.wall_lesion,
        small_lesions=spec.small_lesions,
    )


def _one_case(seed: int, card: ModelCard, data: DataConfig, target: float) -> tuple[PreparedCase, dict[str, Any], str]:
    """Render and prepare one phantom (a module-level function: it also runs in worker processes)."""
    spec = render_spec(seed, card, data)
    phantom = render_phantom(spec)
    case = prepare_case(
        phantom.ct,
        phantom.labels,
        card,
        f"phantom-{seed}",
        tlvr_target=target,
        portal_vein_as_liver=data.portal_vein_as_liver,
        mask_dilation_mm=mask_dilation_for(seed, data.liver_mask_dilation_mm),
    )
    record = {"seed": seed, "variables": phantom.clinical["variables"], "tlvr": case.tlvr_true}
    return case, record, f"phantom {seed}: {spec.size_ijk} at {spec.spacing_mm} mm"


def phantom_cases(
    seeds: Sequence[int],
    card: ModelCard,
    data: DataConfig,
    *,
    tlvr_targets: dict[int, float] | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelCheck | None = None,
    workers: int = 1,
) -> tuple[list[PreparedCase], list[dict[str, Any]]]:
    """Prepared cases of ``seeds`` and their clinical records (variables + the true TLVR).

    Args:
        tlvr_targets: seed -> clinical TLVR target (e.g. out-of-fold predictions); NaN when absent.
        workers: processes that render and prepare the phantoms (each case depends on its seed alone, so the cases
            are the same, in the same order, whatever the number; the 64 phantoms of a 1.4 mm tumor run take
            minutes in one process).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    jobs = [
        (seed, card, data, math.nan if tlvr_targets is None else float(tlvr_targets.get(seed, math.nan)))
        for seed in seeds
    ]
    cases, records = [], []
    with contextlib.ExitStack() as stack:
        if workers == 1 or len(jobs) < 2:
            results: Iterator[tuple[PreparedCase, dict[str, Any], str]] = (_one_case(*job) for job in jobs)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            processes = min(workers, len(jobs))
            log.info("rendering %d phantoms in %d processes", len(jobs), processes)
            # spawn: a forked copy of a process that holds torch's threads can hang.
            pool = stack.enter_context(
                ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"))
            )
            # Runs before the pool's own exit: on a cancel or an error, the phantoms not started are dropped.
            stack.callback(pool.shutdown, wait=False, cancel_futures=True)
            futures = [pool.submit(_one_case, *job) for job in jobs]
            results = (future.result() for future in futures)
        for n in range(len(jobs)):
            check_cancel(cancel)
            case, record, text = next(results)
            cases.append(case)
            records.append(record)
            progress("data", (n + 1) / len(jobs), text)
    return cases, records
