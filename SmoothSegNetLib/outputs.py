"""Writing outputs safely: a temporary name first, renamed when complete; inputs are never overwritten."""

from __future__ import annotations

import contextlib
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
