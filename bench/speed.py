"""Speed and memory of the full segmentation pipeline: each runtime and engine (torch, ONNX Runtime, OpenVINO)
on the default (demo) cards, and the paper's configuration, on the same CT in the same run.

Run by hand (it takes minutes; the machine may be shared, so note the load when quoting figures)::

    .venv/bin/python bench/speed.py                       # CPU, 2 threads, every configuration
    .venv/bin/python bench/speed.py --configs torch openvino onnxruntime
    .venv/bin/python bench/speed.py --device cuda --threads 16 --configs torch paper
    python3 bench/speed.py --device cuda --threads 16 --configs torch paper --in-memory   # a machine without SimpleITK

Configurations: ``torch`` (PyTorch f32), ``onnxruntime`` and ``openvino`` (the cards' ONNX graphs, f32),
``torch-bf16`` (PyTorch bfloat16 autocast), ``paper`` (torch) and ``paper-openvino``. Per-stage times
(reading, resampling onto the network grids, networks, mapping back, post-processing) are measured by timing
the pipeline's building blocks; their sum is less than the total (cropping, masking, lesion labelling).

A 512x512x120 phantom (0.75 x 0.75 x 2.5 mm, ``make_phantom``) is written to a temporary NRRD; each
configuration then runs in its own child process (so its peak RSS is its own) that reads the CT, loads the
models, and times ``Segmenter(ct)`` (resampling, both networks, mapping back, post-processing). The paper's
configuration uses the paper cards (SegResNetVAE, native resolution, PLI, 512x512x16 and 256x256x32 windows
swept over the whole volume) with RANDOM weights: only speed is measured. The default configuration uses the
bundled demo cards and weights when present (random weights otherwise, marked in the table).

GFLOP per CT are counted with ``torch.utils.flop_counter`` on every distinct network input shape seen during
the run (times how often it was seen); the floor is that count over the machine's measured peak matmul
GFLOP/s with the same threads.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIGS = ("torch", "onnxruntime", "openvino", "torch-bf16", "paper", "paper-openvino")
#: Configuration -> (runtime, bf16 autocast on CPU).
RUNTIME_OF = {
    "torch": ("torch", False),
    "onnxruntime": ("onnxruntime", False),
    "openvino": ("openvino", False),
    "torch-bf16": ("torch", True),
    "paper": ("torch", False),
    "paper-openvino": ("openvino", False),
}
#: Pipeline building blocks timed per stage: (module, attribute, stage).
STAGES = (
    ("SmoothSegNetLib.inference.pipeline", "resample_ct", "resample_s"),
    ("SmoothSegNetLib.inference.pipeline", "resample", "map_back_s"),
    ("SmoothSegNetLib.inference.pipeline", "largest_component", "post_s"),
    ("SmoothSegNetLib.inference.pipeline", "fill_holes", "post_s"),
    ("SmoothSegNetLib.inference.pipeline", "refine_tumor", "post_s"),
    ("SmoothSegNetLib.inference.pipeline", "tumor_stage_mask", "post_s"),
    ("SmoothSegNetLib.report", "label_lesions", "post_s"),
)


def _peak_matmul_gflops(device: str, threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    n = 2048 if device == "cpu" else 8192
    dtype = torch.float32 if device == "cpu" else torch.float16
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = 0.0
    for _ in range(5):
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        (a @ b).sum().item()
        if device != "cpu":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def _random_model(card_path: Path, folder: Path) -> Path:
    """A copy of a card with freshly initialised random weights (speed only), with its ONNX graph exported."""
    import torch

    from SmoothSegNetLib.models import build_network, load_card, save_weights, write_trained_card
    from SmoothSegNetLib.models.onnx_graph import export_beside_card

    card = load_card(card_path)
    torch.manual_seed(0)
    network = build_network(card)
    weights = folder / f"{card.id}-random.safetensors"
    save_weights(network, weights)
    data = dict(card.raw)
    data["weights"] = {**data["weights"], "format": "safetensors"}
    data["weights"].pop("state_dict_key", None)
    path = write_trained_card(data, weights, folder / f"{card.id}-random.json", {"data": "RANDOM weights (bench)"})
    export_beside_card(load_card(path), weights, load_card(path).weights.sha256)
    return path


def _models_for(config: str, folder: Path, cards: tuple[str, str] | None = None) -> tuple[str, str, bool]:
    """Liver and tumor card paths for a configuration, and whether their weights are random."""
    if cards is not None and not config.startswith("paper"):
        return cards[0], cards[1], False
    from SmoothSegNetLib.models import Registry, demo_card_template

    models = REPO / "Resources" / "Models"
    if config.startswith("paper"):
        return (
            str(_random_model(models / "paper-liver-segresnetvae.json", folder)),
            str(_random_model(models / "paper-tumor-segresnetvae.json", folder)),
            True,
        )
    registry = Registry()
    try:
        liver = registry.find("smoothsegnet-demo-liver")
        tumor = registry.find("smoothsegnet-demo-tumor")
        if liver.weights_present and tumor.weights_present:
            return str(liver.card.path), str(tumor.card.path), False
    except Exception:
        pass
    paths = []
    for task in ("liver", "tumor"):
        template = demo_card_template(task)
        template["weights"]["sha256"] = "0" * 64
        card_file = folder / f"demo-{task}-template.json"
        card_file.write_text(json.dumps(template))
        paths.append(str(_random_model(card_file, folder)))
    return paths[0], paths[1], True


def _count_gflop(network: Any, shapes: Counter[tuple[int, ...]], device: str) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    total = 0.0
    for shape, count in shapes.items():
        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), counter:
            network(torch.zeros(shape, device=device))
        total += counter.get_total_flops() * count
    return total / 1e9


def _time_stages(stages: dict[str, float]) -> None:
    """Wrap the pipeline's building blocks so that their time adds up per stage (and the networks' time)."""
    import importlib

    from SmoothSegNetLib.inference import runtime, runtime_torch

    def timed(function: Any, stage: str) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                stages[stage] = stages.get(stage, 0.0) + time.perf_counter() - t

        return wrapper

    for module_name, name, stage in STAGES:
        module = importlib.import_module(module_name)
        setattr(module, name, timed(getattr(module, name), stage))
    for cls in (runtime.OnnxRuntime, runtime_torch.TorchRuntime):
        cls.predict = timed(cls.predict, "networks_s")  # type: ignore[method-assign]


def child(
    config: str,
    ct_path: Path | None,
    device: str,
    threads: int,
    save: Path,
    cards: tuple[str, str] | None = None,
    phantom_args: tuple[int, tuple[int, ...], tuple[float, ...]] | None = None,
) -> dict[str, Any]:
    """Run one configuration in this process and return its measurements.

    With ``ct_path`` None the CT is the phantom of ``phantom_args`` (seed, size, spacing), made here in memory and
    not timed (``--in-memory``: for a machine without SimpleITK, which reading and writing the NRRD need); its
    read time is then reported as None.
    """
    import numpy as np

    from SmoothSegNetLib.inference import SegmentOptions
    from SmoothSegNetLib.inference.pipeline import Segmenter

    runtime, bf16 = RUNTIME_OF[config]
    stages: dict[str, float] = {}
    _time_stages(stages)
    with tempfile.TemporaryDirectory() as tmp:
        liver, tumor, random_weights = _models_for(config, Path(tmp), cards)
        read_s: float | None = None
        if ct_path is None:
            from SmoothSegNetLib.phantom import make_phantom

            assert phantom_args is not None
            seed, size, spacing = phantom_args
            ct = make_phantom(seed, size_ijk=size, spacing_mm=spacing).ct
        else:
            from SmoothSegNetLib.io import read_volume

            t = time.perf_counter()
            ct = read_volume(ct_path)
            read_s = time.perf_counter() - t
        t0 = time.perf_counter()
        options = SegmentOptions(
            liver_model=liver, tumor_model=tumor, device=device, threads=threads, cpu_bf16=bf16, runtime=runtime
        )
        segmenter = Segmenter(options)
        load_s = time.perf_counter() - t0
        shapes: dict[str, Counter[tuple[int, ...]]] = {"liver": Counter(), "tumor": Counter()}
        hooks = []
        for name, net in (("liver", segmenter.liver_net), ("tumor", segmenter.tumor_net)):
            if hasattr(net, "register_forward_pre_hook"):
                hooks.append(net.register_forward_pre_hook(lambda m, a, n=name: shapes[n].update([tuple(a[0].shape)])))
        _synchronize(device)
        t1 = time.perf_counter()
        result = segmenter(ct)
        _synchronize(device)
        wall_s = time.perf_counter() - t1
        rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        np.save(save, result.labelmap)
        for hook in hooks:
            hook.remove()
        networks = (("liver", segmenter.liver_net), ("tumor", segmenter.tumor_net))
        gflop = sum(_count_gflop(net, shapes[n], device) for n, net in networks) if hooks else None
    return {
        "config": config,
        "runtime": result.runtime,
        "device": device,
        "threads": threads,
        "random_weights": random_weights,
        "read_s": None if read_s is None else round(read_s, 2),
        "load_s": round(load_s, 2),
        "wall_s": round(wall_s, 2),
        "stages_s": {k: round(v, 2) for k, v in {**result.timings_s, **stages}.items()},
        "peak_rss_gb": round(rss_gb, 2),
        "gflop": None if gflop is None else round(gflop, 1),
        "forward_passes": {k: sum(v.values()) for k, v in shapes.items()},
        "liver_voxels": int((result.labelmap > 0).sum()),
        "lesions": len(result.confidence),
        "gpu_peak_gb": _gpu_peak(device),
    }


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _gpu_peak(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 1e9, 2)


def _dice(a: Any, b: Any) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 1.0


def _add_dice(row: dict[str, Any], labels: Any, truth: Any, fp32_path: Path) -> None:
    """Dice against the phantom's truth (liver = labels 1 and 2, tumor = 2) and, for every row but the torch f32
    one of its cards, against that row (the same cards run by PyTorch in float32)."""
    row["dice_liver"] = round(_dice(labels > 0, (truth == 1) | (truth == 2)), 4)
    row["dice_tumor"] = round(_dice(labels == 2, truth == 2), 4)
    if fp32_path.is_file():
        import numpy as np

        reference = np.load(fp32_path)
        row["agreement_vs_torch_f32"] = {
            "liver": round(_dice(labels > 0, reference > 0), 4),
            "tumor": round(_dice(labels == 2, reference == 2), 4),
        }


def _reference(rows: list[dict[str, Any]], row: dict[str, Any]) -> dict[str, Any] | None:
    """The torch f32 row of the same cards (``torch`` for the demo cards, ``paper`` for the paper's)."""
    name = "paper" if row["config"].startswith("paper") else "torch"
    return next((r for r in rows if r["config"] == name), None)


def _table(rows: list[dict[str, Any]], peak_gflops: float) -> str:
    paper = next((r for r in rows if r["config"] == "paper"), None)
    lines = [
        "| configuration | runtime | threads | weights | read (s) | load (s) | resample (s) | networks (s) "
        "| map back (s) | post (s) | time per CT (s) | end to end (s) | speed-up vs torch | speed-up vs paper "
        "| peak RSS (GB) | GFLOP per CT | floor at peak (s) | Dice liver / tumor vs truth | vs torch f32 |",
        "|" + "---|" * 19,
    ]
    for r in rows:
        ref = _reference(rows, r)
        gflop = r["gflop"] if r["gflop"] is not None else (ref or {}).get("gflop")
        end = (r["read_s"] or 0.0) + r["load_s"] + r["wall_s"]
        vs_torch = "-"
        if ref is not None:
            vs_torch = f"{((ref['read_s'] or 0.0) + ref['load_s'] + ref['wall_s']) / end:.2f}x"
        read = "in memory" if r["read_s"] is None else f"{r['read_s']:.2f}"
        vs_paper = f"{paper['wall_s'] / r['wall_s']:.1f}x" if paper else "-"
        st = r["stages_s"]
        stages = " | ".join(f"{st.get(k, 0.0):.2f}" for k in ("resample_s", "networks_s", "map_back_s", "post_s"))
        agreement = r.get("agreement_vs_torch_f32")
        vs_f32 = f"{agreement['liver']:.4f} / {agreement['tumor']:.4f}" if agreement else "-"
        flops = f"{gflop:.0f} | {gflop / peak_gflops:.2f}" if gflop else "- | -"
        weights = "random" if r["random_weights"] else "demo"
        lines.append(
            f"| {r['config']} | {r['runtime']} | {r['threads']} | {weights} | {read} | {r['load_s']:.2f} "
            f"| {stages} | {r['wall_s']:.2f} | {end:.2f} | {vs_torch} | {vs_paper} | {r['peak_rss_gb']:.2f} "
            f"| {flops} | {_dice_cell(r)} | {vs_f32} |"
        )
    return "\n".join(lines)


def _dice_cell(row: dict[str, Any]) -> str:
    if row["random_weights"]:
        return "- (random weights)"
    return f"{row['dice_liver']:.3f} / {row['dice_tumor']:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--seed", type=int, default=7, help="phantom seed")
    parser.add_argument("--size-ijk", type=int, nargs=3, default=[512, 512, 120], help="phantom size (smoke runs)")
    parser.add_argument("--spacing-mm", type=float, nargs=3, default=[0.75, 0.75, 2.5], help="phantom spacing")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument(
        "--cards", nargs=2, metavar=("LIVER", "TUMOR"), help="card files for the default rows (default: the demo cards)"
    )
    parser.add_argument(
        "--in-memory",
        action="store_true",
        help="each configuration makes the phantom in memory instead of reading it from NRRD (no read time; for a "
        "machine without SimpleITK, such as the lent GPU machine)",
    )
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--ct", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        cards = (args.cards[0], args.cards[1]) if args.cards else None
        phantom_args = (args.seed, tuple(args.size_ijk), tuple(args.spacing_mm))
        ct_path = None if args.in_memory else Path(args.ct)
        row = child(args.child, ct_path, args.device, args.threads, Path(args.save), cards, phantom_args)
        sys.stdout.write(json.dumps(row) + "\n")
        return 0
    import numpy as np

    from SmoothSegNetLib.phantom import make_phantom

    with tempfile.TemporaryDirectory() as tmp:
        phantom = make_phantom(args.seed, size_ijk=tuple(args.size_ijk), spacing_mm=tuple(args.spacing_mm))
        ct_path = Path(tmp) / "bench_ct.nrrd"
        if not args.in_memory:
            from SmoothSegNetLib.io.writers import write_volume

            write_volume(ct_path, phantom.ct)
        truth = phantom.labels
        del phantom
        rows = []
        for config in args.configs:
            save = Path(tmp) / f"{config}.npy"
            command = [sys.executable, __file__, "--child", config, "--ct", str(ct_path), "--device", args.device,
                       "--threads", str(args.threads), "--save", str(save), "--seed", str(args.seed),
                       "--size-ijk", *map(str, args.size_ijk), "--spacing-mm", *map(str, args.spacing_mm)]  # fmt: skip
            if args.in_memory:
                command.append("--in-memory")
            if args.cards:
                command += ["--cards", *args.cards]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.stderr.write(done.stderr)
                return 1
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            _add_dice(rows[-1], np.load(save), truth, Path(tmp) / "none")
        # Agreement with the torch f32 row of the same cards, whatever order the rows ran in.
        for row in rows:
            reference = Path(tmp) / ("paper.npy" if row["config"].startswith("paper") else "torch.npy")
            if row["config"] not in ("torch", "paper"):
                _add_dice(row, np.load(Path(tmp) / f"{row['config']}.npy"), truth, reference)
            sys.stderr.write(f"{config}: {rows[-1]}\n")
    peak = _peak_matmul_gflops(args.device, args.threads)
    size = "x".join(str(n) for n in args.size_ijk)
    spacing = " x ".join(f"{v:g}" for v in args.spacing_mm)
    sys.stdout.write(f"CT {size} ({spacing} mm), phantom seed {args.seed}\n")
    sys.stdout.write(f"peak matmul: {peak:.0f} GFLOP/s ({args.device}, {args.threads} threads)\n\n")
    sys.stdout.write(_table(rows, peak) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"peak_gflops": peak, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
