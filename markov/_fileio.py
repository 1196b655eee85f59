"""Shared helpers of the file readers and writers: atomic writes, number parsing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from lumpcore import ModelFormatError, rational_to_str, to_rational
from lumpcore._atomic import atomic_write_str as atomic_write  # the shared atomic writer

__all__ = ["FileLines", "atomic_write", "fmt_number", "parse_number"]


def fmt_number(x: Any) -> str:
    """Float -> shortest round-trip repr; Fraction -> ``p/q`` (or a finite decimal)."""
    if isinstance(x, Fraction):
        return _fraction_str(x)
    xf = float(x)
    if xf == int(xf) and abs(xf) < 2**53:
        return str(int(xf))
    return repr(xf)


def _fraction_str(q: Fraction) -> str:
    if q.denominator == 1:
        return str(q.numerator)
    d = q.denominator
    twos = fives = 0
    while d % 2 == 0:
        d //= 2
        twos += 1
    while d % 5 == 0:
        d //= 5
        fives += 1
    if d == 1 and max(twos, fives) <= 30:
        digits = max(twos, fives)
        scaled = q * 10**digits
        assert scaled.denominator == 1
        sign = "-" if scaled < 0 else ""
        s = str(abs(scaled.numerator)).rjust(digits + 1, "0")
        return f"{sign}{s[:-digits]}.{s[-digits:]}"
    return rational_to_str(q)


def parse_number(tok: str, exact: bool) -> Fraction | float:
    """``tok`` as a Fraction (exact decimal or ``p/q`` value) or as a float."""
    if exact:
        return to_rational(tok)
    if "/" in tok:
        return float(to_rational(tok))
    v = float(tok)
    if not np.isfinite(v):
        raise ValueError(f"{tok!r} is not a finite number")
    return v


class FileLines:
    """Iterate over the lines of a text file, remembering the line number for errors."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lineno = 0
        try:
            self._fh = open(self.path, encoding="utf-8")
        except UnicodeDecodeError as exc:  # pragma: no cover - open does not decode
            raise ModelFormatError(f"{self.path}: not a text file ({exc})") from None

    def __enter__(self) -> FileLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def __iter__(self) -> Iterator[str]:
        try:
            for line in self._fh:
                self.lineno += 1
                yield line.rstrip("\r\n")
        except UnicodeDecodeError as exc:
            # the text layer decodes blocks ahead of the lines: find the line in the bytes
            data = self.path.read_bytes()
            try:
                data.decode("utf-8")
                bad = self.lineno + 1
            except UnicodeDecodeError as whole:
                bad = data.count(b"\n", 0, whole.start) + 1
            raise ModelFormatError(
                f"{self.path}, line {bad}: not UTF-8 text ({exc.reason})"
            ) from None

    def error(self, reason: str) -> ModelFormatError:
        """A ModelFormatError naming the file, the current line and ``reason``."""
        return ModelFormatError(f"{self.path}, line {self.lineno}: {reason}")
