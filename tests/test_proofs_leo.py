"""proofs.leo_reduce: equal on the box (z3 and exact sampling), stability by hand."""

from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import proofs
from lumpcore import ModelFormatError
from nnreduce import Activation, Dense, Network, evaluate_exact, reduce_network


def net_of(layers: list[tuple[list[list[object]], list[object], str]], n_in: int) -> Network:
    out: list[object] = []
    for W, b, act in layers:
        out.append(Dense(np.array([[Fraction(x) for x in r] for r in W], dtype=object),
                         np.array([Fraction(x) for x in b], dtype=object)))
        if act != "identity":
            out.append(Activation(act))
    return Network(tuple(out), (n_in,))


def box_points(box: tuple, rnd: random.Random, k: int = 40) -> list[list[Fraction]]:
    pts = []
    for _ in range(k):
        pts.append([lo + (hi - lo) * Fraction(rnd.randint(0, 16), 16) for lo, hi in box])
    return pts


def test_stability_by_hand_and_layer_merge() -> None:
    # on [0,1]^2: x1, x2 active; -x1-x2-1 inactive; x1-x2 unstable
    net = net_of([([[1, 0], [0, 1], [-1, -1], [1, -1]], [0, 0, -1, 0], "relu"),
                  ([[1, 1, 1, 1]], [0], "identity")], 2)
    res = proofs.leo_reduce(net, "0:1,0:1")
    assert res.inactive == ((2,),) and res.active == ((0, 1),)
    assert res.undecided == 1 and res.neurons_after == 3
    assert proofs.check_equivalence(net, res.network, box=res.box).equivalent


def test_active_rows_linear_combination_are_folded() -> None:
    # x1 + x2 + 1 = 1 * x1 + 1 * x2 + 1: dependent on the two active rows; x1 - x2 unstable
    net = net_of([([[1, 0], [0, 1], [1, 1], [1, -1]], [0, 0, 1, 0], "relu"),
                  ([[1, 2, 3, 1]], [0], "identity")], 2)
    res = proofs.leo_reduce(net, "0:1,0:1")
    assert res.folded == 1 and res.neurons_after == 3
    assert proofs.check_equivalence(net, res.network, box=res.box).equivalent
    # outside the box the result differs (it is equal on the box only)
    out = proofs.check_equivalence(net, res.network)
    assert out.verdict == "counterexample"
    assert "box only" in res.guarantee


def test_milp_decides_what_intervals_cannot() -> None:
    # h1 = ReLU(x), h2 = ReLU(x); n = ReLU(h1 - h2 - 1/2) is -1/2 everywhere, but its
    # interval bound on [-1, 1] is [-3/2, 1/2]
    net = net_of([([[1], [1]], [0, 0], "relu"),
                  ([[1, -1], [1, 0]], ["-1/2", 0], "relu"),
                  ([[5, 1]], [0], "identity")], 1)
    res = proofs.leo_reduce(net, "-1:1")
    assert 0 in res.inactive[1]
    assert res.decided_by["z3"] + res.decided_by["milp"] + res.decided_by["lp"] >= 1
    assert proofs.check_equivalence(net, res.network, box=res.box).equivalent
    only_intervals = proofs.leo_reduce(net, "-1:1", milp=False)
    assert 0 not in only_intervals.inactive[1]


@st.composite
def relu_nets(draw: st.DrawFn) -> tuple[list, int]:
    n_in = draw(st.integers(1, 2))
    w = st.integers(-3, 3)
    layers = []
    width = n_in
    for _ in range(draw(st.integers(1, 2))):
        n = draw(st.integers(1, 4))
        layers.append(([[draw(w) for _ in range(width)] for _ in range(n)],
                       [draw(st.integers(-4, 2)) for _ in range(n)], "relu"))
        width = n
    layers.append(([[draw(w) for _ in range(width)]], [0], "identity"))
    return layers, n_in


@settings(max_examples=25, deadline=None)
@given(relu_nets(), st.integers(-2, 1), st.integers(1, 3))
def test_leo_result_equals_original_on_the_box(net: tuple, lo: int, width: int) -> None:
    layers, n_in = net
    original = net_of(layers, n_in)
    box = tuple((Fraction(lo), Fraction(lo + width)) for _ in range(n_in))
    res = proofs.leo_reduce(original, box)
    assert res.neurons_after <= res.neurons_before
    for x in box_points(box, random.Random(3)):
        assert list(evaluate_exact(original, x)) == list(evaluate_exact(res.network, x))
    assert proofs.check_equivalence(original, res.network, box=box).equivalent
    # every neuron reported stable really is (checked at sampled points by hand)
    for x in box_points(box, random.Random(4), 20):
        vals = [Fraction(v) for v in x]
        for li, (W, b, _) in enumerate(layers[:-1]):
            pre = [sum((Fraction(w) * v for w, v in zip(row, vals, strict=True)), Fraction(bb))
                   for row, bb in zip(W, b, strict=True)]
            assert all(pre[j] <= 0 for j in res.inactive[li])
            assert all(pre[j] >= 0 for j in res.active[li])
            vals = [p if p > 0 else Fraction(0) for p in pre]


def test_leo_then_lumping_composes() -> None:
    # two proportional duplicates and one dead neuron on the box
    net = net_of([([[1, -1], [2, -2], [-1, -1]], [0, 0, -3], "relu"),
                  ([[1, 1, 1]], [0], "identity")], 2)
    res = proofs.leo_reduce(net, "-1:1,-1:1")
    assert res.inactive == ((2,),)
    lumped = reduce_network(res.network)
    assert lumped.neurons_after == 1
    assert proofs.check_equivalence(net, lumped.network, box=res.box).equivalent


def test_bad_box_is_named() -> None:
    net = net_of([([[1]], [0], "relu"), ([[1]], [0], "identity")], 1)
    with pytest.raises(ModelFormatError, match="LO:HI"):
        proofs.leo_reduce(net, "0-1")
    with pytest.raises(ModelFormatError, match="exceeds"):
        proofs.leo_reduce(net, "1:0")
    with pytest.raises(ModelFormatError, match="box"):
        proofs.leo_reduce(net, None)


@settings(max_examples=300, deadline=None)
@given(st.fractions(), st.integers(-1100, 1100))
def test_float_bounds_of_the_milp_are_rounded_outward(q: Fraction, e: int) -> None:
    """The float model's bounds enclose the exact rational bounds and are the tightest
    floats that do (so the MILP never cuts off a real input, whatever the magnitude)."""
    import math
    import sys

    from proofs._leo import _float_down, _float_up

    q = q * Fraction(2) ** e
    d, u = _float_down(q), _float_up(q)
    big = sys.float_info.max
    if abs(q) <= big:
        assert Fraction(d) <= q <= Fraction(u)
        assert math.nextafter(d, math.inf) > q or Fraction(d) == q
        assert math.nextafter(u, -math.inf) < q or Fraction(u) == q
    elif q > 0:
        assert d == big and u == math.inf
    else:
        assert u == -big and d == -math.inf
