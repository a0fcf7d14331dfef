"""Writing outputs safely: a temporary name first, renamed when complete; inputs are never overwritten."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from SmoothSegNetLib.errors import InputError

#: Multi-part suffixes kept on temporary names so that writers choosing a format by extension still work.
_KNOWN_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nrrd", ".nii", ".mha", ".mhd", ".json", ".csv", ".png", ".dcm")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in _KNOWN_SUFFIXES:
        if name.endswith(suffix):
            return path.name[-len(suffix) :]
    return path.suffix


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def refuse_overwriting_inputs(output: Path, inputs: Iterable[str | os.PathLike[str]]) -> None:
    """Raise :class:`InputError` if ``output`` is (or would replace) one of ``inputs``."""
    for item in inputs:
        source = Path(item)
        if _same_file(output, source):
            raise InputError(f"refusing to overwrite the input {source}: choose another output path")


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], protect: Iterable[str | os.PathLike[str]] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only if the block succeeds.

    The temporary name keeps the suffix of ``final`` (``.seg.nrrd``, ``.nii.gz``, ...). On any exception the
    temporary file is removed and ``final`` is left as it was.
    """
    final = Path(final)
    refuse_overwriting_inputs(final, protect)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = _suffix(final)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.partial-", suffix=suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates the file private (0600); give the result the permissions of an ordinary new file.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


#: What a SmoothSegNet output folder holds: a folder holding only these (and the inputs), or holding the
#: completion marker of ``segment``, is a previous output folder and may be written into again.
OUTPUT_FILE_PATTERNS = (
    "segmentation.nrrd",
    "lesions.nrrd",
    "segmentation.seg.nrrd",
    "report.json",
    "report.csv",
    "overview.png",
    "seg.dcm",
    "sr.dcm",
    "probability_*.nrrd",
    ".smoothsegnet-*",  # the completion marker, staging folders left by a killed run
    ".*.partial-*",
)
COMPLETE_MARKER_NAME = ".smoothsegnet-complete.json"


def check_output_dir(outdir: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Refuse an output folder that cannot or must not be written, before any work is done.

    Rules: it is not a file; it is not an input and does not lie inside an input folder (a DICOM series
    folder: results must not go into the patient's folder); it exists and is writable, or the nearest folder
    above it that exists is writable (to create it); an existing folder holds nothing but the inputs and what
    SmoothSegNet writes (:data:`OUTPUT_FILE_PATTERNS`, or ``segment``'s completion marker), so a previous
    output folder is replaced and nobody's other files are mixed with new results.

    Raises:
        InputError: naming the folder, the rule and what to do.
    """
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output folder -o {out} exists and is not a folder: choose another -o")
    sources = [Path(p) for p in inputs]
    for source in (s for s in sources if s.is_dir()):
        resolved, folder = out.resolve(), source.resolve()
        if resolved == folder or folder in resolved.parents:
            raise InputError(
                f"output folder -o {out} lies inside the input folder {source}: results must not be written into "
                "the patient's DICOM folder; choose an -o outside it"
            )
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == out else f"cannot be created: {existing} is not a writable folder"
        raise InputError(f"output folder -o {out} {what}: choose another -o or fix the permissions")
    if existing == out:
        _check_only_outputs(out, sources)


def _check_only_outputs(out: Path, sources: list[Path]) -> None:
    try:
        names = sorted(os.listdir(out))
    except OSError as exc:
        raise InputError(f"output folder -o {out} cannot be listed ({exc.strerror}): choose another -o") from exc
    if COMPLETE_MARKER_NAME in names:
        return
    inputs = {p.resolve() for p in sources}
    others = [
        name
        for name in names
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in OUTPUT_FILE_PATTERNS)
        and (out / name).resolve() not in inputs
    ]
    if others:
        shown = ", ".join(repr(n) for n in others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise InputError(
            f"output folder -o {out} already holds other files ({shown}): give a new or empty folder, or a "
            "previous SmoothSegNet output folder to replace"
        )


class StagedOutputDir:
    """Collects a job's output files in a hidden staging folder and moves them into ``outdir`` at the end.

    Use as a context manager: ``with StagedOutputDir(outdir, protect=[input]) as stage: write(stage.path("x"))``.
    If the block raises (including :class:`~SmoothSegNetLib.errors.Cancelled` or ``KeyboardInterrupt``),
    the staging folder is removed, and ``outdir`` too if this job created it, so ``outdir`` holds no new files.
    """

    def __init__(self, outdir: str | os.PathLike[str], protect: Iterable[str | os.PathLike[str]] = ()) -> None:
        self.outdir = Path(outdir)
        self._protect = [Path(p) for p in protect]
        self._created = False
        self._staging: Path | None = None
        self.committed: list[Path] = []

    def __enter__(self) -> StagedOutputDir:
        if self.outdir.exists() and not self.outdir.is_dir():
            raise InputError(f"output folder {self.outdir} exists and is not a folder: choose another -o")
        for source in self._protect:
            if source.exists() and _same_file(self.outdir, source):
                raise InputError(f"output folder {self.outdir} is the input itself: choose another -o")
        if not self.outdir.exists():
            try:
                self.outdir.mkdir(parents=True)
            except OSError as exc:
                raise InputError(f"cannot create output folder {self.outdir}: {exc.strerror}") from exc
            self._created = True
        if not os.access(self.outdir, os.W_OK):
            raise InputError(f"output folder {self.outdir} is not writable: choose another -o")
        self._staging = Path(tempfile.mkdtemp(prefix=".smoothsegnet-staging-", dir=self.outdir))
        return self

    def path(self, name: str) -> Path:
        """Where to write the output called ``name`` (a relative file name, sub-folders allowed)."""
        if self._staging is None:
            raise RuntimeError("StagedOutputDir used outside its with-block")
        target = self._staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self._staging is not None
        if exc_type is None:
            for item in sorted(self._staging.rglob("*")):
                if item.is_file():
                    final = self.outdir / item.relative_to(self._staging)
                    refuse_overwriting_inputs(final, self._protect)
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(item, final)
                    self.committed.append(final)
            shutil.rmtree(self._staging, ignore_errors=True)
        else:
            shutil.rmtree(self._staging, ignore_errors=True)
            if self._created:
                shutil.rmtree(self.outdir, ignore_errors=True)
