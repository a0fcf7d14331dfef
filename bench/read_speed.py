"""Read speed of one CT volume stored in each input format that ``read_volume`` accepts, side by side.

Run by hand (not by the tests)::

    .venv/bin/python bench/read_speed.py              # 512 x 512 x 64 phantom, best of 3 reads
    .venv/bin/python bench/read_speed.py --slices 16 --repeats 2

The same int16 volume (helper B's synthetic phantom, or a synthetic HU volume when the phantom package is
missing or ``--synthetic`` is given) is written once per format into a temporary folder, then each copy is
read with :func:`SmoothSegNetLib.io.read_volume` ``--repeats`` times (validation included, files already in
the page cache, so this measures parsing and decoding rather than the disk). Each read is checked to give
back exactly the written voxels. The table shows the best time, the voxel data rate (MB/s of the int16
array, 10**6 bytes) and the ratio to the fastest format.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SmoothSegNetLib.io import read_volume, write_ct_series
from SmoothSegNetLib.volume import CTVolume, Geometry

SPACING_MM = (0.75, 0.75, 2.5)


def make_volume(size_ijk: tuple[int, int, int], seed: int, synthetic: bool) -> tuple[CTVolume, str]:
    """The benchmark CT and a description of where it came from."""
    if not synthetic:
        try:
            from SmoothSegNetLib.phantom import make_phantom
        except ImportError:
            pass
        else:
            return make_phantom(seed, size_ijk, SPACING_MM).ct, f"phantom seed {seed}"
    return synthetic_volume(size_ijk, seed), f"synthetic HU volume seed {seed}"


def synthetic_volume(size_ijk: tuple[int, int, int], seed: int) -> CTVolume:
    """Air around an elliptic body of soft tissue (40 HU) with a brighter disc (200 HU) and noise (sd 15 HU)."""
    columns, rows, slices = size_ijk
    j, i = np.mgrid[0:rows, 0:columns]
    body = ((i - columns / 2) / (0.45 * columns)) ** 2 + ((j - rows / 2) / (0.35 * rows)) ** 2 <= 1.0
    disc = ((i - 0.6 * columns) ** 2 + (j - 0.45 * rows) ** 2) <= (0.1 * columns) ** 2
    plane = np.where(body, 40.0, -1000.0) + np.where(disc, 160.0, 0.0)
    rng = np.random.default_rng(seed)
    array = plane[None] + rng.normal(0.0, 15.0, size=(slices, rows, columns))
    geometry = Geometry.create((slices, rows, columns), SPACING_MM, (-190.0, -190.0, 0.0))
    return CTVolume(np.rint(array).astype(np.int16), geometry)


def _write_sitk(compress: bool) -> Callable[[CTVolume, Path], None]:
    def write(ct: CTVolume, path: Path) -> None:
        sitk.WriteImage(ct.to_sitk(), str(path), useCompression=compress)

    return write


def _write_dicom(syntax: str) -> Callable[[CTVolume, Path], None]:
    def write(ct: CTVolume, path: Path) -> None:
        write_ct_series(ct, path, transfer_syntax=syntax, rescale_intercept=-1024.0)

    return write


def _write_enhanced(ct: CTVolume, path: Path) -> None:
    """One Enhanced CT object (highdicom's legacy conversion of a classic series) alone in folder ``path``."""
    import highdicom as hd
    import pydicom

    classic = path.with_name(path.name + "_classic")
    datasets = [pydicom.dcmread(p) for p in write_ct_series(ct, classic, rescale_intercept=-1024.0)]
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        legacy_datasets=datasets, series_instance_uid=hd.UID(), series_number=2, sop_instance_uid=hd.UID(),
        instance_number=1,
    )  # fmt: skip
    path.mkdir()
    enhanced.save_as(path / "enhanced.dcm", enforce_file_format=True)


#: (label, file or folder name, writer)
FORMATS: list[tuple[str, str, Callable[[CTVolume, Path], None]]] = [
    ("NRRD (gzip)", "ct.nrrd", _write_sitk(True)),
    ("NIfTI (.nii.gz)", "ct.nii.gz", _write_sitk(True)),
    ("MHA (raw)", "ct.mha", _write_sitk(False)),
    ("MHA (zlib)", "zlib.mha", _write_sitk(True)),
    ("DICOM series (explicit VR LE)", "dicom_plain", _write_dicom("explicit_vr_little_endian")),
    ("DICOM series (RLE lossless)", "dicom_rle", _write_dicom("rle_lossless")),
    ("DICOM Enhanced CT (one multi-frame file)", "dicom_enhanced", _write_enhanced),
]


def size_on_disk_mb(path: Path) -> float:
    """Bytes of a file, or of every file under a folder, in MB (10**6)."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def best_read_s(path: Path, expected: np.ndarray, repeats: int) -> float:
    """The fastest of ``repeats`` reads of ``path``; each read must give back ``expected`` exactly."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ct = read_volume(path)
        times.append(time.perf_counter() - start)
        if not np.array_equal(ct.array, expected):
            raise SystemExit(f"error: {path} did not read back the written voxels")
    return min(times)


def run(size_ijk: tuple[int, int, int], seed: int, repeats: int, synthetic: bool) -> list[tuple[str, float, float]]:
    """Write the volume in every format and time the reads; returns (label, MB on disk, best s) rows."""
    ct, origin = make_volume(size_ijk, seed, synthetic)
    print(f"volume: {origin}, size {size_ijk} (i, j, k), {ct.array.nbytes / 1e6:.1f} MB as int16, best of {repeats}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="ssn-read-speed-") as tmp:
        for label, name, write in FORMATS:
            path = Path(tmp) / name
            write(ct, path)
            rows.append((label, size_on_disk_mb(path), best_read_s(path, ct.array, repeats)))
    return rows


def table(rows: list[tuple[str, float, float]], voxel_mb: float) -> str:
    """The result table (Markdown)."""
    fastest = min(seconds for _, _, seconds in rows)
    lines = [
        "| format | on disk (MB) | read (s) | MB/s | x fastest |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, disk_mb, seconds in rows:
        lines.append(
            f"| {label} | {disk_mb:.1f} | {seconds:.3f} | {voxel_mb / seconds:.0f} | {seconds / fastest:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--columns", type=int, default=512, help="columns (i) and rows (j); default 512")
    parser.add_argument("--slices", type=int, default=64, help="slices (k); default 64")
    parser.add_argument("--repeats", type=int, default=3, help="reads per format, the best counts; default 3")
    parser.add_argument("--seed", type=int, default=0, help="phantom seed; default 0")
    parser.add_argument("--synthetic", action="store_true", help="use a synthetic HU volume, not the phantom")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.slices < 8 or args.columns < 8:
        parser.error("--repeats must be >= 1 and --columns/--slices >= 8")
    size_ijk = (args.columns, args.columns, args.slices)
    rows = run(size_ijk, args.seed, args.repeats, args.synthetic)
    print(table(rows, voxel_mb=2 * float(np.prod(size_ijk)) / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
