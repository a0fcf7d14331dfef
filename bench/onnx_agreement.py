"""Same masks from ``--runtime onnx`` and ``--runtime torch``: held-out phantoms and a 512x512x120 phantom.

Run by hand (tens of minutes on 2 cores)::

    .venv/bin/python bench/onnx_agreement.py                  # seeds 3000..3019 + 512x512x120, both runtimes
    .venv/bin/python bench/onnx_agreement.py --seeds 3000:3002 --no-large

Each phantom is segmented with the demo cards by the torch runtime (PyTorch, f32, CPU) and by the onnx
runtime (each ONNX engine asked for); the table gives, per case, liver Dice (labels 1 + 2), tumor Dice
(label 2) between the two results and the lesion counts. Targets: liver >= 0.995, tumor >= 0.98, equal counts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _dice(a: Any, b: Any) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 1.0


def _cases(seeds: range, large: bool) -> list[tuple[str, Any]]:

    cases: list[tuple[str, Any]] = [(f"phantom-{s}", ("heldout", s)) for s in seeds]
    if large:
        cases.append(("phantom-7 512x512x120", ("large", 7)))
    return cases


def _make(spec: tuple[str, int]) -> Any:
    from SmoothSegNetLib.evaluation.phantoms import heldout_grid
    from SmoothSegNetLib.phantom import make_phantom

    kind, seed = spec
    if kind == "large":
        return make_phantom(seed, (512, 512, 120), (0.75, 0.75, 2.5)).ct
    size, spacing, oblique = heldout_grid(seed)
    return make_phantom(seed, size, spacing, oblique).ct


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="3000:3020", help="half-open range A:B of held-out phantom seeds")
    parser.add_argument("--no-large", action="store_true", help="skip the 512x512x120 phantom")
    parser.add_argument("--engines", nargs="+", default=["openvino", "onnxruntime"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args()
    from SmoothSegNetLib.inference import SegmentOptions
    from SmoothSegNetLib.inference.pipeline import Segmenter

    first, last = (int(v) for v in args.seeds.split(":"))
    runners = {rt: Segmenter(SegmentOptions(device="cpu", runtime=rt, threads=args.threads))
               for rt in ["torch", *args.engines]}  # fmt: skip
    rows = []
    for name, spec in _cases(range(first, last), not args.no_large):
        ct = _make(spec)
        results = {}
        seconds = {}
        for runtime, segmenter in runners.items():
            t0 = time.perf_counter()
            results[runtime] = segmenter(ct)
            seconds[runtime] = round(time.perf_counter() - t0, 1)
        ref = results["torch"]
        for engine in args.engines:
            other = results[engine]
            row = {
                "case": name,
                "engine": engine,
                "liver_dice": round(_dice(ref.labelmap >= 1, other.labelmap >= 1), 5),
                "tumor_dice": round(_dice(ref.labelmap == 2, other.labelmap == 2), 5),
                "lesions_torch": len(ref.confidence),
                "lesions_onnx": len(other.confidence),
                "torch_s": seconds["torch"],
                "onnx_s": seconds[engine],
            }
            rows.append(row)
            sys.stderr.write(json.dumps(row) + "\n")
    lines = [
        "| case | engine | liver Dice | tumor Dice | lesions torch / onnx | torch s | onnx s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['engine']} | {r['liver_dice']:.4f} | {r['tumor_dice']:.4f} "
            f"| {r['lesions_torch']} / {r['lesions_onnx']} | {r['torch_s']} | {r['onnx_s']} |"
        )
    for engine in args.engines:
        mine = [r for r in rows if r["engine"] == engine]
        ok = all(r["liver_dice"] >= 0.995 and r["tumor_dice"] >= 0.98 and r["lesions_torch"] == r["lesions_onnx"]
                 for r in mine)  # fmt: skip
        lines.append(
            f"\n{engine}: {len(mine)} cases, min liver Dice {min(r['liver_dice'] for r in mine):.4f}, "
            f"min tumor Dice {min(r['tumor_dice'] for r in mine):.4f}, "
            f"lesion counts equal in {sum(r['lesions_torch'] == r['lesions_onnx'] for r in mine)}/{len(mine)}; "
            f"targets {'met' if ok else 'NOT met'}"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
