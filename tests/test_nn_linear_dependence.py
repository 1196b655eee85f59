"""Linear layers: neurons that are linear combinations of others are removed by default
(``linear_dependence=None``) where that is cheap, always with ``True``, never with ``False``.

Oracles: exact rational evaluation of both networks; an exact rank computed here by
Fraction Gaussian elimination (independent of nnreduce's); the certificate checker.
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nnreduce._reduce as reduce_module
from lumpcore import LumpkitWarning
from nnreduce import Activation, Dense, Network, evaluate_exact, reduce_network
from nnreduce._reduce import _independent_rows
from proofs import check_certificate


def _rank(rows: list[list[Fraction]]) -> int:
    m = [list(r) for r in rows]
    rank, col = 0, 0
    n_cols = len(m[0]) if m else 0
    while rank < len(m) and col < n_cols:
        piv = next((i for i in range(rank, len(m)) if m[i][col] != 0), None)
        if piv is None:
            col += 1
            continue
        m[rank], m[piv] = m[piv], m[rank]
        for i in range(len(m)):
            if i != rank and m[i][col] != 0:
                f = m[i][col] / m[rank][col]
                m[i] = [a - f * b for a, b in zip(m[i], m[rank], strict=True)]
        rank += 1
        col += 1
    return rank


def _vectors(layer: Dense) -> list[list[Fraction]]:
    def fr(x: Any) -> Fraction:
        return x if isinstance(x, Fraction) else Fraction(float(x))
    return [[fr(layer.bias[i])] + [fr(x) for x in layer.weight[i]]
            for i in range(layer.weight.shape[0])]


def _q(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return np.array([Fraction(int(rng.integers(-5, 6)), int(rng.integers(1, 4)))
                     for _ in range(int(np.prod(shape)))], dtype=object).reshape(shape)


def _same(a: Network, b: Network, rng: np.random.Generator, n: int = 4) -> None:
    for _ in range(n):
        x = [Fraction(int(rng.integers(-20, 21)), int(rng.integers(1, 5)))
             for _ in range(a.input_shape[0])]
        assert evaluate_exact(a, x).tolist() == evaluate_exact(b, x).tolist()


def _tall_identity_net(rng: np.random.Generator) -> Network:
    """2 inputs -> 6 identity neurons (at most 3 independent: 2 weights and a bias)."""
    return Network((Dense(_q(rng, 6, 2), _q(rng, 6)), Activation("identity"),
                    Dense(_q(rng, 3, 6), _q(rng, 3)), Activation("relu"),
                    Dense(_q(rng, 1, 3), _q(rng, 1))), (2,))


def test_default_removes_linear_combinations_of_a_small_linear_layer() -> None:
    rng = np.random.default_rng(0)
    net = _tall_identity_net(rng)
    want = _rank(_vectors(net.layers[0]))
    red = reduce_network(net)
    lr = red.layers[0]
    assert lr.neurons_after == want <= 3 and lr.combined
    assert _rank(_vectors(red.network.layers[0])) == lr.neurons_after  # independent now
    assert [x.combined for x in red.layers] == \
        [x.combined for x in reduce_network(net, linear_dependence=True).layers]
    assert reduce_network(net, linear_dependence=False).layers[0].combined == ()
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid and res.exact, res
    _same(net, red.network, rng)


def test_over_the_budget_the_default_warns_and_true_still_searches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    net = _tall_identity_net(np.random.default_rng(1))
    monkeypatch.setattr(reduce_module, "_DEPENDENCE_BUDGET", 5)
    with pytest.warns(LumpkitWarning, match=r"layer 0 \(linear.*linear_dependence=True"):
        red = reduce_network(net)
    assert red.layers[0].combined == ()
    assert red.layers[0].neurons_after == reduce_network(
        net, linear_dependence=False).layers[0].neurons_after
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        forced = reduce_network(net, linear_dependence=True)
    assert forced.layers[0].combined


def test_full_rank_layers_are_proved_so_in_floats() -> None:
    rng = np.random.default_rng(2)
    w = rng.normal(size=(40, 60)).astype(np.float32).astype(np.float64)
    assert _independent_rows(w, rng.normal(size=40), list(range(40)))
    # an exact dependence (row 3 = row 0 - 2 row 1, exact in float64 for these values)
    w2 = rng.integers(-50, 50, size=(5, 8)).astype(np.float64)
    b2 = rng.integers(-50, 50, size=5).astype(np.float64)
    w2[3], b2[3] = w2[0] - 2 * w2[1], b2[0] - 2 * b2[1]
    assert not _independent_rows(w2, b2, list(range(5)))
    assert not _independent_rows(w2[:, :2], b2, [0, 1, 2, 4])  # more rows than coordinates


@st.composite
def _dependent_matrices(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(2, 6))
    m = draw(st.integers(n, 8))
    vals = st.integers(-2**20, 2**20).map(lambda k: k / 2**10)
    rows = [[draw(vals) for _ in range(m + 1)] for _ in range(n - 1)]
    coef = [draw(st.integers(-3, 3)) for _ in range(n - 1)]
    rows.append([sum(c * r[j] for c, r in zip(coef, rows, strict=True)) for j in range(m + 1)])
    a = np.array(rows, dtype=np.float64)
    return a[:, 1:], a[:, 0]


@settings(max_examples=200, deadline=None)
@given(_dependent_matrices())
def test_the_float_screen_never_calls_dependent_rows_independent(case: Any) -> None:
    w, b = case
    assert not _independent_rows(w, b, list(range(w.shape[0])))


@st.composite
def _linear_nets(draw: st.DrawFn) -> tuple[Network, int]:
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    n_in = draw(st.integers(1, 3))
    width = draw(st.integers(2, 6))
    w, b = _q(rng, width, n_in), _q(rng, width)
    for _ in range(draw(st.integers(0, 2))):  # plant combinations of earlier rows
        c = _q(rng, w.shape[0])
        w = np.vstack([w, (c[:, None] * w).sum(axis=0)[None, :]])
        b = np.append(b, (c * b).sum()).astype(object)
    order = rng.permutation(w.shape[0])
    w, b = w[order], b[order]
    n = w.shape[0]
    net = Network((Dense(w, b), Activation("identity"), Dense(_q(rng, 2, n), _q(rng, 2)),
                   Activation(draw(st.sampled_from(["relu", "identity"]))),
                   Dense(_q(rng, 1, 2), _q(rng, 1))), (n_in,))
    return net, seed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_linear_nets())
def test_property_default_leaves_independent_neurons_and_the_same_function(case: Any) -> None:
    net, seed = case
    red = reduce_network(net)
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid and res.exact, res
    _same(net, red.network, np.random.default_rng(seed), 3)
    lin = [lyr for lyr in red.network.layers if isinstance(lyr, Dense)]
    for layer, lr in zip(lin[:-1], red.layers, strict=True):
        if lr.factors == "nonzero":
            rows = _vectors(layer)
            assert _rank(rows) == len(rows), lr  # no neuron is a combination of the others


@pytest.mark.parametrize("k, out, combines", [(0, [0.5, 0.75, 1.0], True),
                                               (40, [0.5, 0.75, 1.0], True),
                                               (40, [0.3, 0.7, 1.0], False),
                                               (60, [0.5, 0.75, 1.0], False)])
def test_float_networks_combine_only_where_float64_holds_the_fold(
        k: int, out: list[float], combines: bool) -> None:
    """Hidden rows r0 = x, r1 = x + 2^-k y, t = y = 2^k (r1 - r0): removing t adds 2^k
    times its outgoing weight to those of r0 and r1.  0.75 + 2^40 is a float64, 0.7 + 2^40
    and 0.75 + 2^60 are not: the rounded weights would cancel badly, so t stays.  Either
    way the reduced float network is the same function."""
    e = 2.0 ** -k
    net = Network((Dense(np.array([[1.0, 0.0], [1.0, e], [0.0, 1.0]]), np.zeros(3)),
                   Activation("identity"),
                   Dense(np.array([out]), np.zeros(1))), (2,))
    red = reduce_network(net)
    assert red.layers[0].neurons_after == (2 if combines else 3)
    assert not red.rounded
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid and res.exact, res
    _same(net, red.network, np.random.default_rng(k))


def test_checking_the_float_folds_is_bounded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Combinations found in a small layer, but the next layer is wide: checking that its
    float weights hold the folds would cost more than the budget, so by default nothing is
    combined (a warning says why); ``True`` checks and folds anyway."""
    rng = np.random.default_rng(7)

    def dyadic(*shape: int) -> np.ndarray:
        return rng.integers(-8, 9, size=shape) / 4.0

    w = dyadic(3, 2)
    w = np.vstack([w, w[0] + w[1], 2 * w[2] - w[0]])
    b = dyadic(3)
    b = np.append(b, [b[0] + b[1], 2 * b[2] - b[0]])
    net = Network((Dense(w, b), Activation("identity"), Dense(dyadic(200, 5), dyadic(200)),
                   Activation("relu"), Dense(dyadic(1, 200), dyadic(1))), (2,))
    monkeypatch.setattr(reduce_module, "_DEPENDENCE_BUDGET", 500)
    with pytest.warns(LumpkitWarning, match=r"layer 0 \(linear\).*too costly"):
        red = reduce_network(net)
    assert red.layers[0].combined == () and red.layers[0].neurons_after == 5
    forced = reduce_network(net, linear_dependence=True)
    assert forced.layers[0].neurons_after == 3 and not forced.rounded
    assert forced.network.layers[2].weight.dtype == np.float64  # folds held exactly
    res = check_certificate(net, forced.network, forced.certificate)
    assert res.valid and res.exact, res
    _same(net, forced.network, rng)


def test_float_network_removes_another_neuron_of_the_dependence_when_that_folds() -> None:
    """t = r0 / 3 + r1: folding 1/3 into float weights would round, but r0 = 3 t - 3 r1
    folds exactly, so r0 goes instead (outgoing weights [1, 1, 1] become [-2, 4])."""
    net = Network((Dense(np.array([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.zeros(3)),
                   Activation("identity"), Dense(np.array([[1.0, 1.0, 1.0]]), np.zeros(1))),
                  (2,))
    red = reduce_network(net)
    lr = red.layers[0]
    assert lr.blocks == ((1,), (2,)) and not red.rounded
    assert lr.combined == (((0,), (Fraction(1),), ((1, Fraction(-3)), (2, Fraction(3)))),)
    assert red.network.layers[2].weight.tolist() == [[-2.0, 4.0]]
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid and res.exact, res
    _same(net, red.network, np.random.default_rng(8))


@st.composite
def _float_linear_nets(draw: st.DrawFn) -> tuple[Network, int]:
    """Integer float weights; planted rows a * row_i + c * row_j with a, c in {1/3, 1/2, 1,
    2, 3, -1}, whose folds round or not depending on the next layer's weights."""
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    n_in = draw(st.integers(1, 3))
    w = rng.integers(-4, 5, size=(draw(st.integers(2, 4)), n_in)).astype(np.float64)
    b = rng.integers(-4, 5, size=w.shape[0]).astype(np.float64)
    coefs = [1 / 3, 1 / 2, 1.0, 2.0, 3.0, -1.0]
    for _ in range(draw(st.integers(1, 3))):
        i, j = rng.choice(w.shape[0], size=2, replace=False)
        a, c = coefs[rng.integers(0, 6)], coefs[rng.integers(0, 6)]
        row, bias = a * w[i] + c * w[j], a * b[i] + c * b[j]
        if all(Fraction(float(x)) == Fraction(a) * Fraction(w[i, k]) + Fraction(c)
               * Fraction(w[j, k]) for k, x in enumerate(row)):  # only rows float64 holds
            w, b = np.vstack([w, row]), np.append(b, bias)
    n = w.shape[0]
    w2 = rng.integers(-6, 7, size=(2, n)).astype(np.float64) * draw(st.sampled_from([1.0, 0.1]))
    net = Network((Dense(w, b), Activation("identity"), Dense(w2, np.zeros(2)),
                   Activation("relu"), Dense(np.ones((1, 2)), np.zeros(1))), (n_in,))
    return net, seed


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_float_linear_nets())
def test_property_float_combinations_stay_exact(case: Any) -> None:
    net, seed = case
    red = reduce_network(net)
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid, res
    # proportional merges may round float sums (flagged); combinations never add rounding
    if not reduce_network(net, linear_dependence=False).rounded:
        assert not red.rounded and res.exact, res
        _same(net, red.network, np.random.default_rng(seed), 3)
    # the kept neurons span every neuron's vector but the constants' (zero weights, folded
    # into the next bias) and the unread ones' (zero weights into the next layer)
    first, second = net.layers[0], net.layers[2]
    assert isinstance(first, Dense) and isinstance(second, Dense)
    spanned = [vec for i, vec in enumerate(_vectors(first))
               if any(vec[1:]) and np.any(second.weight[:, i] != 0)]
    assert red.layers[0].neurons_after >= _rank(spanned)
