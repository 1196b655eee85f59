"""Exact numbers: conversions, and exactness of the engine on every number form.

Expected values are worked out by hand (binary expansions of floats, sums of
big integers) and written in the comments.
"""

from __future__ import annotations

from fractions import Fraction
from fractions import Fraction as F

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from lumpcore import (
    LumpkitError,
    Rational,
    WeightedGraph,
    coarsest_lumping,
    rational_to_str,
    to_rational,
    to_rationals,
)


# ---------------------------------------------------------------- to_rational
@pytest.mark.parametrize(
    "x,want",
    [
        (3, Fraction(3)),
        (-7, Fraction(-7)),
        (np.int64(5), Fraction(5)),
        (np.int32(-2), Fraction(-2)),
        (0.5, Fraction(1, 2)),
        (-0.375, Fraction(-3, 8)),
        (np.float64(0.25), Fraction(1, 4)),
        (np.float32(0.1), Fraction(13421773, 134217728)),  # float32 0.1 = 13421773 / 2**27
        # 0.1 as a double is 3602879701896397 / 2**55 (its exact binary value)
        (0.1, Fraction(3602879701896397, 2**55)),
        (Fraction(2, 6), Fraction(1, 3)),
        (sympy.Rational(3, 9), Fraction(1, 3)),
        (sympy.Integer(-4), Fraction(-4)),
        ("3/4", Fraction(3, 4)),
        (" -2 ", Fraction(-2)),
        ("0.1", Fraction(1, 10)),  # decimal strings at their written value
        ("1e-3", Fraction(1, 1000)),
        (2**100 + 1, Fraction(2**100 + 1)),
    ],
    ids=repr,
)
def test_to_rational(x: object, want: Fraction) -> None:
    got = to_rational(x)
    assert isinstance(got, Fraction)
    assert got == want


def test_rational_is_fraction() -> None:
    assert Rational is Fraction


@pytest.mark.parametrize(
    "x,needle",
    [
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (-np.inf, "inf"),
        (np.float64("nan"), "nan"),
        (True, "True"),
        ("one third", "one third"),
        ("1/0", "1/0"),
        (None, "None"),
        (1 + 2j, "(1+2j)"),
    ],
    ids=repr,
)
def test_to_rational_rejects(x: object, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        to_rational(x)
    assert isinstance(info.value, LumpkitError)
    assert needle in str(info.value)


def test_to_rationals_and_str() -> None:
    assert to_rationals([1, "1/2", 0.25, sympy.Rational(1, 3)]) == [
        Fraction(1), Fraction(1, 2), Fraction(1, 4), Fraction(1, 3)
    ]
    assert rational_to_str(Fraction(-3, 4)) == "-3/4"
    assert rational_to_str(Fraction(6, 3)) == "2"
    assert rational_to_str(Fraction(0)) == "0"
    assert rational_to_str(Fraction(-5)) == "-5"


@settings(max_examples=200, deadline=None)
@given(st.fractions())
def test_str_round_trip(q: Fraction) -> None:
    assert to_rational(rational_to_str(q)) == q


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_exact_value(x: float) -> None:
    q = to_rational(x)
    assert float(q) == x
    assert q == Fraction(x)  # Fraction(float) is exact by definition


# ------------------------------------------- number forms give the same result
def _star(weights: list[object]) -> WeightedGraph:
    """Node 0 sends weights[i] to node i+1."""
    k = len(weights)
    return WeightedGraph.from_edges(k + 1, [0] * k, list(range(1, k + 1)), weights)


def test_number_forms_agree() -> None:
    """1/2, 1/2, 3/2, -1/2 to nodes 1..4, written in every accepted form.
    By hand: plain backward {0} {1,2} {3} {4}; proportional {0} {1,2,3} {4}."""
    forms: list[object] = [
        [Fraction(1, 2), Fraction(1, 2), Fraction(3, 2), Fraction(-1, 2)],
        [sympy.Rational(1, 2), sympy.Rational(2, 4), sympy.Rational(3, 2), sympy.Rational(-1, 2)],
        ["1/2", "0.5", "3/2", "-1/2"],
        np.array([0.5, 0.5, 1.5, -0.5]),
        [0.5, Fraction(1, 2), "1.5", sympy.Rational(-1, 2)],
    ]
    for w in forms:
        g = _star(w)  # type: ignore[arg-type]
        for arithmetic in ("exact", "float"):
            plain = coarsest_lumping(g, arithmetic=arithmetic)
            prop = coarsest_lumping(g, proportional=True, arithmetic=arithmetic)
            assert plain.blocks == ((0,), (1, 2), (3,), (4,)), (w, arithmetic)
            assert prop.blocks == ((0,), (1, 2, 3), (4,)), (w, arithmetic)
            assert prop.rho is not None
            assert float(prop.rho[3]) == pytest.approx(1 / 3, rel=1e-15)
            if arithmetic == "exact":
                assert prop.rho[3] == Fraction(1, 3)
    # integer weights 1, 1, 3, -1 as an int64 array: same partitions
    g = _star(np.array([1, 1, 3, -1], dtype=np.int64))  # type: ignore[arg-type]
    assert coarsest_lumping(g).blocks == ((0,), (1, 2), (3,), (4,))


def test_exact_mode_takes_floats_at_binary_value() -> None:
    """0.1 (float) and "0.1" (decimal) differ exactly, so exact mode splits
    nodes 1 and 2; the same float 0.1 twice merges them."""
    g = _star([0.1, "0.1"])
    assert coarsest_lumping(g).blocks == ((0,), (1,), (2,))
    g = _star([0.1, 0.1])
    assert coarsest_lumping(g).blocks == ((0,), (1, 2))
    # Fraction(1, 3) vs its nearest double: different exactly
    g = _star([Fraction(1, 3), 1 / 3])
    assert coarsest_lumping(g).blocks == ((0,), (1,), (2,))


def test_big_integers_no_overflow() -> None:
    """In-sums that overflow int64 must still be compared exactly.
    Sources 0..3 (one block) send to 4, 5, 6, 7:
      4 gets 2**61 four times          = 2**63
      5 gets 2**62 twice               = 2**63
      6 gets 2**62 and 2**62 - 1       = 2**63 - 1
      7 gets 2**62 + 1 and 2**62 - 1   = 2**63
    so plain mode merges {4, 5, 7} and leaves 6 alone; proportional mode
    merges all four (one positive coordinate each), rho(6) = 2**63 / (2**63 - 1)."""
    a, b = 2**61, 2**62
    src = [0, 1, 2, 3, 0, 1, 0, 1, 0, 1]
    dst = [4, 4, 4, 4, 5, 5, 6, 6, 7, 7]
    w = [a, a, a, a, b, b, b, b - 1, b + 1, b - 1]
    init = ["s"] * 4 + ["t"] * 4
    for weights in (w, np.array(w, dtype=object), [Fraction(x) for x in w]):
        g = WeightedGraph.from_edges(8, src, dst, weights)  # type: ignore[arg-type]
        lump = coarsest_lumping(g, init)
        assert lump.blocks == ((0, 1, 2, 3), (4, 5, 7), (6,)), type(weights)
        lump = coarsest_lumping(g, init, proportional=True)
        assert lump.blocks == ((0, 1, 2, 3), (4, 5, 6, 7)), type(weights)
        assert lump.rho is not None
        assert lump.rho[4:] == (1, 1, Fraction(2**63, 2**63 - 1), 1)
    # the same as an int64 array (all entries fit in int64, the sums do not)
    g = WeightedGraph.from_edges(8, src, dst, np.array(w, dtype=np.int64))
    assert coarsest_lumping(g, init).blocks == ((0, 1, 2, 3), (4, 5, 7), (6,))


@pytest.mark.parametrize(
    "weights",
    [
        [2**70, 2**70 + 1],  # Python ints beyond int64 and uint64
        [2**60 + 1, 2**60, 0.5],  # big ints mixed with a float: must stay exact
        np.array([2**70, 2**70 + 1], dtype=object),
    ],
    ids=["big-ints", "big-ints-with-float", "object-array"],
)
def test_big_python_ints_stay_exact(weights: list[object]) -> None:
    """Node 0 sends the first two weights to nodes 1 and 2 (and the rest, if
    any, to node 3).  The first two differ by 1, so exact backward lumping
    must separate 1 and 2, and proportional rho(2) = w1 / w2 exactly."""
    k = len(weights)
    g = WeightedGraph.from_edges(k + 1, [0] * k, list(range(1, k + 1)), weights)
    assert coarsest_lumping(g).blocks[:3] == ((0,), (1,), (2,)), g.weight_kind
    prop = coarsest_lumping(g, [0, 1, 1] + [2] * (k - 2), proportional=True)
    assert prop.blocks[:2] == ((0,), (1, 2))
    assert prop.rho is not None
    assert prop.rho[2] == F(int(weights[0]), int(weights[1]))  # type: ignore[call-overload]


def test_big_python_ints_stay_exact_in_matrix_and_networkx() -> None:
    import networkx as nx

    a, b = 2**70, 2**70 + 1
    g = WeightedGraph.from_matrix([[0, a, b], [0, 0, 0], [0, 0, 0]])
    assert coarsest_lumping(g).blocks == ((0,), (1,), (2,))
    G = nx.DiGraph()
    G.add_edge(0, 1, weight=a)
    G.add_edge(0, 2, weight=b)
    assert coarsest_lumping(WeightedGraph.from_networkx(G)).blocks == ((0,), (1,), (2,))


def test_huge_rationals() -> None:
    """Weights with 40-digit denominators: 1/p + 1/q vs (p+q)/(pq) merge."""
    p, q = 10**40 + 7, 10**39 + 3
    src, dst = [0, 1, 0], [2, 2, 3]
    w = [Fraction(1, p), Fraction(1, q), Fraction(p + q, p * q)]
    g = WeightedGraph.from_edges(4, src, dst, w)
    assert coarsest_lumping(g, ["s", "s", "t", "t"]).blocks == ((0, 1), (2, 3))
    w[2] += Fraction(1, p * q * 10**30)
    g = WeightedGraph.from_edges(4, src, dst, w)
    assert coarsest_lumping(g, ["s", "s", "t", "t"]).blocks == ((0, 1), (2,), (3,))


def test_wide_dynamic_range_exact_vs_float() -> None:
    """Node 2 receives 1e300 and 1e-300, node 3 receives 1e300.  Exactly they
    differ.  In float mode with tolerance 0 the grid is a power of two near
    1e300 * 2**-59, so 1e-300 rounds to 0 and they merge (the documented
    contract: weights are rounded to the grid first)."""
    g = WeightedGraph.from_edges(4, [0, 1, 0], [2, 2, 3], np.array([1e300, 1e-300, 1e300]))
    init = ["s", "s", "t", "t"]
    assert coarsest_lumping(g, init).blocks == ((0, 1), (2,), (3,))
    fl = coarsest_lumping(g, init, arithmetic="float")
    assert fl.blocks == ((0, 1), (2, 3))
    assert fl.resolution is not None and 1e-300 < fl.resolution / 2


def test_float_grid_beyond_int64() -> None:
    """Tolerance 1e-12 with weights 1e10: grid sums near 1e22 do not fit int64.
    Node 3 gets 1e10 and 1e-13 (0.1 grid steps: rounds to 0), node 4 gets
    1e10, node 5 gets 1e10 and 1e-12 (one grid step): {3, 4} | {5}."""
    g = WeightedGraph.from_edges(
        6, [0, 1, 0, 0, 1], [3, 3, 4, 5, 5], np.array([1e10, 1e-13, 1e10, 1e10, 1e-12])
    )
    init = ["s", "s", "s", "t", "t", "t"]
    lump = coarsest_lumping(g, init, arithmetic="float", tolerance=1e-12)
    assert lump.blocks == ((0, 1, 2), (3, 4), (5,))
    assert coarsest_lumping(g, init).blocks == ((0, 1, 2), (3,), (4,), (5,))


def test_very_fine_tolerance_rounds_in_exact_integers() -> None:
    """Grid integers beyond float64 (1e300 on the grid 1e-300) are exact Python ints.

    Node 1 gets 1e300 and node 2 gets 1e300 + 1e-300 (one grid step more), node 3
    the same as node 1: {1, 3} | {2}."""
    g = WeightedGraph.from_edges(
        4, [0, 0, 0, 0], [1, 2, 2, 3], np.array([1e300, 1e300, 1e-300, 1e300])
    )
    lump = coarsest_lumping(g, [0, 1, 1, 1], arithmetic="float", tolerance=1e-300)
    assert lump.blocks == ((0,), (1, 3), (2,))
    assert lump.resolution == 1e-300


def test_float_factor_beyond_float64_is_an_error() -> None:
    """Proportional float mode: node 2 gets 1e-300 (1 grid step), node 1 gets 1e300
    (about 1e600 steps): their factor is not a float64; exact mode gives it."""
    g = WeightedGraph.from_edges(3, [0, 0], [1, 2], np.array([1e300, 1e-300]))
    with pytest.raises(ValueError) as info:
        coarsest_lumping(g, [0, 1, 1], proportional=True, arithmetic="float", tolerance=1e-300)
    assert isinstance(info.value, LumpkitError)
    assert "arithmetic='exact'" in str(info.value)
    exact = coarsest_lumping(g, [0, 1, 1], proportional=True)
    assert exact.blocks == ((0,), (1, 2))
    assert exact.rho is not None and exact.rho[2] == Fraction(1e300) / Fraction(1e-300)
