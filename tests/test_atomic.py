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


def test_a_group_is_written_all_or_nothing(tmp_path: Path) -> None:
    from lumpcore._atomic import atomic_write_group

    a, b, c = tmp_path / "q.tra", tmp_path / "q.lab", tmp_path / "q.srew"
    for p in (a, b, c):
        p.write_text("old\n", encoding="utf-8")

    def ok(fh: object) -> None:
        fh.write("new\n")  # type: ignore[attr-defined]

    def full(fh: object) -> None:
        raise OSError(27, "File too large")  # (what a size limit or a full disk raises)

    with pytest.raises(OSError) as info:
        atomic_write_group([(a, ok), (b, full), (c, ok)])
    assert info.value.filename == str(b)  # the file asked for, not its temporary one
    assert [p.read_text(encoding="utf-8") for p in (a, b, c)] == ["old\n"] * 3
    assert sorted(os.listdir(tmp_path)) == ["q.lab", "q.srew", "q.tra"]
    atomic_write_group([(a, ok), (b, ok), (c, ok)])
    assert [p.read_text(encoding="utf-8") for p in (a, b, c)] == ["new\n"] * 3
    assert sorted(os.listdir(tmp_path)) == ["q.lab", "q.srew", "q.tra"]


def test_a_group_with_a_directory_as_a_target_writes_nothing(tmp_path: Path) -> None:
    from lumpcore._atomic import atomic_write_group

    a, b = tmp_path / "q.tra", tmp_path / "q.srew"
    b.mkdir()

    def ok(fh: object) -> None:
        fh.write("new\n")  # type: ignore[attr-defined]

    with pytest.raises(IsADirectoryError) as info:
        atomic_write_group([(a, ok), (b, ok)])
    assert info.value.filename == str(b)
    assert sorted(os.listdir(tmp_path)) == ["q.srew"]
