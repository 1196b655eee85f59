"""The compiled float path of ``reduce_network`` against the general path and exact evaluation.

Float networks take a compiled path (one pass building the layer's graph,
then lumpcore's dense biadjacency path).  Oracles:
* the general path of the same reduction (forced by disabling the compiled
  merge): same blocks, factors, removed neurons and reduced weights;
* exact rational evaluation of the original and the reduced network on
  random inputs of both signs (exact mode);
* the planted neuron count (known by construction).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nnreduce._reduce as red_mod
from nnreduce import (
    Activation,
    Conv2d,
    Dense,
    Flatten,
    MaxPool2d,
    Network,
    evaluate,
    evaluate_exact,
    load_network,
    reduce_network,
    save_network,
)

ACTS = ["relu", "leaky_relu", "identity", "tanh"]


def _act(kind: str) -> Activation:
    return Activation(kind, alpha=Fraction(1, 8)) if kind == "leaky_relu" else Activation(kind)


def _planted_mlp(rng: np.random.Generator, sizes: list[int], kinds: list[str], dup: int,
                 pow2: bool) -> tuple[Network, list[int]]:
    """An MLP whose hidden layers get ``dup`` extra neurons each, multiples of existing ones."""
    layers: list[Any] = []
    planted_sizes = []
    prev_map: list[tuple[int, float]] = [(j, 1.0) for j in range(sizes[0])]
    for k in range(len(sizes) - 1):
        base = rng.standard_normal((sizes[k + 1], sizes[k])).astype(np.float32).astype(np.float64)
        bias = rng.standard_normal(sizes[k + 1]).astype(np.float32).astype(np.float64)
        hidden = k < len(sizes) - 2
        # columns: a copy with factor f gets base / 4, its original base * (1 - sum f / 4),
        # so that the merged column sum_u w(u) * f(u) is base again (all exact dyadics)
        w_cols = np.zeros((sizes[k + 1], len(prev_map)))
        for c, (orig, _f) in enumerate(prev_map):
            if c < sizes[k]:
                rest = sum(g for o, g in prev_map[sizes[k]:] if o == orig)
                w_cols[:, c] = base[:, orig] * (1.0 - rest / 4.0)
            else:
                w_cols[:, c] = base[:, orig] * 0.25
        rows = [(i, 1.0) for i in range(sizes[k + 1])]
        if hidden:
            kind = kinds[k]
            for _ in range(dup):
                i = int(rng.integers(0, sizes[k + 1]))
                if kind == "tanh":
                    f = 1.0
                elif pow2:
                    f = float(2.0 ** int(rng.integers(-2, 3)))
                else:
                    f = float(rng.choice([3.0, 0.75, 1.5]))
                if kind == "identity" and rng.random() < 0.5:
                    f = -f
                rows.append((i, f))
        w = np.stack([w_cols[i] * f for i, f in rows])
        b = np.array([bias[i] * f for i, f in rows])
        layers.append(Dense(w, b))
        if hidden:
            layers.append(_act(kinds[k]))
            planted_sizes.append(sizes[k + 1])
        prev_map = rows
    return Network(tuple(layers), (sizes[0],)), planted_sizes


def _random_planted_mlp(rng: np.random.Generator, depth: int, dup: int, pow2: bool,
                        data: st.DataObject) -> tuple[Network, list[int]]:
    """:func:`_planted_mlp` with random sizes and activations (drawn by hypothesis)."""
    sizes = [int(rng.integers(1, 5))] + [int(rng.integers(1, 6)) for _ in range(depth)] + [2]
    kinds = [data.draw(st.sampled_from(ACTS)) for _ in range(depth)]
    return _planted_mlp(rng, sizes, kinds, dup, pow2)


def _general(monkeypatch: pytest.MonkeyPatch, net: Network, **kw: Any) -> Any:
    with monkeypatch.context() as mp:
        mp.setattr(red_mod, "_fast_merge", lambda *a, **k: None)
        return reduce_network(net, **kw)


def _same_reduction(a: Any, b: Any, exact: bool) -> None:
    assert [lr.blocks for lr in a.layers] == [lr.blocks for lr in b.layers]
    assert [lr.removed for lr in a.layers] == [lr.removed for lr in b.layers]
    if exact:
        assert [lr.rho for lr in a.layers] == [lr.rho for lr in b.layers]
    else:
        for la, lb in zip(a.layers, b.layers, strict=True):
            for ra, rb in zip(la.rho, lb.rho, strict=True):
                assert np.allclose([float(x) for x in ra], [float(x) for x in rb], rtol=1e-12)
    for la, lb in zip(a.network.layers, b.network.layers, strict=True):
        assert type(la) is type(lb)
        if isinstance(la, Dense | Conv2d):
            assert la.weight.shape == lb.weight.shape
            if exact:
                assert np.array_equal(la.weight, lb.weight) and np.array_equal(la.bias, lb.bias)
            else:
                assert np.allclose(la.weight, lb.weight, rtol=1e-12, atol=1e-300)
                assert np.allclose(la.bias, lb.bias, rtol=1e-12, atol=1e-300)


def _same_function(a: Network, b: Network, rng: np.random.Generator, n: int = 4) -> None:
    size = int(np.prod(a.input_shape))
    for _ in range(n):
        x = [Fraction(int(v), int(d)) for v, d in
             zip(rng.integers(-9, 10, size=size), rng.integers(1, 5, size=size), strict=True)]
        xa = np.array(x, dtype=object).reshape(a.input_shape)
        assert evaluate_exact(a, xa).tolist() == evaluate_exact(b, xa).tolist()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31), depth=st.integers(1, 3), dup=st.integers(0, 4),
       pow2=st.booleans(), data=st.data())
def test_compiled_path_equals_general_path(monkeypatch: pytest.MonkeyPatch, seed: int,
                                           depth: int, dup: int, pow2: bool,
                                           data: st.DataObject) -> None:
    rng = np.random.default_rng(seed)
    net, planted_sizes = _random_planted_mlp(rng, depth, dup, pow2, data)
    calls = []
    real = red_mod.merge_columns

    def spy(*a: Any) -> Any:
        calls.append(1)
        return real(*a)

    monkeypatch.setattr(red_mod, "merge_columns", spy)
    fast = reduce_network(net)
    assert calls, "the compiled path was not used"
    _same_reduction(fast, _general(monkeypatch, net), exact=True)
    # never more neurons than before planting; equal function, exactly
    assert all(lr.neurons_after <= s for lr, s in zip(fast.layers, planted_sizes, strict=True))
    if not fast.rounded:  # a float64 network holds the exact Def. 7 weights
        _same_function(net, fast.network, rng)
    tol = reduce_network(net, tolerance=1e-9)
    _same_reduction(tol, _general(monkeypatch, net, tolerance=1e-9), exact=False)


def test_power_of_two_plants_recover_the_original_count_on_the_compiled_path() -> None:
    rng = np.random.default_rng(3)
    net, planted = _planted_mlp(rng, [6, 12, 10, 9, 3], ["relu", "leaky_relu", "relu"], 8,
                                True)
    red = reduce_network(net)
    assert [lr.neurons_after for lr in red.layers] == planted
    _same_function(net, red.network, rng, 6)
    assert red.network.layers[0].weight.dtype == np.float64 and not red.rounded


def test_conv_flatten_dense_on_the_compiled_path(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    f = rng.standard_normal((3, 2, 3, 3)).astype(np.float32).astype(np.float64)
    b = rng.standard_normal(3).astype(np.float32).astype(np.float64)
    w1 = np.concatenate([f, 2.0 * f[:1], 0.5 * f[2:]])  # channels 3 = 2*0, 4 = 0.5*2
    b1 = np.concatenate([b, 2.0 * b[:1], 0.5 * b[2:]])
    n_flat = 5 * 3 * 3
    w2 = rng.standard_normal((4, n_flat)).astype(np.float32).astype(np.float64)
    w2 = np.concatenate([w2, 4.0 * w2[1:2]])  # dense neuron 4 = 4 * neuron 1
    b2 = rng.standard_normal(4).astype(np.float32).astype(np.float64)
    b2 = np.concatenate([b2, 4.0 * b2[1:2]])
    net = Network((Conv2d(w1, b1), Activation("relu"), MaxPool2d((2, 2), (2, 2)), Flatten(),
                   Dense(w2, b2), Activation("relu"),
                   Dense(rng.standard_normal((2, 5)).astype(np.float32).astype(np.float64),
                         np.zeros(2))), (2, 8, 8))
    fast = reduce_network(net)
    assert [lr.neurons_after for lr in fast.layers] == [3, 4] and not fast.rounded
    _same_reduction(fast, _general(monkeypatch, net), exact=True)
    _same_function(net, fast.network, rng, 2)
    _same_reduction(reduce_network(net, tolerance=1e-9),
                    _general(monkeypatch, net, tolerance=1e-9), exact=False)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inexact_merge_falls_back_to_exact_arithmetic(dtype: type) -> None:
    """A merged column whose float sum is not exact takes the rational path (and stays exact).

    float32 weights times a power of two are exact products, so the compiled
    pass checks only their sums there: this sum must still be caught."""
    w1 = np.array([[1.0], [2.0]], dtype=dtype)  # neuron 1 = 2 * neuron 0
    w2 = np.array([[1.0, 2.0**-60]], dtype=dtype)  # 1 + 2**-60 / 2 is not a float64
    net = Network((Dense(w1, np.zeros(2, dtype=dtype)), Activation("relu"),
                   Dense(w2, np.zeros(1, dtype=dtype))), (1,))
    red = reduce_network(net)
    assert red.layers[0].blocks == ((0, 1),)
    assert red.network.layers[2].weight[0, 0] == float(1 + Fraction(1, 2**61))
    assert red.rounded  # the exact merged weight 1 + 2**-61 had to be rounded


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31), depth=st.integers(1, 3), dup=st.integers(0, 4),
       pow2=st.booleans(), tol=st.sampled_from([0.0, 1e-9, 0.25]), data=st.data())
def test_signatures_from_the_merge_pass_are_lumpcores_own(
        monkeypatch: pytest.MonkeyPatch, seed: int, depth: int, dup: int, pow2: bool,
        tol: float, data: st.DataObject) -> None:
    """The compiled merge computes lumpcore's column signatures in its own pass.

    Oracle: lumpcore's hashing pass over the graph's matrix (what it computes
    when no signatures are attached), field by field, and the whole reduction
    without attached signatures.
    """
    import lumpcore._dense as dense

    net, _ = _random_planted_mlp(np.random.default_rng(seed), depth, dup, pow2, data)
    checked = []
    real = red_mod.with_signatures

    def check(g: Any, sig: Any) -> Any:
        t = np.ascontiguousarray(g._biadjacency.T)
        own = dense._hash_columns(t, sig.proportional, sig.step,
                                  dense.signature_coefficients(t.shape[1]))
        names = ("key", "radius", "pivot", "pval", "status", "short")
        for name, mine in zip(names, own, strict=True):
            if name in ("key", "radius"):
                # the projections may be summed in another order (vectorised): the keys
                # agree within their error bounds, which must be of the same size
                assert np.all(np.abs(sig.key - own[0]) <= sig.radius + own[1]), name
                assert np.allclose(sig.radius, own[1], rtol=1e-6, atol=0), name
            else:
                assert np.array_equal(getattr(sig, name), mine), name
        checked.append(1)
        return real(g, sig)

    monkeypatch.setattr(red_mod, "with_signatures", check)
    got = reduce_network(net, tolerance=tol)
    # at least the first hidden layer takes the compiled path (later ones do not when
    # exact merges with factors that are not powers of two need rational arithmetic)
    assert checked
    monkeypatch.setattr(red_mod, "with_signatures", lambda g, sig: g)
    _same_reduction(got, reduce_network(net, tolerance=tol), exact=tol == 0)


def test_signatures_of_a_stale_compiled_pass_are_not_used(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """numba does not invalidate the cached merge pass when lumpcore's signature (inlined
    into it) changes; a pass reporting another signature version is not trusted and
    lumpcore hashes the rows itself (same result)."""
    rng = np.random.default_rng(4)
    net, planted = _planted_mlp(rng, [5, 9, 7, 2], ["relu", "leaky_relu"], 5, True)
    want = reduce_network(net)
    attached: list[int] = []
    real = red_mod.with_signatures
    monkeypatch.setattr(red_mod, "with_signatures",
                        lambda g, sig: attached.append(1) or real(g, sig))
    monkeypatch.setattr(red_mod, "SIGNATURE_VERSION", red_mod.SIGNATURE_VERSION + 1)
    got = reduce_network(net)
    assert not attached
    _same_reduction(got, want, exact=True)
    assert [lr.neurons_after for lr in got.layers] == planted


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("factors", [(3.0, 5.0, 0.75), (1.5, 2.0**-3, 7.0), (2.0**30 + 1,)])
def test_integer_scaled_merge_equals_general_path(monkeypatch: pytest.MonkeyPatch,
                                                  dtype: type, factors: tuple[float, ...]
                                                  ) -> None:
    """Exact merges with factors that are not powers of two: the compiled pass builds
    each merged column times the lcm of its factors' numerators (integer scales) and
    divides back when the reduced weights are written.

    Oracles: the general path (rational arithmetic, the compiled pass disabled) gives
    the identical reduction (blocks, factors, bit-identical reduced weights, the same
    'rounded' flag: sums like w1 + w2 / 3 are rounded to float64), and exact
    evaluation shows the same function up to that rounding.  Factors whose scales
    would pass 2**29 take the general path (same answer)."""
    rng = np.random.default_rng(11)
    layers: list[Any] = []
    prev = 6
    for k in range(3):
        half = (rng.integers(-64, 65, size=(4, prev)) / 16).astype(dtype)
        bias = (rng.integers(-64, 65, size=4) / 16).astype(dtype)
        f = np.asarray(factors[k % len(factors)], dtype=dtype)
        layers += [Dense(np.vstack([half, f * half]), np.concatenate([bias, f * bias])),
                   _act("relu")]
        prev = 8
    layers.append(Dense(rng.standard_normal((2, prev)).astype(dtype), np.zeros(2, dtype)))
    net = Network(tuple(layers), (6,))
    calls: list[bool] = []
    real = red_mod.merge_columns_integer
    with monkeypatch.context() as mp:
        mp.setattr(red_mod, "merge_columns_integer",
                   lambda *a: calls.append(bool(a[6])) or real(*a))
        got = reduce_network(net)
    # the integer pass ran for each layer after one merged with a factor that is not a
    # power of two (float32: products exact by construction), unless its scale is too large
    expected = sum(1 for k in range(3) if not math.log2(factors[k % len(factors)]).is_integer()
                   and factors[k % len(factors)] < 2**29)
    assert calls == [dtype == np.float32] * expected
    assert [lr.neurons_after for lr in got.layers] == [4, 4, 4]
    ref = _general(monkeypatch, net)
    _same_reduction(got, ref, exact=True)
    assert got.certificate is not None and ref.certificate is not None
    assert got.certificate["reduced"]["rounded"] == ref.certificate["reduced"]["rounded"]
    for _ in range(4):
        x = np.array([Fraction(int(v), 4) for v in rng.integers(-9, 10, size=6)], dtype=object)
        want = np.array(evaluate_exact(net, x).tolist(), dtype=float)
        have = np.array(evaluate_exact(got.network, x).tolist(), dtype=float)
        assert np.allclose(have, want, rtol=1e-9, atol=1e-9)


def _count_kept_in_arena(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """A list that gets one entry per layer whose reduced weights stay in the merge arena
    (call of ``compact_rows``)."""
    calls: list[bool] = []
    real = red_mod.compact_rows

    def spy(*a: Any) -> None:
        calls.append(True)
        real(*a)

    monkeypatch.setattr(red_mod, "compact_rows", spy)
    return calls


@pytest.mark.parametrize("tolerance", [0.0, 1e-9])
def test_hidden_layers_kept_in_the_merge_arena(monkeypatch: pytest.MonkeyPatch,
                                              tolerance: float) -> None:
    """Every hidden layer's float64 reduced weights are compacted in place in the merge
    arena (no fresh pages) and handed out as views; they must equal the general path's,
    and no reduced weight array may share memory with another layer's or with the
    original network.

    Oracles: the general path (rational arithmetic) and exact evaluation."""
    rng = np.random.default_rng(7)
    net, planted = _planted_mlp(rng, [6, 9, 8, 7, 3], ["relu", "leaky_relu", "relu"], dup=5,
                                pow2=True)
    calls = _count_kept_in_arena(monkeypatch)
    fast = reduce_network(net, tolerance=tolerance)
    # every hidden layer (float64 weights: the first layer's own ones too), not the output
    assert calls == [True] * 3
    assert [lr.neurons_after for lr in fast.layers] == planted
    _same_reduction(fast, _general(monkeypatch, net, tolerance=tolerance), exact=True)
    weights = [lyr.weight for lyr in fast.network.layers if isinstance(lyr, Dense)]
    others = [lyr.weight for lyr in net.layers if isinstance(lyr, Dense)]
    for i, w in enumerate(weights):
        # rows of the merged matrix without its bias column: each row contiguous
        assert w.dtype == np.float64 and w.strides[1] == w.itemsize
        assert (w.strides[0] == w.itemsize * (w.shape[1] + 1)) == (i < len(weights) - 1)
        for v in weights[i + 1:] + others:
            assert not np.shares_memory(w, v)
    if tolerance == 0:
        _same_function(net, fast.network, rng)


def _arena_net(kind: str, rng: np.random.Generator) -> Network:
    """Float32 weights with planted channels/neurons in the first two linear layers: merges
    in the first make the second (the last hidden one) float64, so it stays in the arena."""
    def plant(w: np.ndarray, b: np.ndarray, dups: list[tuple[int, float]]
              ) -> tuple[np.ndarray, np.ndarray]:
        return (np.concatenate([w, *(np.float32(f) * w[i:i + 1] for i, f in dups)]),
                np.concatenate([b, [np.float32(f) * b[i] for i, f in dups]]).astype(np.float32))

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float16).astype(np.float32)

    if kind == "conv":
        w1, b1 = plant(r(3, 2, 2, 2), r(3), [(0, 2.0), (2, 0.5)])
        w2, b2 = plant(r(4, 5, 2, 2), r(4), [(1, 4.0), (3, 0.25), (1, 1.0)])
        return Network((Conv2d(w1, b1), Activation("relu"), Conv2d(w2, b2), Activation("relu"),
                        Flatten(), Dense(r(2, 7 * 4 * 4), r(2))), (2, 6, 6))
    w1, b1 = plant(r(6, 4), r(6), [(0, 2.0), (5, 0.5), (2, 4.0)])
    w2, b2 = plant(r(5, 9), r(5), [(4, 2.0), (0, 0.25)])
    return Network((Dense(w1, b1), Activation("leaky_relu", alpha=Fraction(1, 8)),
                    Dense(w2, b2), Activation("relu"), Dense(r(3, 7), r(3))), (4,))


@pytest.mark.parametrize("arena", ["heap", "mapping"])
@pytest.mark.parametrize("tolerance", [0.0, 1e-9])
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_weights_kept_in_the_arena_survive_later_allocations(monkeypatch: pytest.MonkeyPatch,
                                                       kind: str, tolerance: float,
                                                       arena: str) -> None:
    """The weights kept in the merge arena (an array from the heap, or an anonymous
    mapping whose pages beyond them are given back with ``madvise``, as large networks
    get) are no dangling views: the reduced arrays keep their values after further
    reductions and large allocations reuse freed memory, and the certificate stays valid.

    Oracles: copies taken right after the reduction, the general path, the
    independent certificate check and exact evaluation."""
    from proofs import check_certificate

    if arena == "mapping":
        monkeypatch.setattr(red_mod, "_HEAP_ARENA_BYTES", 0)
    rng = np.random.default_rng(11)
    net = _arena_net(kind, rng)
    calls = _count_kept_in_arena(monkeypatch)
    red = reduce_network(net, tolerance=tolerance)
    # the second layer's merged (float64) weights stay in the arena; a convolution's are
    # copied into contiguous memory (numpy sums a strided kernel in another order)
    per_call = [True] if kind == "dense" else []
    assert calls == per_call
    lin = [lyr for lyr in red.network.layers if isinstance(lyr, Dense | Conv2d)]
    assert lin[1].weight.dtype == np.float64
    copies = [np.array(a, copy=True) for lyr in lin for a in (lyr.weight, lyr.bias)]
    # reuse freed memory: more reductions (each keeps weights in an arena), then big fills
    for seed in range(3):
        reduce_network(_arena_net(kind, np.random.default_rng(seed)), tolerance=tolerance)
    for n in (1 << 10, 1 << 16, 1 << 20):
        np.full(n, -7.75e300)
    assert calls == per_call * 4
    for (w, c) in zip((a for lyr in lin for a in (lyr.weight, lyr.bias)), copies, strict=True):
        assert w.dtype == c.dtype and np.array_equal(w, c)
    for i, lyr in enumerate(lin):
        for other in [*lin[i + 1:], *(o for o in net.layers if isinstance(o, Dense | Conv2d))]:
            assert not np.shares_memory(lyr.weight, other.weight)
    assert check_certificate(net, red.network, red.certificate).valid
    _same_reduction(red, _general(monkeypatch, net, tolerance=tolerance), exact=tolerance == 0)
    if tolerance == 0:
        assert not red.rounded
        _same_function(net, red.network, rng, 2)


def _float_conv_net(rng: np.random.Generator, kind: str) -> Network:
    """Random float32 weights (full significands: float sums round), the second half of
    every hidden layer's channels/neurons power-of-two multiples of the first half."""
    def plant(w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = (2.0 ** rng.integers(-2, 3, size=w.shape[0])).astype(np.float32)
        shape = (-1,) + (1,) * (w.ndim - 1)
        return np.concatenate([w, r.reshape(shape) * w]), np.concatenate([b, r * b])

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32)

    if kind == "conv":
        w1, b1 = plant(r(4, 3, 3, 3), r(4))
        w2, b2 = plant(r(4, 8, 3, 3), r(4))
        w3, b3 = plant(r(8, 8 * 6 * 6), r(8))
        return Network((Conv2d(w1, b1, (1, 1), (1, 1, 1, 1)), Activation("relu"),
                        Conv2d(w2, b2, (1, 1), (1, 1, 1, 1)), Activation("relu"), Flatten(),
                        Dense(w3, b3), Activation("relu"), Dense(r(3, 16), r(3))), (3, 6, 6))
    w1, b1 = plant(r(16, 12), r(16))
    w2, b2 = plant(r(16, 32), r(16))
    return Network((Dense(w1, b1), Activation("relu"), Dense(w2, b2), Activation("relu"),
                    Dense(r(3, 32), r(3))), (12,))


@pytest.mark.parametrize("tolerance", [0.0, 1e-9])
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_weights_kept_in_the_arena_evaluate_like_their_copies(
        tmp_path: Any, kind: str, tolerance: float) -> None:
    """Reduced weights handed out as views of the merge arena (rows a bias entry apart)
    compute, in float arithmetic, bit for bit what the same network saved and loaded
    (contiguous arrays) computes: numpy's convolution sums a strided kernel in another
    order, so convolution weights must not stay strided.

    Oracle: the network read back from ``.npz``."""
    rng = np.random.default_rng(5)
    net = _float_conv_net(rng, kind)
    red = reduce_network(net, tolerance=tolerance)
    assert sum(lr.neurons_after for lr in red.layers[:-1]) * 2 == sum(
        lr.neurons_before for lr in red.layers[:-1])
    path = tmp_path / "reduced.npz"
    save_network(red.network, path)
    back = load_network(path)
    for a, b in zip(red.network.layers, back.layers, strict=True):
        if isinstance(a, Dense | Conv2d):
            assert np.array_equal(a.weight, b.weight) and b.weight.flags.c_contiguous
    x = rng.standard_normal((16, *net.input_shape))
    assert np.array_equal(evaluate(red.network, x), evaluate(back, x))
