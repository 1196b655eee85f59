"""Atomic file writes, shared by every writer of lumpkit.

The content goes to a temporary file in the target's directory, which then
replaces the target (``os.replace``): a reader never sees a half-written
file, and on any error the target is untouched and the temporary file is
removed.  The file gets the permissions a plain ``open()`` would give it
(those of the file it replaces, else ``0o666`` less the umask), not the
``0o600`` of ``tempfile.mkstemp``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write_bytes", "atomic_write_group", "atomic_write_str",
           "atomic_write_text"]


def _named(exc: OSError, target: Path) -> OSError:
    """``exc`` naming the file asked for, not the temporary one."""
    return type(exc)(exc.errno, exc.strerror, str(target))


def _temporary(target: Path, opener: Callable[[int], IO[Any]],
               write: Callable[[Any], None]) -> str:
    """Write a temporary file beside ``target`` with ``target``'s future permissions."""
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise _named(exc, target) from None
    try:
        with opener(fd) as fh:
            write(fh)
        try:
            mode = target.stat().st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
    except OSError as exc:
        _unlink(tmp)
        raise _named(exc, target) from None
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _unlink(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def _atomic(path: str | os.PathLike[str], opener: Callable[[int], IO[Any]],
            write: Callable[[Any], None]) -> None:
    atomic_write_group([(path, write)], opener)


def _text(fd: int) -> IO[str]:
    return os.fdopen(fd, "w", encoding="utf-8", newline="\n")


def atomic_write_group(
    files: Sequence[tuple[str | os.PathLike[str], Callable[[Any], None]]],
    opener: Callable[[int], IO[Any]] = _text,
) -> None:
    """Write several files that belong together (a ``.tra`` with its ``.lab`` and
    ``.srew``): every one to a temporary file first, and only when all of them are
    written, each moved to its name.  An error while writing leaves every target as it
    was; the targets are checked not to be directories before anything is written.
    """
    targets = [Path(p) for p, _ in files]
    for target in targets:
        if target.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(target))
    done: list[tuple[str, Path]] = []
    try:
        for target, (_, write) in zip(targets, files, strict=True):
            done.append((_temporary(target, opener, write), target))
        for tmp, target in done:
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise _named(exc, target) from None
    except BaseException:
        for tmp, _ in done:
            _unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(fh)`` on a binary temporary file, then move it to ``path``."""
    _atomic(path, lambda fd: os.fdopen(fd, "wb"), write)


def atomic_write_str(path: str | os.PathLike[str], write: Callable[[IO[str]], None]) -> None:
    """Call ``write(fh)`` on a UTF-8 text temporary file (``\\n`` newlines), then move it."""
    _atomic(path, _text, write)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` newlines) to ``path`` atomically."""

    def _write(fh: IO[str]) -> None:
        fh.write(text)

    atomic_write_str(path, _write)
