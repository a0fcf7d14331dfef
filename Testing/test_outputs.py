"""Outputs are written to a temporary name and renamed; failures leave nothing; inputs are never replaced."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from SmoothSegNetLib.errors import Cancelled, InputError
from SmoothSegNetLib.outputs import StagedOutputDir, atomic_path


def test_atomic_path_keeps_double_suffix_and_renames(tmp_path: Path) -> None:
    final = tmp_path / "a.seg.nrrd"
    with atomic_path(final) as tmp:
        assert tmp.name.endswith(".seg.nrrd") and tmp != final
        tmp.write_text("x")
        assert not final.exists()
    assert final.read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["a.seg.nrrd"]


def test_atomic_path_gives_ordinary_file_permissions(tmp_path: Path) -> None:
    old_mask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "seg.nrrd") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old_mask)
    assert stat.S_IMODE((tmp_path / "seg.nrrd").stat().st_mode) == 0o644


def test_atomic_path_failure_leaves_old_file(tmp_path: Path) -> None:
    final = tmp_path / "r.json"
    final.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert final.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_atomic_path_refuses_input(tmp_path: Path) -> None:
    source = tmp_path / "ct.nrrd"
    source.write_text("ct")
    with pytest.raises(InputError, match="overwrite the input"), atomic_path(source, protect=[source]):
        pass
    assert source.read_text() == "ct"


def test_staged_dir_commits_all_or_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with StagedOutputDir(out) as stage:
        stage.path("a.txt").write_text("a")
        stage.path("sub/b.txt").write_text("b")
        assert not (out / "a.txt").exists()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "a.txt",
        "sub/b.txt",
    ]

    out2 = tmp_path / "out2"
    with pytest.raises(Cancelled), StagedOutputDir(out2) as stage:
        stage.path("a.txt").write_text("a")
        raise Cancelled("stop")
    assert not out2.exists()


def test_staged_dir_failure_in_existing_dir_adds_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("k")
    with pytest.raises(KeyboardInterrupt), StagedOutputDir(out) as stage:
        stage.path("x.nrrd").write_text("x")
        raise KeyboardInterrupt
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
