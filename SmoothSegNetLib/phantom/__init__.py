"""Synthetic contrast-enhanced abdominal CT phantoms with exact labels and a clinical record.

``make_phantom(seed, size_ijk, spacing_mm, oblique)`` draws a patient in millimetres (body, fat, muscle,
spine, ribs, liver with portal and hepatic veins, spleen, kidneys, stomach, bowel, aorta, IVC, lungs) and
0..8 liver lesions, then samples it at each voxel centre of any grid. Labels follow HCC-TACE-Seg:
0 other, 1 liver, 2 tumor, 3 portal vein, 4 aorta.
"""

from __future__ import annotations

from SmoothSegNetLib.phantom.clinical import encode_variables, load_variables
from SmoothSegNetLib.phantom.generator import Lesion, Phantom, make_phantom, phantom_geometry
from SmoothSegNetLib.phantom.tissues import LesionKind, Phase

__all__ = [
    "Lesion",
    "LesionKind",
    "Phantom",
    "Phase",
    "encode_variables",
    "load_variables",
    "make_phantom",
    "phantom_geometry",
]
