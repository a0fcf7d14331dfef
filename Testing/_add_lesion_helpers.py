"""A ``segment`` output folder that misses a lesion, made from a phantom's exact labels (no pipeline run)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.evaluation.missed_lesions import centre_point, true_lesion_mask
from SmoothSegNetLib.io.writers import write_labelmap, write_seg_nrrd, write_volume
from SmoothSegNetLib.models import Registry
from SmoothSegNetLib.phantom import Phantom, make_phantom
from SmoothSegNetLib.report import label_lesions, measure
from SmoothSegNetLib.report.files import write_report_csv, write_report_json
from SmoothSegNetLib.terminology import output_segments


def demo_models() -> list[dict[str, Any]]:
    """The report.json ``models`` entries of the bundled demo cards (as ``segment`` writes them)."""
    out = []
    for name in ("smoothsegnet-demo-liver", "smoothsegnet-demo-tumor"):
        entry = Registry().find(name)
        card = entry.card
        out.append(
            {
                "id": card.id,
                "title": card.title,
                "version": card.version,
                "task": card.task,
                "sha256": entry.expected_sha256,
                "weights": card.weights.file,
            }
        )
    return out


def missed_case(phantom: Phantom, missed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """``(labelmap, lesions, truth, centre)``: the phantom's exact liver and lesions except lesion ``missed``,
    which is labelled liver (as a segmentation that missed it); its true mask and centre (LPS mm)."""
    labels = np.where(phantom.labels <= 2, phantom.labels, 0).astype(np.uint8)
    truth = true_lesion_mask(phantom.tissues, missed)
    labels[truth] = 1
    lesions = label_lesions(labels == 2, phantom.ct.geometry)
    return labels, lesions, truth, centre_point(truth, phantom.ct.geometry)


def write_case_folder(
    folder: Path, phantom: Phantom, labels: np.ndarray, lesions: np.ndarray, manual_axes: Any = None
) -> Path:
    """Write the CT (``folder/ct.nrrd``) and the outputs of ``segment`` for ``labels`` (``folder/out``), with
    hand-drawn ``manual_axes`` in its report if given."""
    geometry = phantom.ct.geometry
    ct_path = write_volume(folder / "ct.nrrd", phantom.ct)
    out = folder / "out"
    out.mkdir(parents=True)
    write_labelmap(out / "segmentation.nrrd", labels, geometry)
    write_labelmap(out / "lesions.nrrd", lesions, geometry)
    write_seg_nrrd(out / "segmentation.seg.nrrd", labels, geometry, output_segments())
    ct = phantom.ct
    from SmoothSegNetLib.volume import CTVolume

    ct = CTVolume(phantom.ct.array, geometry, source=str(ct_path))
    report = measure(
        ct,
        labels,
        lesions,
        confidence={n: 0.9 for n in range(1, int(lesions.max()) + 1)},
        models=demo_models(),
        manual_axes=manual_axes,
    )
    write_report_json(out / "report.json", report)
    write_report_csv(out / "report.csv", report)
    (out / "overview.png").write_bytes(b"not a real picture: add-lesion must replace it")
    return out


def folder_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (hidden ones too), by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def load_report(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


def small_phantom(seed: int) -> Phantom:
    """The phantom on a small anisotropic grid (2.2 x 2.2 x 3.0 mm), fast enough for a test."""
    return make_phantom(seed, (150, 150, 90), (2.2, 2.2, 3.0))
