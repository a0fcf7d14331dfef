"""A picture of a phantom: axial and coronal CT slices (W400/L40) and the same slices with label contours."""

from __future__ import annotations

import os

import numpy as np

from SmoothSegNetLib.phantom.generator import Phantom

WINDOW_HU = (40.0 - 200.0, 40.0 + 200.0)
#: Label -> (name, colour) for the contours.
LABEL_STYLE = {1: ("liver", "#e0a040"), 2: ("tumor", "#ff3030"), 3: ("portal vein", "#30a0ff"), 4: ("aorta", "#ff40ff")}


def _axial_index(labels: np.ndarray) -> int:
    """The slice with the most tumor (or else liver) voxels."""
    for value in (2, 1):
        per_slice = (labels == value).sum(axis=(1, 2))
        if per_slice.any():
            return int(np.argmax(per_slice))
    return labels.shape[0] // 2


def save_preview(phantom: Phantom, path: str | os.PathLike[str], *, dpi: int = 110) -> None:
    """Write a 2x2 PNG: axial and coronal CT (top), the same with label contours (bottom).

    The slices are taken through the largest tumor (or the liver); image axes are the array axes, shown
    with patient right on the viewer's left for an axis-aligned LPS grid (radiological convention).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    ct, labels = phantom.ct.array, phantom.labels
    sx, sy, sz = phantom.ct.geometry.spacing_mm
    k = _axial_index(labels)
    tumor_rows = np.nonzero((labels[k] == 2).any(axis=1))[0]
    j = int(np.median(tumor_rows)) if len(tumor_rows) else int(np.argmax((labels == 1).sum(axis=(0, 2))))
    views = [
        (ct[k], labels[k], sy / sx, f"axial slice k={k}"),
        (ct[:, j, :][::-1], labels[:, j, :][::-1], sz / sx, f"coronal row j={j}"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(10, 9.6))
    for col, (image, lab, aspect, title) in enumerate(views):
        for row in range(2):
            ax = axes[row, col]
            ax.imshow(image, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1], aspect=aspect, interpolation="bilinear")
            ax.set_axis_off()
            if row == 1:
                for value, (_, colour) in LABEL_STYLE.items():
                    if (lab == value).any():
                        ax.contour(lab == value, levels=[0.5], colors=[colour], linewidths=0.9)
            else:
                ax.set_title(title, fontsize=10)
    handles = [Line2D([0], [0], color=c, lw=2, label=n) for n, c in LABEL_STYLE.values()]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False)
    info = phantom.info
    fig.suptitle(
        f"SmoothSegNet phantom, seed {info['seed']}: {info['phase'].replace('_', ' ')} phase, "
        f"{len(phantom.lesions)} lesion(s), W400/L40",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    fig.savefig(os.fspath(path), dpi=dpi)
    plt.close(fig)
