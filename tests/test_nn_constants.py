"""Constant neurons under non-homogeneous post-ops (factor set "one").

A neuron whose incoming weights are all zero outputs the constant
``post_ops(b)``.  It is removed (and its value folded into the next bias)
exactly when that value is a known rational: always for clips, hard sigmoid,
hard swish and batch norm, and at ``b = 0`` for tanh, sigmoid, GELU, ELU,
SiLU (0, 1/2, 0, 0, 0); never for softplus (log 2 at 0).

Oracles: the expected removals are computed here from the weights alone;
exact evaluation of both networks; ``proofs.check_certificate``; z3 for the
piecewise-linear cases.
"""

from __future__ import annotations

import copy
import json
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import examples, settings

from nnreduce import (
    Activation,
    BatchNorm,
    Conv2d,
    Dense,
    Network,
    evaluate_exact,
    reduce_network,
)

ACTS: dict[str, Any] = {
    "relu6": Activation("clip", bounds=(Fraction(0), Fraction(6))),
    "hardtanh": Activation("clip", bounds=(Fraction(-1), Fraction(1))),
    "clamp_low": Activation("clip", bounds=(Fraction(-1, 2), None)),
    "tanh": Activation("tanh"),
    "sigmoid": Activation("sigmoid"),
    "gelu": Activation("gelu"),
    "elu": Activation("elu", alpha=Fraction(1)),
    "silu": Activation("silu"),
    "softplus": Activation("softplus"),
    "softplus_t": Activation("softplus", threshold=Fraction(5)),
    "hard_sigmoid": Activation("hard_sigmoid", alpha=Fraction(1, 6), beta=Fraction(1, 2)),
    "hard_swish": Activation("hard_swish", alpha=Fraction(1, 6), beta=Fraction(1, 2)),
}


def _hard_sigmoid(b: Fraction) -> Fraction:
    return min(max(b / 6 + Fraction(1, 2), Fraction(0)), Fraction(1))


# what a constant pre-activation b becomes, where it is a known rational (else None)
_EXPECTED = {
    "relu6": lambda b: min(max(b, Fraction(0)), Fraction(6)),
    "hardtanh": lambda b: min(max(b, Fraction(-1)), Fraction(1)),
    "clamp_low": lambda b: max(b, Fraction(-1, 2)),
    "tanh": lambda b: Fraction(0) if b == 0 else None,
    "sigmoid": lambda b: Fraction(1, 2) if b == 0 else None,
    "gelu": lambda b: Fraction(0) if b == 0 else None,
    "elu": lambda b: Fraction(0) if b == 0 else (b if b > 0 else None),
    "silu": lambda b: Fraction(0) if b == 0 else None,
    "softplus": lambda b: None,  # log 2 at 0: never rational
    "softplus_t": lambda b: b if b > 5 else None,  # the identity above its threshold
    "hard_sigmoid": _hard_sigmoid,
    "hard_swish": lambda b: b * _hard_sigmoid(b),
}


def _net(kind: str, zero_rows: list[int], biases: list[float], seed: int) -> Network:
    """4 -> 6 (kind) -> 3; rows ``zero_rows`` of the hidden layer are all zero."""
    rng = np.random.default_rng(seed)
    w1 = np.round(rng.normal(size=(6, 4)) * 8) / 8
    b1 = np.round(rng.normal(size=6) * 8) / 8
    for v, b in zip(zero_rows, biases, strict=True):
        w1[v] = 0.0
        b1[v] = b
    w2 = np.round(rng.normal(size=(3, 6)) * 8) / 8
    return Network((Dense(w1, b1), ACTS[kind], Dense(w2, [0.25, -0.5, 1.0])), (4,))


def _inputs(rng: np.random.Generator, n: int) -> list[list[Fraction]]:
    return [[Fraction(int(k), 16) for k in rng.integers(-64, 65, size=4)] for _ in range(n)]


@settings(max_examples=examples(40), deadline=None)
@given(kind=st.sampled_from(sorted(ACTS)),
       zero_rows=st.lists(st.integers(0, 5), min_size=1, max_size=4, unique=True),
       data=st.data(), seed=st.integers(0, 2**16))
def test_constant_neurons_removed_exactly_when_their_value_is_known(
        kind: str, zero_rows: list[int], data: Any, seed: int) -> None:
    from proofs import check_certificate

    biases = data.draw(st.lists(st.sampled_from([0.0, 0.0, 0.5, -0.75, 7.0, -3.0]),
                                min_size=len(zero_rows), max_size=len(zero_rows)))
    net = _net(kind, zero_rows, biases, seed)
    red = reduce_network(net)
    lr = red.layers[0]
    want = dict(lr.removed)
    # removed: constants with a known value, whose folds together keep the next bias a
    # float64; and no other constant with a known value could be folded on top of them
    out = net.layers[2]

    def fold(bias: list[Fraction], v: int, val: Fraction) -> list[Fraction]:
        return [c + val * Fraction(float(w)) for c, w in zip(bias, out.weight[:, v],
                                                              strict=True)]

    bias = [Fraction(float(b)) for b in out.bias]
    known = {v: _EXPECTED[kind](Fraction(b)) for v, b in zip(zero_rows, biases, strict=True)}
    for v, val in want.items():
        assert known.get(v) == val, (v, val)
        bias = fold(bias, v, val)
    assert all(Fraction(float(t)) == t for t in bias)
    for v, val in known.items():
        if v not in want and val is not None:
            assert not all(Fraction(float(t)) == t for t in fold(bias, v, val)), v
    # the other rows are random: only equal constants that stay merge (rho = 1)
    stay = [b for v, b in zip(zero_rows, biases, strict=True) if v not in want]
    assert lr.neurons_after == 6 - len(want) - (len(stay) - len(set(stay)))
    rng = np.random.default_rng(seed)
    for x in _inputs(rng, 3):
        assert evaluate_exact(net, x).tolist() == evaluate_exact(red.network, x).tolist()
    cert = red.certificate
    assert cert is not None
    assert cert["version"] == (2 if want else 1)
    verdict = check_certificate(net, red.network, cert)
    assert verdict.valid, verdict


@pytest.mark.parametrize("kind", ["relu6", "hardtanh", "tanh", "sigmoid"])
def test_a_wrong_constant_or_a_version_1_removal_is_rejected(kind: str) -> None:
    from proofs import check_certificate

    net = _net(kind, [2], [0.0], 3)
    red = reduce_network(net)
    cert = red.certificate
    assert cert is not None and cert["version"] == 2
    assert check_certificate(net, red.network, cert).valid
    old = copy.deepcopy(cert)
    old["version"] = 1  # version 1 never removes under factors "one"
    v = check_certificate(net, red.network, old)
    assert not v.valid and v.condition is not None and "version 1" in v.condition
    wrong = copy.deepcopy(cert)
    entry = wrong["layers"][0]["removed"][0]
    entry["value"] = "1/3"
    v = check_certificate(net, red.network, wrong)
    assert not v.valid and v.condition == "removed neuron value"


def test_a_non_zero_tanh_constant_stays_and_identical_ones_merge() -> None:
    net = _net("tanh", [1, 4], [0.5, 0.5], 5)
    red = reduce_network(net)
    lr = red.layers[0]
    assert not lr.removed and (1, 4) in lr.blocks and lr.neurons_after == 5
    x = [Fraction(1, 3), Fraction(-2), Fraction(5, 7), Fraction(0)]
    assert evaluate_exact(net, x).tolist() == evaluate_exact(red.network, x).tolist()


def test_batch_norm_constants_are_folded() -> None:
    from proofs import check_certificate

    rng = np.random.default_rng(8)
    w1 = np.round(rng.normal(size=(5, 3)) * 4) / 4
    w1[3] = 0.0
    b1 = np.array([0.5, -0.25, 1.0, 1.5, 0.75])
    bn = BatchNorm(np.array([2.0, 0.5, 1.0, 0.25, -1.0]), np.array([0.0, 1.0, -1.0, 0.125, 2.0]))
    net = Network((Dense(w1, b1), Activation("relu"), bn,
                   Dense(np.round(rng.normal(size=(2, 5)) * 4) / 4, [0.0, 0.0])), (3,))
    red = reduce_network(net)
    lr = red.layers[0]
    assert lr.factors == "one"
    assert dict(lr.removed) == {3: Fraction(1, 4) * Fraction(3, 2) + Fraction(1, 8)}
    for x in _inputs(rng, 3):
        assert evaluate_exact(net, x[:3]).tolist() == evaluate_exact(red.network, x[:3]).tolist()
    assert check_certificate(net, red.network, red.certificate).valid


def test_clip_constant_before_a_padded_conv_stays() -> None:
    """A non-zero constant does not reach a padded conv unchanged (the padding is 0)."""
    rng = np.random.default_rng(4)
    w1 = rng.normal(size=(3, 1, 3, 3)).round(2)
    w1[1] = 0.0
    b1 = np.array([0.0, 2.0, 0.5])
    net = Network((Conv2d(w1, b1, (1, 1), (1, 1, 1, 1)), ACTS["relu6"],
                   Conv2d(rng.normal(size=(2, 3, 3, 3)).round(2), np.zeros(2), (1, 1),
                          (1, 1, 1, 1))), (1, 5, 5))
    red = reduce_network(net)
    assert not red.layers[0].removed and red.layers[0].neurons_after == 3
    # a zero constant needs no folding: removed even before a padded conv
    w1b = w1.copy()
    net0 = Network((Conv2d(w1b, np.array([0.0, -2.0, 0.5]), (1, 1), (1, 1, 1, 1)),
                    ACTS["relu6"], net.layers[2]), (1, 5, 5))
    red0 = reduce_network(net0)
    assert dict(red0.layers[0].removed) == {1: Fraction(0)}
    x = rng.normal(size=(1, 5, 5)).round(3)
    assert np.array_equal(evaluate_exact(net0, x), evaluate_exact(red0.network, x))


def test_clip_constants_keep_the_function_by_z3() -> None:
    from proofs import check_equivalence

    net = _net("relu6", [0, 3], [7.0, -3.0], 11)
    red = reduce_network(net)
    assert dict(red.layers[0].removed) == {0: Fraction(6), 3: Fraction(0)}
    assert check_equivalence(net, red.network).equivalent
    assert json.loads(json.dumps(red.certificate))["version"] == 2


def test_a_constant_whose_fold_would_round_stays() -> None:
    """hard_sigmoid(1/2) = 7/12: folded into a float64 bias it would round, so in exact mode
    the neuron stays and the reduced network is exact (not flagged rounded)."""
    net = _net("hard_sigmoid", [2, 4], [0.5, 0.0], 9)  # 7/12 and 1/2
    red = reduce_network(net)
    assert dict(red.layers[0].removed) == {4: Fraction(1, 2)}
    assert red.rounded is False and red.layers[0].neurons_after == 5
    x = [Fraction(1, 3), Fraction(-2), Fraction(5, 7), Fraction(0)]
    assert evaluate_exact(net, x).tolist() == evaluate_exact(red.network, x).tolist()


def test_folds_that_round_alone_but_not_together_are_all_made() -> None:
    """Exact mode, float network: 0.5 + 3 w (w = float(-4/3)) is no float64, but
    0.5 + 3 w + 2 is; trying the folds one at a time in neuron order kept neuron 0
    (and a second reduction removed it).  All constants go, in one pass."""
    w = -4 / 3
    net = Network((Dense(np.zeros((2, 1)), np.array([3.0, 1.0])), Activation("relu"),
                   Dense(np.array([[w, 2.0]]), np.array([0.5])), Activation("relu"),
                   Dense(np.array([[1.0]]), np.array([0.0]))), (1,))
    total = Fraction(0.5) + 3 * Fraction(w) + 2
    assert Fraction(float(Fraction(0.5) + 3 * Fraction(w))) != Fraction(0.5) + 3 * Fraction(w)
    assert Fraction(float(total)) == total
    red = reduce_network(net)
    assert dict(red.layers[0].removed) == {0: 3, 1: 1} and red.layers[0].placeholder == 0
    assert red.rounded is False and Fraction(float(red.network.layers[2].bias[0])) == total
    again = reduce_network(red.network)
    assert [lr.neurons_after for lr in again.layers] == [lr.neurons_after for lr in red.layers]
    for x in ([Fraction(-7, 3)], [Fraction(5)]):
        assert evaluate_exact(net, x).tolist() == evaluate_exact(red.network, x).tolist()


def test_tolerance_mode_on_a_network_with_rationals_stores_exact_sums() -> None:
    """A float network with one rational parameter (a PReLU slope) is held as rationals;
    in tolerance mode with a factor that is no power of two the merged weights were summed
    in float and stored as rationals, which its own certificate refused."""
    from proofs import check_certificate

    net = Network((Dense(np.array([[1.0], [1.5]]), np.array([1.0, 1.5])),
                   Activation("prelu", slopes=np.array([Fraction(1, 4)], dtype=object)),
                   Dense(np.array([[1.0, 1.0]]), np.array([0.0]))), (1,))
    assert net.exact
    for tol in (0.0, 1e-6):
        red = reduce_network(net, tolerance=tol)
        (rho,) = red.layers[0].rho
        assert red.layers[0].blocks == ((0, 1),)
        assert red.network.layers[2].weight[0, 0] == 1 + 1 / rho[1]  # exact merged sum
        res = check_certificate(net, red.network, red.certificate)
        assert res.valid, res


def test_a_fold_beyond_float64_keeps_the_neuron() -> None:
    """1e300 * 1e300 + 0.5 has no float64: the fold is refused (the constant neuron stays)
    instead of an OverflowError from deep inside."""
    net = Network((Dense(np.zeros((1, 1)), np.array([1e300])), Activation("relu"),
                   Dense(np.array([[1e300]]), np.array([0.5])), Activation("relu"),
                   Dense(np.array([[1.0]]), np.array([0.0]))), (1,))
    red = reduce_network(net)
    assert red.layers[0].removed == () and red.layers[0].neurons_after == 1
    assert red.rounded is False
    x = [Fraction(3)]
    assert evaluate_exact(net, x).tolist() == evaluate_exact(red.network, x).tolist()


def test_tolerance_mode_removes_only_neurons_whose_merged_row_is_exactly_zero() -> None:
    """Neuron 1 = 1.5 * neuron 0, so the next layer's neuron 0 has merged weight
    3 - 2 * 1.5 = 0.  Tolerance mode used to hold the factor as the float nearest 2/3;
    its exact merged weight was then -1/6004799503160661, and removing the neuron as a
    constant made the certificate invalid (it stayed).  The factor is now the exact
    ratio of the rows' largest entries, 2/3: the merged weight is exactly 0 and the
    neuron is removed, as in exact mode, with a valid certificate whose check finds the
    reduction exact."""
    from proofs import check_certificate

    net = Network((Dense(np.array([[-2.5], [-3.75]]), np.array([1.5, 2.25])),
                   Activation("identity"),
                   Dense(np.array([[3.0, -2.0], [1.0, 1.0]]), np.array([-5.0, 0.0])),
                   Activation("relu"), Dense(np.array([[1.0, 1.0]]), np.array([0.0]))), (1,))
    assert dict(reduce_network(net).layers[1].removed) == {0: 0}  # exactly: dead
    red = reduce_network(net, tolerance=1e-6)
    assert red.layers[0].blocks == ((0, 1),)
    assert red.layers[0].rho == ((Fraction(1), Fraction(2, 3)),)
    assert dict(red.layers[1].removed) == {0: 0}
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid and res.exact, res
