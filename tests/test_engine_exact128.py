"""The plain exact path that refines on exact 128-bit sums (no verification pass).

In plain (non-proportional) exact mode, float64 and int64 weights whose sums
fit in 128 bits are refined with the exact sums as keys; a 64-bit mix of the
two limbs only orders the keys, and equal mixes are compared limb by limb.
These tests check that path against the naive exact-rational oracle of
``test_engine_oracle`` on weights that need more than 64 bits, and force
the (otherwise never seen) mix collisions to check that they are detected
and repaired by the hashed path with exact verification.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import examples
from test_engine_oracle import naive_refinement

import lumpcore._refine as R
from lumpcore import WeightedGraph, coarsest_lumping
from lumpcore._kernels import MIX128, csr_terms_float, csr_terms_int, refine_exact128

#: float weights whose exact sums span well over 64 bits (0.1 has a 55-bit
#: odd mantissa at 2**-56; 2**40 and 3e15 sit far above it)
WIDE = [0.1, 0.2, 0.3, 1 / 3, 2.0**40, 3e15, 1.0, 0.5, -0.1, -(2.0**40), 7.0, 1e-3]
#: subnormal and signed-zero weights (the bit-level decomposition's corner cases)
TINY = [5e-324, 1e-310, 3e-320, -1e-315, 2.5e-308, 0.0, -0.0, 2.2250738585072014e-308]


def _float_terms(n: int, src: np.ndarray, dst: np.ndarray,
                 w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    w = np.asarray(w, dtype=np.float64)
    return csr_terms_float(n, np.asarray(src), np.asarray(dst), w.view(np.int64),
                           np.empty((w.shape[0], 3), np.uint64), np.zeros((n, 2), np.uint64))


def _work(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (np.empty((17, n + 2), np.int64), np.empty((3, n + 1), np.uint64),
            np.zeros((n + 1, 8), np.int64), np.zeros((n, 4), np.uint64),
            np.empty((n, 3), np.int64))


def _oracle(n: int, src: list[int], dst: list[int], w: list[float] | list[int],
            init: list[int], direction: str) -> tuple[tuple[int, ...], ...]:
    edges = [(s, d, Fraction(x)) for s, d, x in zip(src, dst, w, strict=True)]
    return naive_refinement(n, edges, init, direction, False)


@st.composite
def wide_graphs(draw: st.DrawFn) -> tuple[int, list[int], list[int], list[float], list[int]]:
    """Graphs with planted twins (so merges happen) and wide (or tiny) float weights."""
    n = draw(st.integers(2, 9))
    m = draw(st.integers(0, 3 * n))
    src = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    dst = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    pool = draw(st.sampled_from([WIDE, TINY]))
    w = draw(st.lists(st.sampled_from(pool), min_size=m, max_size=m))
    # twin of node 0: node n-1 gets copies of 0's incoming and outgoing edges
    extra = [(s, n - 1 if d == 0 else d, x) for s, d, x in zip(src, dst, w, strict=True) if d == 0]
    extra += [(n - 1, d, x) for s, d, x in zip(src, dst, w, strict=True) if s == 0]
    for s, d, x in extra:
        src.append(s)
        dst.append(d)
        w.append(x)
    init = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    return n, src, dst, w, init


@settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wide_graphs(), st.sampled_from(["backward", "forward"]))
def test_wide_float_weights_match_naive_oracle(
    case: tuple[int, list[int], list[int], list[float], list[int]], direction: str
) -> None:
    n, src, dst, w, init = case
    g = WeightedGraph.from_edges(n, src, dst, np.array(w, dtype=np.float64))
    lump = coarsest_lumping(g, init, direction=direction)
    assert lump.blocks == _oracle(n, src, dst, w, init, direction)
    assert lump.verify_rounds == 1 and lump.rho is None


def test_wide_weights_take_the_128_bit_path_and_need_more_than_64_bits() -> None:
    """0.1 + 2**40 in units of 0.1's lowest bit needs about 98 bits."""
    w = np.array([0.1, 2.0**40, 0.1, 2.0**40 + 0.25], dtype=np.float64)
    indptr, edges, total, bits = _float_terms(3, np.array([0, 0, 1, 1]),
                                              np.array([1, 1, 2, 2]), w)
    targets, hi, lo = edges[:, 0], edges[:, 1], edges[:, 2]
    assert 64 < bits < 125
    assert hi.any()  # some term really uses the high limb
    terms = [(int(h) << 64 | int(x)) for h, x in zip(hi.tolist(), lo.tolist(), strict=True)]
    unit = Fraction(0.1) / (Fraction(0.1).numerator)  # 2**emin (0.1's lowest bit)
    assert [Fraction(t) * unit for t in terms] == [Fraction(x) for x in w.tolist()]
    assert indptr.tolist() == [0, 2, 4, 4] and targets.tolist() == [1, 1, 2, 2]
    # exact totals into every node
    sums = [(int(h) << 64 | int(x)) * unit for h, x in total.tolist()]
    assert sums == [0, Fraction(0.1) + 2**40, Fraction(0.1) + Fraction(2.0**40 + 0.25)]


@pytest.mark.parametrize("k", [1, 3, 7])
def test_int64_weights_with_sums_beyond_int64(k: int) -> None:
    """Sums of several weights near 2**62 exceed int64; they are exact in 128 bits.
    Node 1 gets k * (2**62 - 1) + 2**62, node 2 gets (k + 1) * (2**62 - 1) + 1 +
    ...: equal exactly when the oracle says so."""
    big = 2**62 - 1
    src = [0] * (k + 1) + [0] * (k + 1) + [0] * (k + 1)
    dst = [1] * (k + 1) + [2] * (k + 1) + [3] * (k + 1)
    w = [big] * k + [2**62] + [big] * k + [2**62] + [big] * (k + 1)
    init = [0, 1, 1, 1]
    g = WeightedGraph.from_edges(4, src, dst, np.array(w, dtype=np.int64))
    assert g.weight.dtype == np.int64
    lump = coarsest_lumping(g, init)
    want = _oracle(4, src, dst, w, init, "backward")
    assert lump.blocks == want == ((0,), (1, 2), (3,))


def _hi_only_graph(extra_low: int) -> WeightedGraph:
    """Node 1 receives 2**64 + x and node 2 receives 2**65 + x from node 0:
    equal low limbs, different high limbs (a self-loop of weight 1 on node 0
    makes the unit 1)."""
    w = [2.0**64, 2.0**65, 1.0]
    src, dst = [0, 0, 0], [1, 2, 0]
    if extra_low:
        w += [float(extra_low), float(extra_low)]
        src += [0, 0]
        dst += [1, 2]
    return WeightedGraph.from_edges(3, src, dst, np.array(w))


@pytest.mark.parametrize("extra_low", [0, 1])
def test_forced_mix_collision_is_detected_by_the_kernel(extra_low: int) -> None:
    g = _hi_only_graph(extra_low)
    indptr, edges, total, _bits = _float_terms(g.n, g.src, g.dst, g.weight)
    init = np.array([0, 1, 1], dtype=np.int64)
    # mix 0 orders by the low limb only: the two sums collide (or look like 0)
    _, _, _, ok = refine_exact128(g.n, indptr, edges, total, init, 2, np.uint64(0), *_work(g.n))
    assert not ok
    block_of, _, _, ok = refine_exact128(g.n, indptr, edges, total, init, 2, np.uint64(MIX128),
                                         *_work(g.n))
    assert ok and block_of[1] != block_of[2]


@pytest.mark.parametrize("extra_low", [0, 1])
def test_forced_mix_collision_falls_back_to_the_verified_path(
    extra_low: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(R, "_MIX", np.uint64(0))
    g = _hi_only_graph(extra_low)
    lump = coarsest_lumping(g, [0, 1, 1])
    assert lump.blocks == ((0,), (1,), (2,))
    # forward: both receivers send nothing, the sender is alone: no split needed
    assert coarsest_lumping(g, [0, 1, 1], direction="forward").blocks == ((0,), (1, 2))


def test_int_terms_are_the_weights() -> None:
    w = np.array([-(2**62), 5, 0, 2**62 - 1], dtype=np.int64)
    indptr, edges, total, _bits = csr_terms_int(2, np.array([1, 0, 0, 1]),
                                                np.array([0, 1, 1, 1]), w,
                                                np.empty((4, 3), np.uint64),
                                                np.zeros((2, 2), np.uint64))
    targets, hi, lo = edges[:, 0], edges[:, 1], edges[:, 2]
    vals = [(int(h) << 64 | int(x)) for h, x in zip(hi.tolist(), lo.tolist(), strict=True)]
    signed = [v - 2**128 if v >= 2**127 else v for v in vals]
    # CSR by source, input order within a source, the zero weight dropped
    assert indptr.tolist() == [0, 1, 3]
    assert signed == [5, -(2**62), 2**62 - 1]
    assert targets.tolist() == [1, 0, 1]
    tot = [(int(h) << 64 | int(x)) for h, x in total.tolist()]
    assert [t - 2**128 if t >= 2**127 else t for t in tot] == [-(2**62), 5 + 2**62 - 1]


def test_subnormal_terms_are_exact() -> None:
    w = np.array(TINY, dtype=np.float64)
    k = len(TINY)
    indptr, edges, total, bits = _float_terms(1, np.zeros(k, np.int64), np.zeros(k, np.int64), w)
    assert bits < 125
    nz = [Fraction(x) for x in TINY if x != 0]
    assert indptr.tolist() == [0, len(nz)]  # both zeros dropped
    unit = Fraction(2) ** -1074  # the smallest subnormal's exponent
    terms = [(int(h) << 64 | int(x)) for _, h, x in edges.tolist()]
    signed = [t - 2**128 if t >= 2**127 else t for t in terms]
    assert [t * unit for t in signed] == nz
    (h, x), = total.tolist()
    tot = int(h) << 64 | int(x)
    assert (tot - 2**128 if tot >= 2**127 else tot) * unit == sum(nz)


def test_spread_beyond_128_bits_uses_the_verified_path() -> None:
    """1e-300 and 1e300 in one sum need about 2000 bits: the hashed path with
    residue verification takes over and still gives the exact answer."""
    w = [1e300, 1e-300, 1e300, 2e-300, 1.0, 1.0]
    src, dst = [0, 0, 0, 0, 1, 2], [1, 1, 2, 2, 3, 4]
    g = WeightedGraph.from_edges(5, src, dst, np.array(w))
    bits = _float_terms(g.n, g.src, g.dst, g.weight)[-1]
    assert bits >= 125
    lump = coarsest_lumping(g, [0, 1, 1, 2, 2])
    assert lump.blocks == _oracle(5, src, dst, w, [0, 1, 1, 2, 2], "backward")
    assert lump.blocks == ((0,), (1,), (2,), (3,), (4,))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_large_blocks_grouped_by_hashing_match_naive_oracle(seed: int) -> None:
    """Blocks of more than 256 nodes with many equal sums are grouped by a hash
    table of the keys (not sorted); 700 nodes in one initial block, weights
    from a small pool (many ties), plus a copy of the graph (so every node has
    a twin): the result must equal the naive exact-rational refinement."""
    rng = np.random.default_rng(seed)
    half = 350
    pool = [0.1, 0.2, 0.3, 1.0, 2.0**40, 1 / 3]
    src: list[int] = []
    dst: list[int] = []
    w: list[float] = []
    for _ in range(3 * half):
        u, v = int(rng.integers(0, half)), int(rng.integers(0, half))
        x = pool[int(rng.integers(0, len(pool)))]
        for off in (0, half):  # the same edge in both copies
            src.append(u + off)
            dst.append(v + off)
            w.append(x)
    n = 2 * half
    init = [0] * n
    for direction in ("backward", "forward"):
        g = WeightedGraph.from_edges(n, src, dst, np.array(w))
        lump = coarsest_lumping(g, init, direction=direction)
        want = _oracle(n, src, dst, w, init, direction)
        assert lump.blocks == want
        assert all(len(b) >= 2 for b in want)  # the twins
