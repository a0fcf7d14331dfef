""" "Add lesion at point" on a REAL MRML scene (slicer-core): SmoothSegNetSlicerLib.add_at_point with the engine's
real PointSegmenter (the bundled demo tumor card, one CPU thread). Only the poll timer is a stand-in (Qt), fired
by :meth:`PointAdder.wait` as the timer would.

The CT: liver at 100 HU on 0.8 x 0.8 x 3.0 mm voxels (slices four times thicker than the pixels), blurred 1 mm,
10 HU noise. Two spheres of 7.5 mm radius, 25 HU darker: lesion 1 is in the segmentation, the other was missed
(the case a click is for). The grid is tried as stored and mirrored in-plane, so a click's RAS -> LPS -> voxel
path must be right on both.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _add_lesion_helpers import demo_models
from _mrml_helpers import add_volume
from scipy import ndimage

from SmoothSegNetLib import mrml
from SmoothSegNetLib.evaluation.add_lesion_eval import dice
from SmoothSegNetLib.io.writers import write_labelmap
from SmoothSegNetLib.report import measure
from SmoothSegNetLib.volume import CTVolume, Geometry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SmoothSegNet"))
from SmoothSegNetSlicerLib.add_at_point import PointAdder, tumorSegmenterFactory

SHAPE_KJI = (40, 120, 120)
SPACING_IJK = (0.8, 0.8, 3.0)
KNOWN_KJI, MISSED_KJI = (20, 60, 30), (20, 60, 85)
GEOMETRIES = {
    "as stored": Geometry.create(SHAPE_KJI, SPACING_IJK, (-48.0, -48.0, -60.0)),
    "mirrored in-plane": Geometry.create(
        SHAPE_KJI, SPACING_IJK, (48.0, 48.0, -60.0), [[-1, 0, 0], [0, -1, 0], [0, 0, 1]]
    ),
}


class ManualTimer:
    """Poll timer stand-in (Qt's QTimer): never fires by itself."""

    def __init__(self, _ms: int, slot: Callable[[], None]) -> None:
        self.slot, self.active = slot, False

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False


class HeldExecutor(Executor):
    """Runs the submitted search only when the test says (``run``): a search that is still running."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.jobs.append((future, fn, args))
        return future

    def run(self) -> None:
        for future, fn, args in self.jobs:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)
        self.jobs = []


def _distance_mm(centre_kji: tuple[int, int, int]) -> np.ndarray:
    k, j, i = np.ogrid[: SHAPE_KJI[0], : SHAPE_KJI[1], : SHAPE_KJI[2]]
    sk, sj, si = SPACING_IJK[2], SPACING_IJK[1], SPACING_IJK[0]
    return np.asarray(
        np.sqrt(((k - centre_kji[0]) * sk) ** 2 + ((j - centre_kji[1]) * sj) ** 2 + ((i - centre_kji[2]) * si) ** 2)
    )


@pytest.fixture(scope="module")
def segmenter_factory() -> Callable[[], Any]:
    made = tumorSegmenterFactory({"models": demo_models()}, threads=1)()  # the card loaded once for all tests
    return lambda: made


def write_case(folder: Path, geometry: Geometry) -> dict[str, np.ndarray]:
    """The CT of the module docstring and a ``segment``-like folder (segmentation, lesions, report naming the demo
    tumor model) of its segmentation that missed the second lesion: ``ct``, ``known`` and ``missed`` masks."""
    known, missed = _distance_mm(KNOWN_KJI) <= 7.5, _distance_mm(MISSED_KJI) <= 7.5
    hu = np.where(known | missed, 75.0, 100.0)
    hu = ndimage.gaussian_filter(hu, [1.0 / SPACING_IJK[2], 1.0 / SPACING_IJK[1], 1.0 / SPACING_IJK[0]])
    hu += np.random.default_rng(0).normal(0.0, 10.0, SHAPE_KJI)
    labelmap = np.zeros(SHAPE_KJI, np.uint8)
    labelmap[2:-2, 4:-4, 4:-4] = 1
    hu[labelmap == 0] = -100.0
    ct = np.rint(hu).astype(np.int16)
    labelmap[known] = 2
    lesions = known.astype(np.uint16)
    folder.mkdir(parents=True)
    write_labelmap(folder / "segmentation.nrrd", labelmap, geometry)
    write_labelmap(folder / "lesions.nrrd", lesions, geometry)
    report = measure(CTVolume(ct, geometry), labelmap, lesions, confidence={1: 0.9}, models=demo_models())
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return {"ct": ct, "known": known, "missed": missed}


@pytest.fixture(params=list(GEOMETRIES))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    geometry = GEOMETRIES[request.param]
    folder = tmp_path / "out"
    arrays = write_case(folder, geometry)
    known, missed = arrays["known"], arrays["missed"]
    headless = mrml.create_headless_scene()
    volume = add_volume(headless.scene, arrays["ct"], geometry)
    node = mrml.import_result(headless.scene, folder, volume)
    return {"geometry": geometry, "volume": volume, "node": node, "known": known, "missed": missed,
            "headless": headless}  # fmt: skip


def _ras(geometry: Geometry, kji: tuple[int, int, int]) -> list[float]:
    lps = geometry.index_to_lps(np.asarray(kji, dtype=float)[::-1])
    return [-float(lps[0]), -float(lps[1]), float(lps[2])]


def _adder(case: dict[str, Any], factory: Callable[[], Any], **kwargs: Any) -> tuple[PointAdder, list[Any]]:
    done: list[Any] = []
    adder = PointAdder(
        case["volume"], case["node"], factory, lambda *a: done.append(a), timerFactory=ManualTimer, **kwargs
    )
    return adder, done


def test_a_click_adds_the_missed_lesion_as_the_next_segment(case: dict[str, Any], segmenter_factory: Any) -> None:
    before = mrml.labelmap_from_segmentation(case["node"], case["volume"])
    adder, done = _adder(case, segmenter_factory)
    assert adder.addAtRas(_ras(case["geometry"], MISSED_KJI))
    adder.wait(60)
    adder.stop()
    segment_id, message = done[-1]
    assert segment_id is not None and message.startswith("Lesion added (") and "region growing" in message
    after = mrml.labelmap_from_segmentation(case["node"], case["volume"])
    added = (after.lesions > 0) & (before.lesions == 0)
    assert dice(added, case["missed"]) >= 0.9
    # Lesion 1 and the liver elsewhere are as they were; the new voxels were liver.
    assert np.array_equal(after.lesions[case["known"]], before.lesions[case["known"]])
    assert np.all(before.labelmap[added] == 1) and np.array_equal(after.labelmap[~added], before.labelmap[~added])
    assert case["node"].GetSegmentation().GetSegment(segment_id) is not None


@pytest.mark.parametrize(
    ("where", "reason"),
    [((20, 60, 2), "outside the liver"), ((20, 25, 60), "nothing lesion-like"), (KNOWN_KJI, "already in lesion 1")],
)
def test_a_refused_click_says_why_and_changes_nothing(
    case: dict[str, Any], segmenter_factory: Any, where: tuple[int, int, int], reason: str
) -> None:
    before = mrml.labelmap_from_segmentation(case["node"], case["volume"])
    count = case["node"].GetSegmentation().GetNumberOfSegments()
    adder, done = _adder(case, segmenter_factory)
    adder.addAtRas(_ras(case["geometry"], where))
    adder.wait(60)
    adder.stop()
    assert done[-1][0] is None and reason in done[-1][1]
    after = mrml.labelmap_from_segmentation(case["node"], case["volume"])
    assert np.array_equal(after.labelmap, before.labelmap) and np.array_equal(after.lesions, before.lesions)
    assert case["node"].GetSegmentation().GetNumberOfSegments() == count


def test_a_result_for_segments_edited_meanwhile_is_dropped(case: dict[str, Any], segmenter_factory: Any) -> None:
    edits = [0]
    executor = HeldExecutor()
    adder, done = _adder(case, segmenter_factory, editCount=lambda: edits[0], executor=executor)
    count = case["node"].GetSegmentation().GetNumberOfSegments()
    adder.addAtRas(_ras(case["geometry"], MISSED_KJI))
    assert adder.busy and adder._pollTimer.active  # the search runs: the GUI thread polls
    assert not adder.addAtRas(_ras(case["geometry"], MISSED_KJI)) and "Still adding" in done[-1][1]
    edits[0] += 1  # the user paints while the lesion is searched
    executor.run()
    adder.wait(60)
    assert done[-1] == (None, "The segments were edited while the lesion was searched: nothing added, click again")
    assert case["node"].GetSegmentation().GetNumberOfSegments() == count and not adder.busy
