"""Train the click network of ``add-lesion`` (:mod:`SmoothSegNetLib.correction.click_net`) on phantom clicks.

Each training seed's patient is drawn once (with ``small_lesions`` more lesions of 5-20 mm); every lesion of at
most ``MAX_DIAMETER_MM`` gets a click near its centre (moved by a normal draw of 0.12 times its smallest radius,
kept inside it), and ``normals`` points of plain liver at least 6 mm beyond every lesion get one with an empty
answer. Each click is rendered on its own acquisition grid, as a CT would store it (pixels 0.7-1.9 mm, slices
2, 2.5, 3 or 5 mm, a random sub-voxel phase; the phantom's blur and noise on that grid), then resampled onto the
network's cube exactly as ``add-lesion`` does; the true lesion is drawn on the cube itself. Only a small box
around the click is rendered (about 0.4 s a seed), so thousands of clicks cost minutes.

Training: batches of 8 cubes, flipped along each axis and with i and j swapped at random; binary cross-entropy
plus ``--dice-weight`` (1) times a Dice loss over the batch; AdamW, the learning rate on a cosine over the time
budget. The result is written (each file atomically) as ``click-net.safetensors``, its ONNX graph
``click-net.onnx`` and ``click-net.json`` with both sha256.

Run: ``python -m SmoothSegNetLib.training.click_net --seeds 6000:7000 --minutes 25 --out DIR``. The seeds must
not overlap the tuning (2000-2063) or held-out (3000-3119) phantoms.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from SmoothSegNetLib.correction import click_net
from SmoothSegNetLib.errors import InputError
from SmoothSegNetLib.phantom.seeds import seed_range
from SmoothSegNetLib.volume import Geometry

log = logging.getLogger(__name__)

#: Lesions wider than this (mm) get no click (they are found by the tumor network).
MAX_DIAMETER_MM = 36.0
#: Half the side (mm) of the box rendered around a click (the cube is 24 mm from its centre to a face).
RENDER_HALF_MM = 34.0
SLICE_MM = (2.0, 2.5, 3.0, 5.0)
PIXEL_MM = (0.7, 1.9)
#: Seeds the evaluation keeps for itself.
RESERVED_SEEDS = (range(2000, 2064), range(3000, 3120))


@dataclass(frozen=True)
class ClickSample:
    """One click: the network's input ``[3, k, j, i]``, the true lesion on the cube, and what it was."""

    image: np.ndarray
    truth: np.ndarray
    seed: int
    lesion: int  # 0: plain liver
    kind: str


def acquisition_grid(centre_lps_mm: np.ndarray, rng: np.random.Generator) -> Geometry:
    """A box of ``RENDER_HALF_MM`` around the centre on a CT-like grid (LPS axes, random pixel and slice)."""
    pixel = float(rng.uniform(*PIXEL_MM))
    spacing = np.array([pixel, pixel, float(rng.choice(SLICE_MM))])  # i, j, k
    size_ijk = np.ceil(2.0 * RENDER_HALF_MM / spacing).astype(int) + 1
    origin = np.asarray(centre_lps_mm, float) - (size_ijk - 1) / 2.0 * spacing + rng.uniform(-0.5, 0.5, 3) * spacing
    return Geometry.create(tuple(int(n) for n in size_ijk[::-1]), tuple(spacing), origin, np.eye(3))


def seed_samples(seed: int, rng: np.random.Generator, normals: int = 2, small_lesions: int = 3) -> list[ClickSample]:
    """The clicks of one training seed (see the module docstring)."""
    from SmoothSegNetLib.phantom.appearance import blur_and_noise, render_hu
    from SmoothSegNetLib.phantom.generator import _draw_patient
    from SmoothSegNetLib.phantom.lesions import cyst_ops, lesion_ops
    from SmoothSegNetLib.phantom.raster import GridCoords, PointPainter, paint_grid
    from SmoothSegNetLib.phantom.tissues import LESION_TISSUE_BASE, T

    patient = _draw_patient(seed, None, False, small_lesions)
    ops = [*patient.anatomy.ops, *patient.vessels, *cyst_ops(patient.cysts), *lesion_ops(patient.lesions)]
    painter = PointPainter(ops)
    clicks: list[tuple[int, np.ndarray]] = []
    for n, spec in enumerate(patient.lesions):
        if max(spec.diameters_mm) > MAX_DIAMETER_MM:
            continue
        centre = np.asarray(spec.ellipsoid.center, float)
        point = centre + rng.normal(0.0, 0.12 * min(spec.diameters_mm) / 2.0, 3)
        if painter(point[None])[0] != LESION_TISSUE_BASE + n:
            point = centre
        clicks.append((n + 1, point))
    low, high = (np.asarray(b, float) for b in patient.anatomy.liver.bbox)
    found = 0
    for _ in range(200):
        if found >= normals:
            break
        point = rng.uniform(low, high)
        if painter(point[None])[0] != T.LIVER:
            continue
        if all(
            np.linalg.norm(point - np.asarray(s.ellipsoid.center)) > max(s.diameters_mm) / 2.0 + 6.0
            for s in patient.lesions
        ):
            clicks.append((0, point))
            found += 1
    samples = []
    for lesion, point in clicks:
        centre_lps = point + patient.offset
        grid = acquisition_grid(centre_lps, rng)
        coords = GridCoords(grid, patient.offset)
        tissues = paint_grid(ops, coords)
        clean = render_hu(tissues, coords, patient.look, patient.lesions)
        hu = blur_and_noise(clean, grid.spacing_mm, patient.look, rng)
        liver = (tissues == T.LIVER) | (tissues >= LESION_TISSUE_BASE)
        click_lps = (float(centre_lps[0]), float(centre_lps[1]), float(centre_lps[2]))
        image, cube = click_net.cube_input(hu, liver, grid, click_lps)
        cube_tissues = paint_grid(ops, GridCoords(cube, patient.offset))
        truth = cube_tissues == LESION_TISSUE_BASE + lesion - 1 if lesion else np.zeros(cube.shape_kji, bool)
        kind = patient.lesions[lesion - 1].kind.value if lesion else "liver"
        samples.append(ClickSample(image.astype(np.float16), truth, seed, lesion, kind))
    return samples


def make_samples(seeds: Sequence[int], normals: int = 2, small_lesions: int = 3) -> list[ClickSample]:
    """The clicks of ``seeds`` in order (one random stream for all, started from the first seed)."""
    rng = np.random.default_rng(int(seeds[0]) if len(seeds) else 0)
    samples: list[ClickSample] = []
    for n, seed in enumerate(seeds):
        samples.extend(seed_samples(int(seed), rng, normals, small_lesions))
        if n % 50 == 0:
            log.info("seed %d: %d clicks", seed, len(samples))
    return samples


def _augment(image: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random flips of each axis and a swap of i and j; the same for image (``[c, k, j, i]``) and truth."""
    for axis in (0, 1, 2):
        if rng.random() < 0.5:
            image, truth = np.flip(image, axis + 1), np.flip(truth, axis)
    if rng.random() < 0.5:
        image, truth = image.transpose(0, 1, 3, 2), truth.transpose(0, 2, 1)
    return image, truth


def train(
    samples: Sequence[ClickSample],
    minutes: float,
    batch: int = 8,
    learning_rate: float = 2e-3,
    seed: int = 0,
    dice_weight: float = 1.0,
) -> tuple[Any, dict[str, Any]]:
    """Train a new click network on ``samples`` for ``minutes`` (loss: binary cross-entropy plus ``dice_weight``
    times a Dice loss over the batch); the network and a summary."""
    import torch

    if not samples:
        raise InputError("no clicks to train on: the seeds gave no lesion of at most 36 mm and no liver point")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = click_net.build_network()
    optimiser = torch.optim.AdamW(network.parameters(), lr=learning_rate, weight_decay=1e-4)
    budget = minutes * 60.0
    start = time.perf_counter()
    iterations, recent = 0, []
    network.train()
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= budget and iterations > 0:
            break
        for group in optimiser.param_groups:
            group["lr"] = learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(1.0, elapsed / budget)))
        pairs = [_augment(samples[i].image, samples[i].truth, rng) for i in rng.integers(0, len(samples), batch)]
        images = torch.from_numpy(np.ascontiguousarray(np.stack([p[0] for p in pairs]), dtype=np.float32))
        target = torch.from_numpy(np.ascontiguousarray(np.stack([p[1] for p in pairs])[:, None], dtype=np.float32))
        logits = network(images)
        probability = torch.sigmoid(logits)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
        dice = 1.0 - (2.0 * (probability * target).sum() + 1.0) / (probability.sum() + target.sum() + 1.0)
        loss = bce + dice_weight * dice
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        iterations += 1
        recent.append(float(loss.detach()))
        if iterations % 100 == 0:
            log.info("iteration %d, %.0f s: loss %.4f", iterations, elapsed, float(np.mean(recent[-100:])))
    network.eval()
    summary = {
        "iterations": iterations,
        "batch": batch,
        "dice_weight": dice_weight,
        "minutes": round((time.perf_counter() - start) / 60.0, 2),
        "last_loss": round(float(np.mean(recent[-100:])), 4),
    }
    return network, summary


def export(network: Any, out: Path, threshold: float, trained_on: dict[str, Any]) -> Path:
    """Write the weights, the ONNX graph and ``click-net.json`` (each atomically) into ``out``; the json's path."""
    import torch

    from SmoothSegNetLib.models.onnx_graph import INPUT_NAME, OPSET, OUTPUT_NAME
    from SmoothSegNetLib.models.weights import save_weights, sha256_file
    from SmoothSegNetLib.outputs import atomic_path

    out.mkdir(parents=True, exist_ok=True)
    weights = out / "click-net.safetensors"
    weights_sha = save_weights(network, weights)
    graph = out / "click-net.onnx"
    example = torch.zeros((1, 3) + (click_net.CROP_VOXELS,) * 3)
    with torch.no_grad(), atomic_path(graph) as tmp:
        torch.onnx.export(
            network.eval(),
            (example,),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    description = {
        "schema": click_net.SCHEMA,
        "title": "SmoothSegNet click network: DEMO weights trained on synthetic phantoms only, not for clinical use",
        "architecture": click_net.architecture_args(),
        "input": {
            "crop_voxels": click_net.CROP_VOXELS,
            "spacing_mm": click_net.SPACING_MM,
            "hu_scale": click_net.HU_SCALE,
            "hu_clip": click_net.HU_CLIP,
            "prior_sigma_mm": click_net.PRIOR_SIGMA_MM,
        },
        "weights": {"file": weights.name, "format": "safetensors", "sha256": weights_sha},
        "onnx": {"file": graph.name, "sha256": sha256_file(graph), "opset": OPSET},
        "threshold": threshold,
        "trained_on": trained_on,
    }
    path = out / "click-net.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    return path


def _seed_range(text: str) -> range:
    seeds = seed_range(text)
    for reserved in RESERVED_SEEDS:
        if seeds.start < reserved.stop and reserved.start < seeds.stop:
            raise InputError(
                f"--seeds {text} overlaps the evaluation's phantoms {reserved.start}-{reserved.stop - 1}: "
                "train on other seeds"
            )
    return seeds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", required=True, help="half-open range A:B of training phantom seeds")
    parser.add_argument("--minutes", type=float, required=True, help="training time budget")
    parser.add_argument("--out", type=Path, required=True, help="folder for click-net.{json,safetensors,onnx}")
    parser.add_argument("--normals", type=int, default=2, help="plain-liver clicks per seed")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability threshold written to the json")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch CPU threads")
    parser.add_argument("--dice-weight", type=float, default=1.0, help="weight of the Dice loss (0: only the BCE)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        seeds = _seed_range(args.seeds)
        if not (math.isfinite(args.minutes) and args.minutes > 0):
            raise InputError(f"--minutes must be a number > 0, got {args.minutes}")
        if not 0.0 < args.threshold < 1.0:
            raise InputError(f"--threshold must be in (0, 1), got {args.threshold}")
        if not (math.isfinite(args.dice_weight) and args.dice_weight >= 0):
            raise InputError(f"--dice-weight must be a number >= 0, got {args.dice_weight}")
        if args.normals < 0:
            raise InputError(f"--normals must be >= 0, got {args.normals}")
    except InputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    samples = make_samples(seeds, args.normals)
    render_s = time.perf_counter() - t0
    network, summary = train(samples, args.minutes, dice_weight=args.dice_weight)
    lesions = sum(1 for s in samples if s.lesion)
    trained_on = {
        "phantom_seeds": f"{seeds.start}:{seeds.stop}",
        "clicks": len(samples),
        "lesion_clicks": lesions,
        "liver_clicks": len(samples) - lesions,
        "liver_clicks_per_seed": args.normals,
        "render_s": round(render_s, 1),
        **summary,
        "data": "synthetic phantoms only (SmoothSegNetLib.phantom); no real CT",
    }
    path = export(network, args.out, args.threshold, trained_on)
    sys.stdout.write(f"click network written: {path} ({json.dumps(trained_on)})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
