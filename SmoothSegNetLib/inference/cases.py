"""One case (read -> segment -> write every output, all or nothing) and cohorts (case lists, resume, sharding).

A case's output folder holds ``segmentation.nrrd``, ``lesions.nrrd``, ``candidates.nrrd`` (the tumor
components under the lesion floors, numbered as report.json ``candidates[]``), ``segmentation.seg.nrrd``,
``report.json``, ``report.csv``, ``overview.png`` (and on request ``seg.dcm``, ``sr.dcm``,
``probability_liver.nrrd``, ``probability_tumor.nrrd``). Everything is written through a
:class:`~SmoothSegNetLib.outputs.StagedOutputDir`; only after it is all in place is the completion marker
:data:`COMPLETE_MARKER` written, so a cohort run can skip complete cases after a crash.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.inference.options import SegmentationResult
from SmoothSegNetLib.outputs import COMPLETE_MARKER_NAME, StagedOutputDir, atomic_path
from SmoothSegNetLib.progress import CancelCheck, ProgressCallback, no_progress
from SmoothSegNetLib.volume import CTVolume

if TYPE_CHECKING:
    from SmoothSegNetLib.inference.pipeline import Segmenter

log = logging.getLogger(__name__)

#: Written last into a case folder; its presence means every output of the case is complete.
COMPLETE_MARKER = COMPLETE_MARKER_NAME


@dataclass(frozen=True)
class CaseOutputs:
    """Which optional outputs to write."""

    dicom_seg: bool = False
    dicom_sr: bool = False
    per_lesion_segments: bool = False
    probability_map: bool = False


@dataclass(frozen=True)
class Case:
    """One input and the folder its outputs go to."""

    input: Path
    outdir: Path


def is_complete(outdir: Path) -> bool:
    return (outdir / COMPLETE_MARKER).is_file()


def run_case(
    case: Case,
    segmenter: Segmenter,
    outputs: CaseOutputs = CaseOutputs(),
    *,
    series_uid: str | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelCheck | None = None,
    skip_plausibility_check: bool = False,
) -> SegmentationResult:
    """Read, segment and write all outputs of one case (nothing is left in ``outdir`` on failure).

    The CT must look like a CT of a body (:mod:`SmoothSegNetLib.plausibility`) unless
    ``skip_plausibility_check``, which the report's warnings then record.
    """
    from SmoothSegNetLib.io import read_volume
    from SmoothSegNetLib.plausibility import check_or_mark_skipped

    ct = check_or_mark_skipped(read_volume(case.input, series_uid=series_uid), skip=skip_plausibility_check)
    if (outputs.dicom_seg or outputs.dicom_sr) and ct.dicom is None:
        raise InputError(
            f"--dicom-seg/--dicom-sr need a DICOM series input, but {case.input} is a volume file; "
            "give the DICOM series folder or drop those options"
        )
    progress("read", 1.0, f"{case.input}: {ct.geometry.size_ijk} voxels")
    result = segmenter(ct, progress, cancel)
    protect: list[str | os.PathLike[str]] = [case.input, *(ct.dicom.paths if ct.dicom is not None else [])]
    with StagedOutputDir(case.outdir, protect=protect) as stage:
        progress("write", 0.0, str(case.outdir))
        write_result(stage, ct, result, outputs)
    _write_marker(case, result)
    progress("write", 1.0, "complete")
    return result


def write_result(stage: StagedOutputDir, ct: CTVolume, result: SegmentationResult, outputs: CaseOutputs) -> None:
    """Write the label maps, the Slicer segmentation and the report files into a staged folder."""
    from SmoothSegNetLib.case_outputs import write_case_outputs
    from SmoothSegNetLib.io.writers import write_labelmap, write_seg_nrrd, write_volume
    from SmoothSegNetLib.report import measure
    from SmoothSegNetLib.terminology import output_segments

    geometry = ct.geometry
    write_labelmap(stage.path("segmentation.nrrd"), result.labelmap, geometry)
    write_labelmap(stage.path("lesions.nrrd"), result.lesions, geometry)
    write_seg_nrrd(stage.path("segmentation.seg.nrrd"), result.labelmap, geometry, output_segments())
    if outputs.probability_map and result.probability:
        for name, array in result.probability.items():
            probability = CTVolume(array.astype(np.float32), geometry, source="")
            write_volume(stage.path(f"probability_{name}.nrrd"), probability)
    report = measure(
        ct,
        result.labelmap,
        result.lesions,
        confidence=result.confidence,
        models=result.models,
        warnings=(*ct.warnings, *result.warnings),
        thresholds=result.thresholds,
        candidates=result.candidates,
    )
    write_labelmap(stage.path("candidates.nrrd"), candidate_labelmap(result, report), geometry)
    write_case_outputs(
        stage,
        ct,
        result.labelmap,
        result.lesions,
        report,
        dicom_seg=outputs.dicom_seg,
        dicom_sr=outputs.dicom_sr,
        per_lesion_segments=outputs.per_lesion_segments,
    )


def candidate_labelmap(result: SegmentationResult, report: dict[str, Any]) -> np.ndarray:
    """uint16 ``[k, j, i]`` on the CT grid: candidate k of report.json ``candidates[]`` has value k, 0 elsewhere.

    Candidates the report does not list (beyond its limit) are left out, so the file and the report match.
    """
    shape = result.labelmap.shape
    if result.candidates is None:
        return np.zeros(shape, np.uint16)
    listed = np.zeros(int(result.candidates.instances.max(initial=0)) + 1, np.uint16)
    ids = [int(entry["id"]) for entry in report.get("candidates", [])]
    listed[ids] = ids
    return listed[result.candidates.instances]


def _write_marker(case: Case, result: SegmentationResult) -> None:
    record = {
        "input": str(case.input),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "models": [m["id"] for m in result.models],
        "lesions": len(result.confidence),
    }
    with atomic_path(case.outdir / COMPLETE_MARKER) as tmp:
        tmp.write_text(json.dumps(record) + "\n", encoding="utf-8")


# -- cohorts -----------------------------------------------------------------------------------------
def cases_from_inputs(inputs: list[str], outdir: Path) -> list[Case]:
    """One case per input; with several inputs each gets ``OUTDIR/<name>`` (names must be unique)."""
    if len(inputs) == 1:
        return [Case(Path(inputs[0]), outdir)]
    cases: list[Case] = []
    seen: dict[str, str] = {}
    for item in inputs:
        name = case_name(Path(item))
        if name in seen:
            raise InputError(
                f"inputs {seen[name]} and {item} would both write to {outdir / name}: "
                "give a --list CSV with an output column instead"
            )
        seen[name] = item
        cases.append(Case(Path(item), outdir / name))
    return cases


def case_name(path: Path) -> str:
    """Folder name for an input: the file name without its (double) extension."""
    name = path.name
    for suffix in (".seg.nrrd", ".nii.gz", ".nrrd", ".nhdr", ".nii", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def cases_from_csv(path: Path, outdir: Path | None) -> list[Case]:
    """Cases from a CSV with columns ``input`` and ``output`` (relative paths: to the CSV's folder / OUTDIR)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise InputError(f"--list {path} cannot be read: {exc.strerror}") from exc
    if not rows or "input" not in rows[0]:
        raise InputError(f"--list {path} must be a CSV with a header holding an 'input' column (and 'output')")
    base_out = outdir if outdir is not None else path.parent
    cases = []
    for n, row in enumerate(rows, start=2):
        source = (row.get("input") or "").strip()
        if not source:
            raise InputError(f"--list {path} line {n}: the input column is empty")
        target = (row.get("output") or "").strip() or case_name(Path(source))
        source_path = Path(source) if os.path.isabs(source) else path.parent / source
        target_path = Path(target) if os.path.isabs(target) else base_out / target
        cases.append(Case(source_path, target_path))
    outs = [c.outdir.resolve() for c in cases]
    if len(set(outs)) != len(outs):
        raise InputError(f"--list {path}: two rows write to the same output folder; make the output column unique")
    return cases


def shard(cases: list[Case], rank: int, world_size: int) -> list[Case]:
    """The share of rank ``rank`` of ``world_size``: every ``world_size``-th case starting at ``rank``."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise InputError(
            f"RANK must be in 0..WORLD_SIZE-1 and WORLD_SIZE >= 1, got RANK={rank} WORLD_SIZE={world_size}"
        )
    return cases[rank::world_size]


def rank_from_env() -> tuple[int, int]:
    """``(RANK, WORLD_SIZE)`` as set by torchrun (``(0, 1)`` when unset)."""
    try:
        rank = int(os.environ.get("RANK", "0"))
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as exc:
        raise InputError(f"RANK and WORLD_SIZE must be integers: {exc}") from exc
    return rank, world
