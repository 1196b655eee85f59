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
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write_bytes", "atomic_write_str", "atomic_write_text"]


def _atomic(path: str | os.PathLike[str], opener: Callable[[int], IO[Any]],
            write: Callable[[Any], None]) -> None:
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:  # name the file asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, str(target)) from None
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
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(fh)`` on a binary temporary file, then move it to ``path``."""
    _atomic(path, lambda fd: os.fdopen(fd, "wb"), write)


def atomic_write_str(path: str | os.PathLike[str], write: Callable[[IO[str]], None]) -> None:
    """Call ``write(fh)`` on a UTF-8 text temporary file (``\\n`` newlines), then move it."""
    _atomic(path, lambda fd: os.fdopen(fd, "w", encoding="utf-8", newline="\n"), write)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` newlines) to ``path`` atomically."""

    def _write(fh: IO[str]) -> None:
        fh.write(text)

    atomic_write_str(path, _write)
