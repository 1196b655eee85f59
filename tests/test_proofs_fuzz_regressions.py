"""Regressions found by the adversarial campaign on the proofs package.

Every assertion is decided by an oracle independent of the code under test:
nnreduce's exact evaluator (a different implementation from the one inside
proofs), a brute-force check of THEORY's definitions, or a hand computation.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import proofs
from nnreduce import Dense, Network, Normalization, evaluate_exact

F = Fraction


def _dense(rows: list[list[object]], bias: list[object]) -> Dense:
    return Dense(np.array([[F(x) for x in r] for r in rows], dtype=object),
                 np.array([F(x) for x in bias], dtype=object))


def _relu_net(rows: list[list[object]], bias: list[object], out: list[list[object]],
              out_b: list[object], nrm: Normalization | None) -> Network:
    from nnreduce import Activation

    return Network((_dense(rows, bias), Activation("relu"), _dense(out, out_b)),
                   (len(rows[0]),), nrm)


def _clip_nrm(lo: int, hi: int, mean: int = 0, rng: int = 1) -> Normalization:
    return Normalization([F(mean)], [F(rng)], [F(0)], [F(1)], [F(lo)], [F(hi)])


def _value(net: Network, x: object) -> list[Fraction]:
    return list(evaluate_exact(net, [F(x)]))  # type: ignore[arg-type]


# ------------------------------------------- NNet input clipping and normalisation
def test_shared_clip_is_respected_without_a_box() -> None:
    # cores relu(x - 2) and 0 differ only for x > 2, which the clip [-1, 1] never lets in
    nrm = _clip_nrm(-1, 1)
    a = _relu_net([[1]], [-2], [[1]], [0], nrm)
    b = _relu_net([[1]], [-2], [[0]], [0], nrm)
    grid = [F(k, 4) for k in range(-400, 401)]
    assert all(_value(a, x) == _value(b, x) for x in grid)  # the oracle: equal functions
    v = proofs.check_equivalence(a, b)
    assert v.equivalent


def test_one_network_clipping_and_the_other_not_is_a_counterexample() -> None:
    # both compute x on [-1, 1]; only one clips, so they differ at x = 5 (oracle)
    clipped = Network((_dense([[1]], [0]),), (1,), _clip_nrm(-1, 1))
    plain = Network((_dense([[1]], [0]),), (1,),
                    Normalization([F(0)], [F(2)], [F(0)], [F(2)]))
    assert _value(clipped, 5) != _value(plain, 5)
    for falsify in (True, False):
        v = proofs.check_equivalence(clipped, plain, falsify=falsify)
        assert v.verdict == "counterexample" and v.input is not None and v.outputs is not None
        assert _value(clipped, v.input[0]) == list(v.outputs[0])
        assert _value(plain, v.input[0]) == list(v.outputs[1])
        assert v.outputs[0] != v.outputs[1]


def test_shared_normalisation_counterexample_is_in_the_networks_units() -> None:
    # mean 1/2, range 2, output * 3 + 1; the cores differ by relu(x) (raw x > 1/2)
    nrm = Normalization([F(1, 2)], [F(2)], [F(1)], [F(3)], [F(-5)], [F(5)])
    a = _relu_net([[1]], [0], [[1]], [0], nrm)
    b = _relu_net([[1]], [0], [[0]], [0], nrm)
    box = [(F(1), F(3))]
    for falsify in (True, False):
        v = proofs.check_equivalence(a, b, box=box, falsify=falsify)
        assert v.verdict == "counterexample" and v.input is not None and v.outputs is not None
        (x,) = v.input
        assert 1 <= x <= 3 and v.box == tuple(box)
        assert _value(a, x) == list(v.outputs[0]) == [3 * (x - F(1, 2)) / 2 + 1]
        assert _value(b, x) == list(v.outputs[1]) == [1]


@pytest.mark.parametrize("falsify", [True, False])
def test_box_outside_the_clip_interval(falsify: bool) -> None:
    # on the box [5, 6] a network clipping to [-1, 1] always sees x = 1
    nrm = _clip_nrm(-1, 1)
    a = _relu_net([[1]], [-1], [[1]], [0], nrm)  # relu(x - 1): 0 at the clip end
    same = Network((_dense([[0]], [0]),), (1,), nrm)
    moved = _relu_net([[1]], [-F(1, 2)], [[1]], [0], nrm)  # relu(x - 1/2): 1/2 there
    box = [(F(5), F(6))]
    assert all(_value(a, x) == _value(same, x) == [0] for x in (5, F(11, 2), 6))
    assert proofs.check_equivalence(a, same, box=box, falsify=falsify).equivalent
    v = proofs.check_equivalence(a, moved, box=box, falsify=falsify)
    assert v.verdict == "counterexample" and v.input is not None and v.outputs is not None
    assert 5 <= v.input[0] <= 6
    assert _value(a, v.input[0]) == list(v.outputs[0]) == [0]
    assert _value(moved, v.input[0]) == list(v.outputs[1]) == [F(1, 2)]


def test_leo_box_outside_the_clip_interval() -> None:
    nrm = _clip_nrm(-1, 1)
    net = _relu_net([[1], [-1]], [-F(1, 2), 0], [[1, 1]], [0], nrm)
    res = proofs.leo_reduce(net, [(5, 6)])
    assert res.box == ((F(5), F(6)),)
    for x in (5, F(21, 4), 6, 1, F(3, 4)):  # the box, and the clip image it comes from
        assert _value(res.network, x) == _value(net, x)
