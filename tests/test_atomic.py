"""lumpcore's atomic writes: all or nothing, and errors that name the requested file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lumpcore._atomic import atomic_write_text


def test_writes_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    atomic_write_text(target, "one\n")
    atomic_write_text(target, "two\n")
    assert target.read_text(encoding="utf-8") == "two\n"
    assert os.listdir(tmp_path) == ["out.txt"]  # no temporary file left


def test_missing_directory_names_the_requested_file(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "out.smt2"
    with pytest.raises(FileNotFoundError) as info:
        atomic_write_text(target, "x")
    assert info.value.filename == str(target)
    assert str(target) in str(info.value)


def test_error_while_writing_leaves_the_old_file(tmp_path: Path) -> None:
    from lumpcore._atomic import atomic_write_str

    target = tmp_path / "out.txt"
    target.write_text("old\n", encoding="utf-8")

    def fail(fh: object) -> None:
        fh.write("half")  # type: ignore[attr-defined]
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_str(target, fail)
    assert target.read_text(encoding="utf-8") == "old\n"
    assert os.listdir(tmp_path) == ["out.txt"]
