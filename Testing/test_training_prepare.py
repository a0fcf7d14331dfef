"""Tumor-stage training cases: the image is masked outside the grown reference liver, as the pipeline does."""

from __future__ import annotations

import numpy as np
import pytest

from SmoothSegNetLib.inference.pipeline import tumor_box
from SmoothSegNetLib.inference.postprocess import liver_context
from SmoothSegNetLib.models import demo_card_template
from SmoothSegNetLib.models.card import card_from_dict
from SmoothSegNetLib.training.prepare import mask_dilation_for, prepare_case
from SmoothSegNetLib.volume import CTVolume, Geometry


def _case() -> tuple[CTVolume, np.ndarray]:
    """A 2 mm CT (the demo tumor grid) of uniform 100 HU, so masked voxels are exactly the zeros."""
    shape = (30, 32, 34)
    ct = CTVolume(np.full(shape, 100, np.int16), Geometry.create(shape, (2.0, 2.0, 2.0), (-10.0, 6.0, 40.0)))
    labels = np.zeros(shape, np.uint8)
    labels[10:20, 10:22, 8:26] = 1
    labels[13:16, 14:17, 12:15] = 2
    labels[15, 15, 20] = 3  # an enclosed portal-vein voxel: background, but inside the grown mask
    return ct, labels


@pytest.mark.parametrize("dilation", [0.0, 4.0, 6.5])
def test_unmasked_voxels_are_the_grown_reference_liver(dilation: float) -> None:
    ct, labels = _case()
    card = card_from_dict(
        {
            **demo_card_template("tumor"),
            "weights": {"file": "w.safetensors", "sha256": "0" * 64, "format": "safetensors"},
        }
    )
    case = prepare_case(ct, labels, card, "c", portal_vein_as_liver=False, mask_dilation_mm=dilation)
    liver = (labels == 1) | (labels == 2)
    box = tumor_box(liver, ct.geometry, card)
    context = liver_context(liver[box], (2.0, 2.0, 2.0), dilation)
    expected = np.transpose(context, (2, 1, 0))  # [k, j, i] -> network layout [i, j, k]
    assert case.image.shape == expected.shape
    np.testing.assert_array_equal(case.image > 0, expected)
    # Labels are the reference classes whatever the mask: the portal vein stays background.
    assert (
        int((case.label == 2).sum()) == 27 and case.label[20 - box[2].start, 15 - box[1].start, 15 - box[0].start] == 0
    )
    if dilation == 0.0:
        assert not case.image[20 - box[2].start, 15 - box[1].start, 15 - box[0].start] > 0
    else:
        # Grown masks fill cavities, so the enclosed vessel is seen.
        assert case.image[20 - box[2].start, 15 - box[1].start, 15 - box[0].start] > 0


def test_dilation_per_case_is_fixed_by_its_key_and_within_bounds() -> None:
    draws = [mask_dilation_for(seed, (2.0, 10.0)) for seed in range(1000, 1060)]
    assert draws == [mask_dilation_for(seed, (2.0, 10.0)) for seed in range(1000, 1060)]
    assert all(2.0 <= d <= 10.0 for d in draws) and len(set(draws)) == 60
    assert min(draws) < 3.0 and max(draws) > 9.0
    assert mask_dilation_for(5, (3.0, 3.0)) == 3.0 and mask_dilation_for(5, (0.0, 0.0)) == 0.0
