"""Is this image a CT of a body? Checked before segmentation (``segment``, ``demo``), after reading.

Reading (:mod:`SmoothSegNetLib.validation`) refuses what cannot be a CT at all (NaN, 8-bit pictures, raw values
without the rescale intercept, values beyond +-100,000). This module refuses what is a valid image but not a CT
of a body, on which the networks would return a plausible-looking but meaningless result: pure noise, a
byte-swapped or wrongly scaled image, a tiny field of view, coarse voxels, nothing but air. Each rule and its
threshold is explained in ``docs/input-checks.md``; real CTs (the bundled sample, phantoms at 0.7-8 mm, CT
numbers of scanners with padding values of -2048/-3024/-32768) pass with a wide margin. Unusual but real data
can skip the check (``--skip-plausibility-check``); the report's warnings then say so.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from SmoothSegNetLib.errors import VolumeValidationError
from SmoothSegNetLib.volume import CTVolume, Geometry

#: Largest in-plane voxel size (mm): 10 mm pixels cannot show a liver lesion (slices may be up to 20 mm:
#: :data:`SmoothSegNetLib.validation.MAX_SPACING_MM`).
MAX_IN_PLANE_SPACING_MM = 10.0

#: Smallest field of view (mm) along both axial axes (left-right and anterior-posterior): an adult abdomen is
#: 200-400 mm wide and a liver about 150 mm; 100 mm is a quarter of a usual 400 mm reconstruction.
MIN_FIELD_OF_VIEW_MM = 100.0

#: Highest plausible value (HU): extended-range CT reaches about 31,000 HU in metal.
MAX_PLAUSIBLE_HU = 40_000.0

#: Values below this (HU) are padding or outside the reconstruction circle (scanners write -2048, -3024 or
#: -32768 there) and are left out of the intensity rules below.
PADDING_BELOW_HU = -1100.0

#: At least this share of the voxels must be image, not padding (outside a round reconstruction the corners of
#: a square slice are 21.5 %).
MIN_IMAGE_FRACTION = 0.2

#: HU ranges of air (outside the body, lungs, bowel gas) and of fat, water and soft tissue.
AIR_BAND_HU = (-1100.0, -800.0)
TISSUE_BAND_HU = (-200.0, 200.0)

#: A CT's histogram has two peaks, air and soft tissue: at least this share of the image voxels lies in them
#: (the sample CT: 0.96, phantoms 0.94-0.99; uniform noise over -1000..1500 HU: 0.24; over int16: 0.02;
#: byte-swapped int16 CT: < 0.05).
MIN_PEAK_FRACTION = 0.4

#: A body is present: at least this volume (ml) of fat/soft tissue (an adult liver alone is about 1,500 ml).
MIN_BODY_ML = 50.0

#: The intensity rules look at a regular subsample of at most this many voxels (fractions, not extremes).
SAMPLE_VOXELS = 4_000_000

#: The warning carried into the report when the check was skipped.
SKIPPED_WARNING = (
    "the plausibility check of the CT (field of view, voxel size, intensities, body present) was skipped on "
    "request (--skip-plausibility-check): the result is only as meaningful as the input"
)

_HINT = "if it is a real CT of a body (unusual but correct), run again with --skip-plausibility-check"


def in_plane_axes(geometry: Geometry) -> tuple[int, int]:
    """The two grid axes (0 = i, 1 = j, 2 = k) closest to the patient's axial plane."""
    slice_axis = int(np.argmax(np.abs(geometry.direction_array[2, :])))
    first, second = (axis for axis in range(3) if axis != slice_axis)
    return first, second


def field_of_view_mm(geometry: Geometry) -> tuple[float, float]:
    """Extent (mm) of the image box along the patient's left-right and anterior-posterior axes."""
    edges = geometry.direction_array * (np.asarray(geometry.spacing_mm) * np.asarray(geometry.size_ijk))
    extent = np.abs(edges).sum(axis=1)  # per LPS axis: the box's extent
    return float(extent[0]), float(extent[1])


def findings(ct: CTVolume) -> list[str]:
    """Every rule ``ct`` breaks, as message fragments (empty when it looks like a CT of a body)."""
    g = ct.geometry
    found: list[str] = []
    coarse = [(("ijk"[a]), g.spacing_mm[a]) for a in in_plane_axes(g) if g.spacing_mm[a] > MAX_IN_PLANE_SPACING_MM]
    if coarse:
        axis, value = coarse[0]
        found.append(
            f"in-plane voxel size along {axis} is {value:g} mm, above {MAX_IN_PLANE_SPACING_MM:g} mm (too coarse "
            "to show the liver)"
        )
    lr, ap = field_of_view_mm(g)
    if min(lr, ap) < MIN_FIELD_OF_VIEW_MM:
        found.append(
            f"the field of view is {lr:.0f} x {ap:.0f} mm (left-right x anterior-posterior), below "
            f"{MIN_FIELD_OF_VIEW_MM:g} mm: too small for an abdomen"
        )
    found += _intensity_findings(ct)
    return found


def _intensity_findings(ct: CTVolume) -> list[str]:
    array = ct.array
    high = float(array.max())
    if high > MAX_PLAUSIBLE_HU:
        return [f"the highest value is {high:g} HU, above any CT ({MAX_PLAUSIBLE_HU:g}): wrong rescale slope?"]
    step = max(1, int(np.ceil((array.size / SAMPLE_VOXELS) ** (1 / 3))))
    sample = array[::step, ::step, ::step]
    image = np.count_nonzero(sample >= PADDING_BELOW_HU)
    image_fraction = image / sample.size
    if image_fraction < MIN_IMAGE_FRACTION:
        return [
            f"{1 - image_fraction:.0%} of the voxels are below {PADDING_BELOW_HU:g} HU (padding): no image to "
            "segment, or not in HU"
        ]
    air = np.count_nonzero((sample >= AIR_BAND_HU[0]) & (sample <= AIR_BAND_HU[1]))
    tissue = np.count_nonzero((sample >= TISSUE_BAND_HU[0]) & (sample <= TISSUE_BAND_HU[1]))
    found = []
    peaks = (air + tissue) / image
    if peaks < MIN_PEAK_FRACTION:
        found.append(
            f"only {peaks:.0%} of the voxels are air ({AIR_BAND_HU[0]:g}..{AIR_BAND_HU[1]:g} HU) or fat/soft tissue "
            f"({TISSUE_BAND_HU[0]:g}..{TISSUE_BAND_HU[1]:g} HU), where a CT has most (at least "
            f"{MIN_PEAK_FRACTION:.0%} required): noise, byte-swapped data (wrong endian in the header) or a "
            "scaled image?"
        )
    body_ml = tissue / sample.size * array.size * ct.geometry.voxel_volume_mm3 / 1000.0
    if body_ml < MIN_BODY_ML:
        found.append(
            f"only {body_ml:.1f} ml of fat/soft tissue ({TISSUE_BAND_HU[0]:g}..{TISSUE_BAND_HU[1]:g} HU), below "
            f"{MIN_BODY_ML:g} ml: no body in the image"
        )
    return found


def check_plausible(ct: CTVolume) -> None:
    """Refuse an image that does not look like a CT of a body (see :func:`findings`).

    Raises:
        VolumeValidationError: naming every rule broken and how to override the check.
    """
    found = findings(ct)
    if found:
        raise VolumeValidationError(
            f"{ct.source or 'the CT'} does not look like a CT of a body: {'; '.join(found)}; {_HINT}"
        )


def check_or_mark_skipped(ct: CTVolume, *, skip: bool) -> CTVolume:
    """:func:`check_plausible`, or with ``skip`` the CT with :data:`SKIPPED_WARNING` added to its warnings."""
    if skip:
        return replace(ct, warnings=(*ct.warnings, SKIPPED_WARNING))
    check_plausible(ct)
    return ct
