"""Training datasets on disk: HCC-TACE-Seg (TCIA download), the reference NRRD layout, LiTS / MSD Task03,
and a generic datalist JSON — discovered into :class:`DiskCase` records, split by patient, then prepared.

Layouts (``data.root``):

* ``hcc_tace_seg``: ``root/<patient>/.../*.dcm`` as downloaded from TCIA: per patient several CT series and
  one DICOM-SEG; the CT is the series the SEG references. The clinical spreadsheet
  (``HCC-TACE-Seg_clinical_data-V2.xlsx``) is ``data.clinical_table`` (default: looked up in ``root``).
* ``nrrd_layout`` (the reference code's): ``root/<patient>/`` with one mask file whose name contains ``seg``
  or ``Segmentation`` and one or more image NRRDs (phases) on the mask's grid; every image is a case.
* ``nifti``: LiTS (``volume-N.nii[.gz]`` + ``segmentation-N.nii[.gz]``) or MSD Task03
  (``imagesTr/liver_N.nii.gz`` + ``labelsTr/liver_N.nii.gz``); labels 1 liver, 2 tumor.
* ``datalist``: a JSON file ``{"training": [{"image": ..., "label": ..., "patient": ...}, ...]}`` (paths
  relative to the file; ``patient`` defaults to the image's name).

Splits are by patient: a patient's cases (phases) are all in training or all in validation.
"""

from __future__ import annotations

import json
import logging
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.progress import CancelCheck, ProgressCallback, check_cancel, no_progress
from SmoothSegNetLib.training.config import TrainConfig, resolve_path
from SmoothSegNetLib.training.patches import PreparedCase

log = logging.getLogger(__name__)

CLINICAL_FILE_NAME = "HCC-TACE-Seg_clinical_data-V2.xlsx"
_VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


class DatasetError(InputError):
    """A dataset folder or list does not have the expected layout (the message says what was expected)."""


@dataclass(frozen=True)
class DiskCase:
    """One training case on disk.

    Attributes:
        case_id: unique name (patient plus phase where a patient has several images).
        patient_id: splits keep a patient's cases together.
        image: CT file or DICOM folder.
        label: labelmap file, or a DICOM-SEG file when ``series_uid`` is set.
        series_uid: for DICOM: the CT series in ``image`` that ``label`` segments.
    """

    case_id: str
    patient_id: str
    image: Path
    label: Path
    series_uid: str | None = None


def _is_volume(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(_VOLUME_SUFFIXES) and not path.name.startswith(".")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in _VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _require_dir(root: Path, kind: str) -> None:
    if not root.is_dir():
        raise DatasetError(f"data.root {root} is not a folder: data.kind {kind} expects the dataset folder")


def discover_nrrd_layout(root: Path) -> list[DiskCase]:
    """Cases of the reference code's layout ``root/<patient>/{<mask with seg>, <images>}``."""
    _require_dir(root, "nrrd_layout")
    cases = []
    for patient in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f for f in patient.iterdir() if _is_volume(f))
        masks = [f for f in files if "seg" in f.name.lower()]
        images = [f for f in files if f not in masks]
        if len(masks) != 1 or not images:
            raise DatasetError(
                f"{patient}: expected one mask file (name containing 'seg' or 'Segmentation') and at least one image, "
                f"found masks {[m.name for m in masks]} and images {[i.name for i in images]}"
            )
        for n, image in enumerate(images):
            suffix = "" if len(images) == 1 else f"-{n + 1}"
            cases.append(DiskCase(f"{patient.name}{suffix}", patient.name, image, masks[0]))
    return cases


def discover_nifti(root: Path) -> list[DiskCase]:
    """LiTS (``volume-N`` / ``segmentation-N``) or MSD Task03 (``imagesTr`` / ``labelsTr``) cases."""
    _require_dir(root, "nifti")
    cases = []
    if (root / "imagesTr").is_dir() and (root / "labelsTr").is_dir():
        for image in sorted(f for f in (root / "imagesTr").iterdir() if _is_volume(f)):
            label = root / "labelsTr" / image.name
            if not label.is_file():
                raise DatasetError(f"MSD layout: {image.name} has no label {label}")
            cases.append(DiskCase(_stem(image), _stem(image), image, label))
        return cases
    for image in sorted(f for f in root.rglob("volume-*") if _is_volume(f)):
        number = _stem(image).split("-", 1)[1]
        labels = [f for f in image.parent.parent.rglob(f"segmentation-{number}.*") if _is_volume(f)]
        if len(labels) != 1:
            raise DatasetError(
                f"LiTS layout: {image.name} needs exactly one segmentation-{number}.nii[.gz], found {len(labels)}"
            )
        cases.append(DiskCase(f"lits-{number}", f"lits-{number}", image, labels[0]))
    if not cases:
        raise DatasetError(f"{root} holds neither LiTS files (volume-N.nii) nor MSD folders (imagesTr/, labelsTr/)")
    return cases


def discover_datalist(path: Path) -> list[DiskCase]:
    """Cases listed in a datalist JSON (``{"training": [{"image", "label", "patient"?}]}``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        items = data["training"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DatasetError(f"datalist {path} must be a JSON object with a 'training' list: {exc}") from exc
    cases = []
    for n, item in enumerate(items):
        if not isinstance(item, dict) or "image" not in item or "label" not in item:
            raise DatasetError(f"datalist {path}: entry {n} needs 'image' and 'label', got {item!r}")
        image, label = path.parent / item["image"], path.parent / item["label"]
        for what, file in (("image", image), ("label", label)):
            if not file.exists():
                raise DatasetError(f"datalist {path}: entry {n} {what} {file} does not exist")
        patient = str(item.get("patient", _stem(image)))
        cases.append(DiskCase(str(item.get("case", _stem(image))), patient, image, label))
    return cases


def discover_hcc_tace_seg(root: Path) -> list[DiskCase]:
    """One case per patient folder: the DICOM-SEG and the CT series it references."""
    import pydicom

    from SmoothSegNetLib.training.dicom_seg import referenced_series_uid

    _require_dir(root, "hcc_tace_seg")
    cases = []
    for patient in sorted(p for p in root.iterdir() if p.is_dir()):
        segs = []
        for file in sorted(patient.rglob("*")):
            if not file.is_file():
                continue
            try:
                header = pydicom.dcmread(str(file), stop_before_pixels=True, specific_tags=["Modality"])
            except Exception:  # not DICOM: skip (TCIA downloads hold license and metadata files)
                continue
            if header.get("Modality") == "SEG":
                segs.append(file)
        if len(segs) != 1:
            raise DatasetError(f"{patient}: expected one DICOM-SEG in the patient folder, found {len(segs)}")
        series = referenced_series_uid(segs[0])
        if series is None:
            raise DatasetError(f"{segs[0]}: the SEG does not name its CT series (ReferencedSeriesSequence)")
        cases.append(DiskCase(patient.name, patient.name, patient, segs[0], series_uid=series))
    return cases


def discover(config: TrainConfig) -> list[DiskCase]:
    """The cases of the config's dataset."""
    root = resolve_path(config, config.data.root or "")
    kind = config.data.kind
    found = {
        "hcc_tace_seg": discover_hcc_tace_seg,
        "nrrd_layout": discover_nrrd_layout,
        "nifti": discover_nifti,
        "datalist": discover_datalist,
    }[kind](root)
    if not found:
        raise DatasetError(f"data.root {root} holds no cases of the {kind} layout")
    return found


# -- splits ---------------------------------------------------------------------------------------------
def read_patient_list(path: Path) -> list[str]:
    """Patient ids of a reference ``train.txt`` / ``test.txt`` (comma- or line-separated)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"split file {path} cannot be read: {exc.strerror}") from exc
    ids = [p.strip() for p in re.split(r"[,\s]+", text) if p.strip()]
    if not ids:
        raise DatasetError(f"split file {path} lists no patients")
    return ids


def patient_folds(patients: Sequence[str], folds: int, seed: int) -> list[list[str]]:
    """Patients shuffled with ``seed`` and dealt into ``folds`` disjoint folds of near-equal size."""
    unique = sorted(set(patients))
    if len(unique) < folds:
        raise DatasetError(f"{len(unique)} patients cannot be split into {folds} folds: lower data.folds")
    order = np.random.default_rng(seed).permutation(len(unique))
    return [sorted(unique[i] for i in part) for part in np.array_split(order, folds)]


def split_cases(cases: Sequence[DiskCase], config: TrainConfig) -> tuple[list[DiskCase], list[DiskCase]]:
    """Training and validation cases by patient: the split file's complement, or fold ``data.fold``."""
    data = config.data
    if data.split_file:
        path = resolve_path(config, data.split_file)
        train_patients = set(read_patient_list(path))
        unknown = sorted(train_patients - {c.patient_id for c in cases})
        if unknown:
            log.warning("split file %s names patients not in the dataset: %s", path, ", ".join(unknown[:5]))
    else:
        held = set(patient_folds([c.patient_id for c in cases], data.folds, config.seed)[data.fold])
        train_patients = {c.patient_id for c in cases} - held
    train = [c for c in cases if c.patient_id in train_patients]
    val = [c for c in cases if c.patient_id not in train_patients]
    if not train or not val:
        raise DatasetError(f"the split leaves {len(train)} training and {len(val)} validation cases; check the split")
    return train, val


# -- loading --------------------------------------------------------------------------------------------
def load_case(case: DiskCase) -> tuple[Any, np.ndarray]:
    """The CT and its source labels on the CT grid."""
    import SimpleITK as sitk

    from SmoothSegNetLib.io import read_volume
    from SmoothSegNetLib.volume import Geometry

    ct = read_volume(case.image, series_uid=case.series_uid)
    if case.series_uid is not None:
        from SmoothSegNetLib.training.dicom_seg import read_seg_labels

        return ct, read_seg_labels(case.label, ct.geometry)
    image = sitk.ReadImage(str(case.label))
    labels = sitk.GetArrayFromImage(image)
    if not Geometry.from_sitk(image).same_grid(ct.geometry, atol=1e-2):
        raise DatasetError(f"case {case.case_id}: label {case.label} is not on the grid of its image {case.image}")
    labels = np.where(labels > 4, 4, labels).astype(np.uint8)  # the reference code: one patient had label 5
    return ct, labels


def dataset_cases(
    config: TrainConfig,
    card: Any,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelCheck | None = None,
) -> tuple[list[PreparedCase], list[dict[str, Any]], list[PreparedCase], list[dict[str, Any]], dict[str, Any]]:
    """Prepared training and validation cases, their clinical records, and the data record for the card."""
    from SmoothSegNetLib.training.clinical import read_clinical_table
    from SmoothSegNetLib.training.prepare import mask_dilation_for, prepare_case

    cases = discover(config)
    train, val = split_cases(cases, config)
    table: dict[str, dict[str, Any]] = {}
    clinical = config.data.clinical_table
    default_clinical = resolve_path(config, config.data.root or "") / CLINICAL_FILE_NAME
    if clinical:
        table = read_clinical_table(resolve_path(config, clinical))
    elif default_clinical.is_file():
        table = read_clinical_table(default_clinical)

    def prepare(group: list[DiskCase], start: float, end: float) -> tuple[list[PreparedCase], list[dict[str, Any]]]:
        out, records = [], []
        for n, case in enumerate(group):
            check_cancel(cancel)
            ct, labels = load_case(case)
            prepared = prepare_case(
                ct,
                labels,
                card,
                case.case_id,
                portal_vein_as_liver=config.data.portal_vein_as_liver,
                mask_dilation_mm=mask_dilation_for(
                    zlib.crc32(case.case_id.encode()), config.data.liver_mask_dilation_mm
                ),
            )
            out.append(prepared)
            records.append({"case": case.case_id, "variables": table.get(case.patient_id), "tlvr": prepared.tlvr_true})
            progress("data", start + (end - start) * (n + 1) / len(group), case.case_id)
        return out, records

    train_cases, train_records = prepare(train, 0.0, 0.8)
    val_cases, val_records = prepare(val, 0.8, 1.0)
    record = {
        "data": f"{config.data.kind} dataset at {config.data.root}",
        "train_patients": sorted({c.patient_id for c in train}),
        "validation_patients": sorted({c.patient_id for c in val}),
        "split": config.data.split_file or f"fold {config.data.fold} of {config.data.folds} (seed {config.seed})",
    }
    return train_cases, train_records, val_cases, val_records, record
