"""Shared helpers of the file readers and writers: atomic writes, number parsing."""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from lumpcore import LumpkitWarning, ModelFormatError, rational_to_str, to_rational
from lumpcore._atomic import atomic_write_group  # the shared atomic writers
from lumpcore._atomic import atomic_write_str as atomic_write

from ._chain import _MAX_STATES, _row_sums

__all__ = ["NUMBER_TOKEN", "FileLines", "atomic_write", "atomic_write_group", "exact_values",
           "fmt_number", "no_repeated_transition", "parse_index", "parse_number",
           "reward_rates"]


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


#: a number of the chain files: an ASCII decimal (sign, digits, point, exponent) or ``p/q``
NUMBER_TOKEN = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:/\d+)?", re.ASCII)


def parse_number(tok: str, exact: bool) -> Fraction | float:
    """``tok`` as a Fraction (exact decimal or ``p/q`` value) or as a float.

    Only the files' number syntax is taken: Python's own readers would also take
    ``1_0`` (as 10), ``inf`` and digits of other scripts.
    """
    if not NUMBER_TOKEN.fullmatch(tok):
        raise ValueError(f"{tok!r} is not a number (ASCII decimal digits with an optional "
                         "sign, point and exponent, or p/q)")
    if exact:
        return to_rational(tok)
    if "/" in tok:
        q = to_rational(tok)
        try:
            v = float(q)
        except OverflowError:  # p/q beyond float64's range (a decimal gives inf, below)
            raise ValueError(f"{tok!r} is beyond float64's range; read the model with "
                             "exact=True (--exact) or rescale the values") from None
    else:
        v = float(tok)
        if not np.isfinite(v):
            raise ValueError(f"{tok!r} is not a finite number")
        if v != 0.0:
            return v
        q = to_rational(tok)
    if v == 0.0 and q != 0:  # e.g. 1e-400: the transition would vanish
        raise ValueError(f"{tok!r} is not zero but rounds to 0 in float64; read the model "
                         "with exact=True (--exact) or rescale the values")
    return v


def parse_index(tok: str) -> int:
    """A state (or label) index: ASCII decimal digits only (``int`` would also take ``+1``,
    ``1_0`` and digits of other scripts)."""
    if not (tok.isascii() and tok.isdigit()):
        raise ValueError(f"{tok!r} is not an index (decimal digits 0-9)")
    return int(tok)


def no_repeated_transition(path: Path, n: int, src: np.ndarray, dst: np.ndarray,
                            at: np.ndarray) -> None:
    """Refuse a transition listed twice (PRISM and Storm write each once; summing the two
    would read a damaged file as another chain), naming both lines (``at``)."""
    if src.size < 2 or n > _MAX_STATES:  # (the chain refuses such a state count)
        return
    key = src * n + dst
    order = np.argsort(key, kind="stable")
    same = np.flatnonzero(key[order][1:] == key[order][:-1])
    if same.size:
        first, second = sorted((int(at[order[same[0]]]), int(at[order[same[0] + 1]])))
        raise ModelFormatError(
            f"{path}, line {second}: transition {int(src[order[same[0]]])} -> "
            f"{int(dst[order[same[0]]])} is listed twice (first on line {first}); list every "
            "transition once")


class FileLines:
    """Iterate over the lines of a text file, remembering the line number for errors."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lineno = 0
        try:
            self._fh = open(self.path, encoding="utf-8-sig")  # a leading BOM is skipped
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


def located(path: Path, exc: Exception, src: np.ndarray, dst: np.ndarray,
            linenos: np.ndarray, state_lines: dict[int, int] | None = None
            ) -> ModelFormatError:
    """A reader's error for an invalid chain: the file and the lines of the transitions
    ``exc`` is about (its ``state`` and ``column``, from ``src``/``dst`` and their line
    numbers ``linenos``; else the state's own line from ``state_lines``)."""
    state = getattr(exc, "state", None)
    lines: list[int] = []
    if state is not None:
        hit = src == state
        column = getattr(exc, "column", None)
        if column is not None:
            hit &= dst == column
        lines = sorted(set(np.asarray(linenos)[hit].tolist()))
        if not lines and state_lines is not None and state in state_lines:
            lines = [state_lines[state]]
    if not lines:
        return ModelFormatError(f"{path}: {exc}")
    if len(lines) == 1:
        where = f"line {lines[0]}"
    elif lines[-1] - lines[0] == len(lines) - 1:
        where = f"lines {lines[0]}-{lines[-1]}"
    else:
        where = "lines " + ", ".join(map(str, lines[:3])) + (", ..." if len(lines) > 3 else "")
    return ModelFormatError(f"{path}, {where}: {exc}")


class RewardFoldingWarning(LumpkitWarning):
    """Transition or action rewards were folded into state reward rates.

    ``structures`` names the reward structures folded (``"default"`` for an
    unnamed one), so that a caller that leaves them out of the lumping can
    ignore the warning.
    """

    def __init__(self, message: str, structures: Sequence[str]) -> None:
        super().__init__(message)
        self.structures = tuple(structures)


def exact_values(vals: Any) -> np.ndarray:
    """``vals`` (floats or rationals) as an object array of their exact rational values;
    each distinct float is converted once."""
    arr = vals if isinstance(vals, np.ndarray) else np.asarray(vals, dtype=object)
    out = np.empty(len(arr), dtype=object)
    if arr.dtype == object:
        out[:] = [x if isinstance(x, Fraction) else Fraction(x) for x in arr.tolist()]
    else:
        vl = arr.tolist()
        conv = {x: Fraction(x) for x in set(vl)}
        out[:] = [conv[x] for x in vl]
    return out


def _nearest_float(q: Fraction) -> float:
    """``q`` rounded to a float; beyond float64's range an infinity (which the chain's
    checks then report by reward and state), not an OverflowError."""
    try:
        return float(q)
    except OverflowError:
        return math.inf if q > 0 else -math.inf


def reward_rates(where: str, names: Sequence[str], state: Sequence[Any],
                 extra: Sequence[Any], n: int, src: np.ndarray, vals: Any,
                 ctmc: bool, kinds: str = "transition/action") -> dict[str, Any]:
    """Reward models as state reward rates, Storm's total reward vector.

    Model ``k`` earns ``state[k][s] + w(s) * extra[k][s]`` in state ``s``
    (per-state sequences or float arrays):
    ``extra`` is what the state's one action earns per firing (its action
    reward, plus the expected reward of the transition it takes), ``None``
    for a model without action or transition rewards, and ``w(s)`` the exit
    rate of a CTMC state (the sum of its row of rates ``vals``, self-loops
    included), 1 for a DTMC.  A :class:`lumpcore.LumpkitWarning` (prefixed
    by ``where``) names the models folded and the ``kinds`` of reward they had.

    For a float chain the folded values are computed exactly from the floats
    (``extra`` may hold their exact rationals) and rounded once: states whose
    exact values agree get the same float, whatever the order of their
    transitions (float sums in file order differ in their last bits, and
    would keep such states apart in every lumping that respects the reward).
    """
    weight: list[Any] | None = None
    out: dict[str, Any] = {}
    folded: list[str] = []
    arr = vals if isinstance(vals, np.ndarray) else np.asarray(vals, dtype=object)
    floating = arr.dtype != object or not all(isinstance(x, Fraction) for x in arr.tolist())
    for name, r, a in zip(names, state, extra, strict=True):
        if a is None or not any(x != 0 for x in a):
            out[name] = r
            continue
        if weight is None:
            if ctmc:  # exit rates, exact (for a float chain: of its floats)
                weight = _row_sums(n, src, exact_values(arr) if floating else arr,
                                   True).tolist()
            else:
                weight = [1] * n
        if floating:
            # (a state reward that is not finite stays as it is: the chain's checks name it)
            total: list[Any] = [x if y == 0 or not math.isfinite(x)
                                else _nearest_float(Fraction(x) + w * Fraction(y))
                                for x, w, y in zip(r, weight, a, strict=True)]
        else:
            total = [x + w * y for x, w, y in zip(r, weight, a, strict=True)]
        out[name] = np.asarray(total, dtype=np.float64) if isinstance(r, np.ndarray) else total
        folded.append(name or "default")
    if folded:
        warnings.warn(RewardFoldingWarning(
            f"{where}reward structure(s) {', '.join(repr(d) for d in folded)}: {kinds} "
            "rewards are folded into state reward rates (expected reward per time unit, "
            "or per step of a DTMC), as Storm does for long-run and accumulated rewards; "
            "a lumping that respects them (the default; not when rewards= or --rewards "
            "leaves them out) keeps those measures, but not instantaneous rewards", folded),
            stacklevel=3)
    return out

