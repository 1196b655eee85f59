"""The one exact number type of lumpkit, and conversions to it.

Every package imports :data:`Rational` and :func:`to_rational` from here,
never ``fractions`` directly, so that the exact type can be swapped in one
place.  Floats are taken at their *exact binary value* (``0.1`` becomes
``3602879701896397/36028797018963968``); decimal strings are taken at their
decimal value (``"0.1"`` becomes ``1/10``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import numpy as np

from ._errors import LumpkitError

__all__ = ["Rational", "rational_to_str", "to_rational", "to_rationals"]

#: The exact rational type used throughout lumpkit.
Rational = Fraction


class _BadNumber(LumpkitError, ValueError):
    pass


class _BadType(LumpkitError, TypeError):
    pass


def to_rational(x: Any) -> Fraction:
    """Convert a number to an exact :data:`Rational`.

    Parameters
    ----------
    x : int, float, Fraction, numpy scalar, sympy Rational, or str
        Floats (Python or numpy) are converted at their exact binary value;
        strings such as ``"3/4"``, ``"-2"`` or ``"0.1"`` at their written
        value.

    Returns
    -------
    Fraction

    Raises
    ------
    ValueError
        For NaN, infinities, booleans, and strings that are not numbers.

    Examples
    --------
    >>> to_rational(0.5), to_rational("1/3"), to_rational(2)
    (Fraction(1, 2), Fraction(1, 3), Fraction(2, 1))
    >>> to_rational(0.1) == Fraction(1, 10)
    False
    """
    if isinstance(x, Fraction):
        return x
    if isinstance(x, bool | np.bool_):
        raise _BadNumber(f"expected a number, got the boolean {x!r}")
    if isinstance(x, int | np.integer):
        return Fraction(int(x))
    if isinstance(x, np.floating) and x.dtype.itemsize > 8:  # numpy.longdouble: all its bits
        if not np.isfinite(x):
            raise _BadNumber(f"expected a finite number, got {x!r}; remove NaN/inf first")
        return Fraction(*x.as_integer_ratio())
    if isinstance(x, float | np.floating):
        xf = float(x)
        if not math.isfinite(xf):
            raise _BadNumber(f"expected a finite number, got {xf!r}; remove NaN/inf first")
        return Fraction(xf)
    if isinstance(x, str):
        try:
            return Fraction(x.strip())
        except (ValueError, ZeroDivisionError):
            raise _BadNumber(
                f"{x!r} is not a rational number; write it as 'p/q', an integer or a decimal"
            ) from None
    # sympy Rational / Integer (duck-typed to avoid importing sympy here)
    p, q = getattr(x, "p", None), getattr(x, "q", None)
    if isinstance(p, int) and isinstance(q, int) and q != 0:
        return Fraction(p, q)
    if isinstance(x, numbers.Rational):
        return Fraction(int(x.numerator), int(x.denominator))
    raise _BadNumber(
        f"cannot convert {x!r} of type {type(x).__name__} to an exact rational; "
        "pass an int, float, Fraction, sympy Rational or a 'p/q' string"
    )


def to_rationals(xs: Iterable[Any]) -> list[Fraction]:
    """Convert every element of ``xs`` with :func:`to_rational`.

    Examples
    --------
    >>> to_rationals([1, "1/2", 0.25])
    [Fraction(1, 1), Fraction(1, 2), Fraction(1, 4)]
    """
    if isinstance(xs, str | bytes) or not isinstance(xs, Iterable):
        raise _BadType(
            f"to_rationals takes a sequence of numbers, got {type(xs).__name__}; "
            "use to_rational for a single number"
        )
    return [to_rational(x) for x in xs]


def rational_to_str(q: Fraction) -> str:
    """Write a rational as ``"p/q"`` (or ``"p"`` when the denominator is 1).

    Examples
    --------
    >>> rational_to_str(Fraction(-3, 4)), rational_to_str(Fraction(2))
    ('-3/4', '2')
    """
    q = to_rational(q)
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"
