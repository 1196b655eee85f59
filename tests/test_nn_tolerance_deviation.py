"""Tolerance mode: the reported ``max_weight_deviation`` bounds the exact deviation.

In tolerance mode the merged rows are float64 sums.  Terms that cancel
(``1 + 2**-60 - 1``) leave a float sum far from the exact one, relative to the
sum itself; the bound must cover that distance, or the certificate (whose
conditions are about the exact merged rows) is refused.  The oracle here
computes the exact deviation from the reduction's blocks and factors and the
original weights, in rational arithmetic, independently of nnreduce and of
the certificate checker.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnreduce._reduce as nnreduce_reduce
from nnreduce import Activation, Dense, Network, Reduction, reduce_network
from proofs import check_certificate


def _block_sums(w: Any, b: Any, v: int, blocks: list[tuple[int, ...]],
                rho: dict[int, Fraction], removed: tuple[tuple[int, Fraction], ...]
                ) -> list[Fraction]:
    """``c(v)``: the bias (removed constants folded in), then ``sum_u W(v, u) / rho(u)`` per
    block of the previous layer, exactly."""
    bias = Fraction(float(b[v])) + sum(
        (Fraction(float(w[v, u])) * val for u, val in removed), Fraction(0))
    return [bias] + [sum((Fraction(float(w[v, u])) / rho[u] for u in blk), Fraction(0))
                     for blk in blocks]


def _exact_deviation(net: Network, red: Reduction) -> Fraction:
    """``max |rho(v) c(v) - c(r)|`` over merged neurons, ``c`` the exact scaled block sums
    of THEORY section 3 (:func:`_block_sums`)."""
    dense = [lyr for lyr in net.layers if isinstance(lyr, Dense)]
    worst = Fraction(0)
    n_in = dense[0].weight.shape[1]
    blocks: list[tuple[int, ...]] = [(u,) for u in range(n_in)]
    rho_of: dict[int, Fraction] = {u: Fraction(1) for u in range(n_in)}
    removed: tuple[tuple[int, Fraction], ...] = ()
    for k, lr in enumerate(red.layers):
        w, b = dense[k].weight, dense[k].bias
        for blk, rho in zip(lr.blocks, lr.rho, strict=True):
            ref = _block_sums(w, b, blk[0], blocks, rho_of, removed)
            for v, r in zip(blk[1:], rho[1:], strict=True):
                got = _block_sums(w, b, v, blocks, rho_of, removed)
                worst = max([worst, *(abs(r * x - y) for x, y in zip(got, ref, strict=True))])
        blocks = list(lr.blocks)
        rho_of = {v: r for blk, rho in zip(lr.blocks, lr.rho, strict=True)
                  for v, r in zip(blk, rho, strict=True)}
        removed = lr.removed
    return worst


def _cancelling_net(scale_first: float = 2.0**-100) -> Network:
    """Three identical neurons feed two neurons with weights ``1, e, -1`` and ``1, e/2, -1``
    (``e = 2**-60``): their float merged rows are equal, their exact ones differ by
    ``2**-61``.  Every other weight is small, so no other margin hides the difference."""
    w1 = np.array([[1.0, 0.5], [1.0, 0.5], [1.0, 0.5], [0.3, -0.7]]) * scale_first
    b1 = np.array([0.1, 0.1, 0.1, 0.2]) * scale_first
    e, t = 2.0**-60, 2.0**-70
    w2 = np.array([[1.0, e, -1.0, 0.0], [1.0, e / 2, -1.0, 0.0],
                   [0.5 * 2.0**-100, 0.25 * 2.0**-100, 0.125 * 2.0**-100, -(2.0**-100)]])
    b2 = np.array([t, t, 0.3])
    return Network((Dense(w1, b1), Activation("relu"), Dense(w2, b2), Activation("relu"),
                    Dense(np.array([[1.0, -2.0, 0.5]]), np.zeros(1))), (2,))


@pytest.fixture(params=["compiled merge", "general merge"])
def merge_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test through the compiled merge pass and through ``_merge`` (the pass
    declined), which compute the float merged rows in different places."""
    if request.param == "general merge":
        monkeypatch.setattr(nnreduce_reduce, "_fast_merge", lambda *a, **k: None)
    return str(request.param)


def test_cancelling_float_merge_is_within_the_reported_deviation(merge_path: str) -> None:
    net = _cancelling_net()
    red = reduce_network(net, tolerance=1e-9)
    assert red.layers[1].blocks[0][:2] == (0, 1)  # the two neurons were merged
    exact = _exact_deviation(net, red)
    assert exact >= Fraction(2) ** -61  # the float merge hid a real difference
    assert exact <= Fraction(red.max_weight_deviation)
    assert red.certificate is not None
    result = check_certificate(net, red.network, red.certificate)
    assert result.valid, result


_TINY = st.integers(20, 75).map(lambda k: 2.0**-k)
_WEIGHT = st.sampled_from([0.0, 1.0, -1.0, 3.0, -0.5, 0.375]) | _TINY | _TINY.map(lambda x: -x)


@st.composite
def _nets(draw: st.DrawFn) -> Network:
    """Layer 1: groups of identical or scaled copies of a few neurons.  Layer 2: rows of
    large and tiny weights, and planted pairs of rows that differ only in a tiny weight
    between two that cancel within one group (their float sums agree, their exact sums
    do not), every other weight of theirs zero and their bias tiny, so that no margin
    relative to the merged values covers the difference."""
    n_in = draw(st.integers(1, 3))
    act = draw(st.sampled_from(["relu", "identity"]))
    rows1: list[list[float]] = []
    bias1: list[float] = []
    groups: list[list[tuple[int, float]]] = []  # (neuron, its factor over the group's base)
    for _ in range(draw(st.integers(1, 3))):
        base = [draw(st.sampled_from([1.0, -1.0, 0.5, 2.0, -3.0])) for _ in range(n_in)]
        b = draw(st.sampled_from([0.0, 0.25, -1.0]))
        groups.append([])
        for _ in range(draw(st.integers(1, 4))):
            f = draw(st.sampled_from([1.0, 2.0, 0.5, 3.0] + ([-2.0] if act == "identity"
                                                             else [])))
            groups[-1].append((len(rows1), f))
            rows1.append([f * x for x in base])
            bias1.append(f * b)
    n1 = len(rows1)
    size = draw(st.sampled_from([1.0, 2.0**-50, 2.0**-100]))
    rows2, bias2 = [], []
    for _ in range(draw(st.integers(1, 3))):
        rows2.append([draw(_WEIGHT) for _ in range(n1)])
        bias2.append(draw(_WEIGHT))
    for grp in groups:
        if len(grp) < 3 or not draw(st.booleans()):
            continue
        (i, fi), (j, fj), (k, fk) = draw(st.permutations(grp))[:3]
        big, tiny, b = (draw(st.sampled_from([1.0, -2.0, 0.75])), draw(_TINY),
                        draw(_TINY))
        for t in (tiny, tiny / 2):
            # terms w / rho(u) = w * f(u) / f(rep): big, about t, -big
            twin = [0.0] * n1
            twin[i], twin[j], twin[k] = big / fi, t / fj, -big / fk
            rows2.append(twin)
            bias2.append(b)
    w1 = np.array(rows1) * size
    w2 = np.array(rows2)
    out = np.array([[draw(st.sampled_from([1.0, -1.0, 0.5])) for _ in range(len(rows2))]])
    return Network((Dense(w1, np.array(bias1) * size), Activation(act), Dense(w2,
                    np.array(bias2)), Activation(act), Dense(out, np.zeros(1))), (n_in,))


@settings(max_examples=80, deadline=None)
@given(net=_nets(), tol=st.sampled_from([1e-12, 1e-9, 1e-6]), general=st.booleans())
def test_reported_deviation_bounds_the_exact_one(net: Network, tol: float,
                                                 general: bool) -> None:
    with pytest.MonkeyPatch.context() as mp:
        if general:  # as the merge_path fixture's "general merge"
            mp.setattr(nnreduce_reduce, "_fast_merge", lambda *a, **k: None)
        red = reduce_network(net, tolerance=tol)
    assert _exact_deviation(net, red) <= Fraction(red.max_weight_deviation)
    assert red.certificate is not None
    result = check_certificate(net, red.network, red.certificate)
    assert result.valid, result


def _dense(w: list[list[float]], b: list[float]) -> Dense:
    return Dense(np.array(w, dtype=float), np.array(b, dtype=float))


def test_the_merge_error_bound_pairs_each_weight_with_its_own_scale(merge_path: str) -> None:
    """The bound of the float merge's error is the size of its largest *term* w / rho: a
    large weight and a large 1 / rho in different terms must not be multiplied (that made
    the bound infinite, a crash, or 10^15 for an exact merge)."""
    first = _dense([[1.0], [2.0**100], [-1.0]], [0, 0, 0])  # 0 and 1 merge, rho 2^-100
    big = Network((first, Activation("relu"),
                   _dense([[1.0, 1.0, 2.0**1020], [1.0, 1.0, 2.0**1020]], [0, 0]),
                   Activation("relu"), _dense([[1.0, 1.0]], [0])), (1,))
    red = reduce_network(big, tolerance=1e-9)
    assert np.isfinite(red.max_weight_deviation)
    assert _exact_deviation(big, red) <= Fraction(red.max_weight_deviation)
    assert check_certificate(big, red.network, red.certificate).valid
    exact = Network((first, Activation("relu"),
                     _dense([[1.0, 2.0**-100, 1.0], [1.0, 2.0**-100, 1.0]], [0, 0]),
                     Activation("relu"), _dense([[1.0, 1.0]], [0])), (1,))
    red = reduce_network(exact, tolerance=1e-9)
    assert _exact_deviation(exact, red) == 0
    assert red.max_weight_deviation < 1e-10  # terms of size 1: a bound of that order
    assert check_certificate(exact, red.network, red.certificate).valid


def test_rows_of_subnormal_weights_are_normalised_without_overflow(merge_path: str) -> None:
    tiny = 2.0**-1074
    net = Network((_dense([[tiny, 0.0], [2 * tiny, 0.0], [1.0, 2.0]], [0, 0, 0]),
                   Activation("relu"), _dense([[1.0, 1.0, 1.0]], [0])), (2,))
    red = reduce_network(net, tolerance=1e-9)
    assert red.layers[0].blocks == ((0, 1), (2,))
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid, res


def test_values_beyond_float64_range_get_a_clear_error_or_stay() -> None:
    # a factor of 2^1024 between merged neurons: refused with a clear error, both modes
    net = Network((_dense([[2.0**512] * 2, [2.0**-512] * 2, [0.3, -0.7]], [0, 0, 0]),
                   Activation("relu"), _dense([[1, 1, 1], [2, -1, 0.5]], [0, 0]),
                   Activation("relu"), _dense([[1.0, -2.0]], [0])), (2,))
    for tol in (0.0, 1e-9):
        with pytest.raises(ValueError, match="beyond float64's range"):
            reduce_network(net, tolerance=tol)
    # a constant whose fold would be 2^1200: it stays (exact mode did so already)
    net = Network((_dense([[0.0]], [2.0**600]), Activation("relu"),
                   _dense([[2.0**600]], [0.0])), (1,))
    for tol in (0.0, 1e-9):
        red = reduce_network(net, tolerance=tol)
        assert red.layers[0].removed == () and not red.network.exact
        assert check_certificate(net, red.network, red.certificate).valid


def test_values_that_underflow_are_within_the_bounds(merge_path: str) -> None:
    """Below 2^-1022 float64 loses absolute precision: a merged weight T + T/3 (T the
    smallest subnormal) is stored rounded, and folded biases 2^-1200 and 2^-1201 become 0
    in float; the stored-weight rule and the deviation bound allow for it."""
    tiny = 2.0**-1074
    net = Network((_dense([[3.0], [1.0]], [0, 0]), Activation("relu"),
                   _dense([[tiny, tiny]], [0.0])), (1,))
    red = reduce_network(net, tolerance=1e-9)
    assert red.layers[0].blocks == ((0, 1),)
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid, res
    net = Network((_dense([[0.0], [1.0]], [2.0**-600, 0.0]), Activation("relu"),
                   _dense([[2.0**-600, 0.0], [2.0**-601, 0.0], [0.0, 1.0]], [0, 0, 0]),
                   Activation("tanh"), _dense([[1.0, 1.0, 1.0]], [0])), (1,))
    red = reduce_network(net, tolerance=1e-9)
    assert red.layers[1].blocks[0][:2] == (0, 1)  # merged: their float biases are both 0
    assert Fraction(2) ** -1201 <= _exact_deviation(net, red) <= Fraction(
        red.max_weight_deviation)
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid, res


def test_a_float_sum_that_overflows_in_its_order_uses_the_exact_sum() -> None:
    """2^1023 + 2^1023 - 2^1023 overflows in float64 from left to right, but the exact
    merged weight 2^1023 fits: tolerance mode uses it (it refused the network before);
    a merged weight of 2^1024 gets a clear error."""
    fits = Network((_dense([[1.0], [1.0], [1.0]], [0, 0, 0]), Activation("relu"),
                    _dense([[2.0**1023, 2.0**1023, -(2.0**1023)]], [0.0])), (1,))
    red = reduce_network(fits, tolerance=1e-9)
    assert red.network.layers[2].weight.tolist() == [[2.0**1023]]
    assert check_certificate(fits, red.network, red.certificate).valid
    beyond = Network((_dense([[1.0], [1.0]], [0, 0]), Activation("relu"),
                      _dense([[2.0**1023, 2.0**1023]], [0.0])), (1,))
    with pytest.raises(ValueError, match="beyond float64's range"):
        reduce_network(beyond, tolerance=1e-9)


def test_a_factor_that_underflows_gets_a_clear_error() -> None:
    """A merged row cancels to 2^-449 (3 - 3 + 2^-449) and tolerance mode groups it with
    rows of size 2^716: their factor (about 2^-1165) has no float64 value.  It was
    stored as 0 and divided by (ZeroDivisionError); exact mode merges them exactly."""
    h = float.fromhex
    w2 = np.array([[3.0, -1.0, h("0x1.8p-448")]]
                  + [[x, h("0x1.5555555555555p+756"), -1.5 * 2.0**759]
                     for x in (2.0**718, 2.0**717, 1.5 * 2.0**718, 2.0**718)]
                  + [[-h("0x1.aaaaaaaaaaaaap+759"), h("0x1.5555555555555p+756"),
                      1.5 * 2.0**759]])
    net = Network((Dense(np.array([[1.0], [3.0], [1 / 3]]), np.array([0.25, 0.75, 0.25 / 3])),
                   Activation("identity"), Dense(w2, np.array([0, 0, 0, 0, 0, 0.5])),
                   Activation("relu"), Dense(-np.ones((1, 6)), np.zeros(1))), (1,))
    with pytest.raises(ValueError, match="beyond float64's range"):
        reduce_network(net, tolerance=0.01)
    red = reduce_network(net)
    assert red.layers[1].blocks == ((0, 1, 2, 3, 4), (5,))
    assert check_certificate(net, red.network, red.certificate).valid


def test_the_reported_deviation_is_tight_for_large_weights() -> None:
    """Rows (1e6, 1) and (1e6, 1 + 2^-40) merge at tolerance 1e-9; their deviation is
    2^-40.  A margin of 2^-40 of the values' size reported about 2e-6 (the order of the
    tolerance itself); the exact error terms of the product and the difference give
    2^-40."""
    net = Network((_dense([[1e6, 1.0], [1e6, 1.0 + 2.0**-40]], [0, 0]), Activation("relu"),
                   _dense([[1.0, 1.0]], [0])), (2,))
    red = reduce_network(net, tolerance=1e-9)
    exact = _exact_deviation(net, red)
    assert exact == Fraction(2) ** -40
    assert exact <= Fraction(red.max_weight_deviation) <= exact * (1 + Fraction(1, 2**30))
    assert check_certificate(net, red.network, red.certificate).valid


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exactly_proportional_rows_get_exact_factors(merge_path: str, dtype: type) -> None:
    """Rows that are exactly 3, 5, 3/4 or 3/2 times others (dyadic weights: the products
    are exact floats) are merged in tolerance mode with those factors exactly, not with
    the floats nearest their reciprocals: the exact deviation (oracle above) is 0, the
    certificate's check finds the reduction exact, and the reduced network computes the
    original function exactly."""
    from nnreduce import evaluate_exact

    rng = np.random.default_rng(3)
    factors = [3.0, 5.0, 0.75, 1.5]
    base = rng.integers(-8, 9, size=(4, 3)) / 4.0
    base[:, 0] = np.where(base[:, 0] == 0, 0.25, base[:, 0])
    bias = rng.integers(-8, 9, size=4) / 4.0
    f = np.array(factors)
    w1 = np.vstack([base, f[:, None] * base]).astype(dtype)
    b1 = np.concatenate([bias, f * bias]).astype(dtype)
    w2 = (rng.integers(-8, 9, size=(2, 8)) / 8.0).astype(dtype)
    net = Network((Dense(w1, b1), Activation("relu"), Dense(w2, np.zeros(2, dtype=dtype))),
                  (3,))
    red = reduce_network(net, tolerance=1e-9)
    lr = red.layers[0]
    assert lr.blocks == ((0, 4), (1, 5), (2, 6), (3, 7))
    # neuron 4 + i = f_i * neuron i: its factor (rep ~ rho * member) is 1 / f_i
    assert [r[1] for r in lr.rho] == [1 / Fraction(x) for x in factors]
    assert _exact_deviation(net, red) == 0
    assert red.certificate is not None
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid and res.exact, res
    for _ in range(4):
        x = np.array([Fraction(int(rng.integers(-20, 21)), int(rng.integers(1, 5)))
                      for _ in range(3)], dtype=object)
        assert list(evaluate_exact(net, x)) == list(evaluate_exact(red.network, x))


_ENTRY = (st.sampled_from([0.0, 1.0, -3.0, 0.1, 2.0**-1074, 2.0**-1030]) |
          st.floats(-1e300, 1e300, allow_nan=False, allow_subnormal=True))


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.lists(_ENTRY, min_size=3, max_size=3),
                               st.lists(_ENTRY, min_size=3, max_size=3)),
                     min_size=1, max_size=4),
       rho=st.lists(st.sampled_from([1.0, -1.0, 3.0, 1 / 3, 2.0**-600, 2.0**700, 0.7]) |
                    st.floats(-1e10, 1e10, allow_nan=False).filter(lambda r: r != 0),
                    min_size=4, max_size=4),
       rounded=st.booleans())
def test_deviation_kernel_bounds_the_exact_deviation_tightly(
        rows: list[tuple[list[float], list[float]]], rho: list[float], rounded: bool) -> None:
    """The compiled bound of ``max |rho x - y|`` (its branch-free loop for rows whose
    products lie in the two-product's range, its checked loop for the others) against
    the exact maximum in rational arithmetic: never below it, and at most a relative
    ``2**-40`` plus ``2**-1070 (|rho| + 1)`` above it."""
    from nnreduce._kernels import deviation_bound

    if rounded:  # y = fl(rho x): the deviation is the products' rounding errors alone
        with np.errstate(all="ignore"):
            rows = [(xs, [float(np.float64(rho[j]) * x) for x in xs])
                    for j, (xs, _) in enumerate(rows)]
        if not all(np.isfinite(y) for _, ys in rows for y in ys):
            return
    mb = np.array([v for pair in rows for v in pair], dtype=np.float64)
    n = len(rows)
    members = np.arange(0, 2 * n, 2, dtype=np.int64)
    reps = members + 1
    r = np.array(rho[:n], dtype=np.float64)
    with np.errstate(all="ignore"):
        got = deviation_bound(mb, members, reps, r)
    exact = max(abs(Fraction(r[j]) * Fraction(x) - Fraction(y))
                for j, (xs, ys) in enumerate(rows) for x, y in zip(xs, ys, strict=True))
    if not np.isfinite(got):  # only a deviation near float64's limit overflows
        assert exact >= Fraction(2) ** 1000
        return
    assert Fraction(got) >= exact
    lo, hi = Fraction(2) ** -899, Fraction(2) ** 899
    in_range = all(abs(Fraction(r[j])) <= hi and all(
        x == 0 or (abs(Fraction(x)) <= hi and lo <= abs(Fraction(r[j]) * Fraction(x)) <= hi)
        for x in xs) for j, (xs, _) in enumerate(rows))
    if in_range:  # every product exact by two-product: the bound is tight
        slack = Fraction(max(2.0**-1072 * (abs(x) + 1.0) for x in r))
        assert Fraction(got) <= exact * (1 + Fraction(1, 2**40)) + slack


@settings(max_examples=100, deadline=None)
@given(w=st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=5,
                           max_size=5), min_size=1, max_size=6),
       scale=st.lists(st.sampled_from([1.0, -1.0, 0.25, -4.0, 3.0, 1 / 3, 0.0, 2.0**-600,
                                       2.0**200]), min_size=5, max_size=5))
def test_merge_pass_records_each_rows_largest_term(w: list[list[float]],
                                                   scale: list[float]) -> None:
    """The tolerance merge pass's ``term_max`` (the size of the terms whose float sums may
    cancel, for the error bound of the merged rows) is each row's largest
    ``|w * scale|`` over the inputs merged into a column (``abs_scale`` 0: none),
    against the exact maximum of the products (rounded once, as the pass computes them):
    equal, never a loose float maximum."""
    from lumpcore._dense import signature_coefficients
    from nnreduce._kernels import merge_columns, runs

    wa = np.array(w, dtype=np.float32)
    n, m = wa.shape
    sc = np.array(scale, dtype=np.float64)
    first = np.arange(m, dtype=np.int64)  # every input its own merged column
    abs_scale = np.abs(sc)
    out = np.empty((n, 1 + m))
    term_max = np.full(n, -1.0)
    empty_i = np.zeros(0, dtype=np.int64)
    with np.errstate(all="ignore"):
        merge_columns(wa, np.zeros(n), runs(first, first), sc, 1 / np.where(sc == 0, 1, sc),
                      runs(empty_i, empty_i), np.zeros(0), np.zeros(0), False, out,
                      np.empty((0, 0)), False, signature_coefficients(1 + m), True, 0.0,
                      *(np.zeros(0, dtype=d) for d in (np.float64, np.float64, np.int64,
                                                       np.float64, np.int8, np.bool_)),
                      term_max, abs_scale, 0)
    def rounded(q: Fraction) -> float:
        try:
            return float(q)  # correctly rounded
        except OverflowError:
            return math.inf

    for i in range(n):
        want = max(rounded(abs(Fraction(float(wa[i, f])) * Fraction(abs_scale[f])))
                   for f in range(m))
        assert term_max[i] == want
