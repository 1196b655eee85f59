"""The dense (biadjacency) path of ``coarsest_lumping`` against independent oracles.

Oracles:
* a direct pairwise definition in exact ``Fraction`` arithmetic (columns
  equal, or positive multiples, of the exact values or of the values rounded
  to the grid with Python's exact ``round``), grouped transitively;
* the general splitter algorithm on the same graph given as an edge list
  (the answer must be identical, blocks and factors).
Every case also checks that the dense path was really taken (the edge list
of the graph was never built).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lumpcore._dense as dense
from lumpcore import WeightedGraph, coarsest_lumping
from lumpcore._threads import threads_for

MODES = [("exact", 0.0), ("float", 0.25), ("float", 0.1), ("float", 1e-3)]


def _column_values(m: np.ndarray, arithmetic: str, tol: float) -> list[list[Fraction]]:
    cols = []
    for j in range(m.shape[1]):
        col = [Fraction(float(x)) for x in m[:, j]]
        if arithmetic == "float":
            step = Fraction(tol)
            col = [Fraction(round(x / step)) for x in col]  # exact, ties to even
        cols.append(col)
    return cols


def _related(a: list[Fraction], b: list[Fraction], proportional: bool) -> Fraction | None:
    """The factor ``rho`` with ``rho * b == a`` (positive), or ``None``."""
    if not proportional:
        return Fraction(1) if a == b else None
    nz = [k for k, x in enumerate(a) if x != 0]
    nzb = [k for k, x in enumerate(b) if x != 0]
    if nz != nzb:
        return None
    if not nz:
        return Fraction(1)
    rho = a[nz[0]] / b[nz[0]]
    if rho <= 0 or any(a[k] != rho * b[k] for k in range(len(a))):
        return None
    return rho


def _oracle(m: np.ndarray, labels: list[int], proportional: bool, arithmetic: str,
            tol: float) -> tuple[list[int], list[Fraction]]:
    """Block of every node (sources first) and rho, by the definition."""
    r, c = m.shape
    cols = _column_values(m, arithmetic, tol)
    block = list(range(r)) + [-1] * c
    rho = [Fraction(1)] * (r + c)
    reps: list[int] = []
    nb = r
    for j in range(c):
        for rep in reps:
            if labels[rep] != labels[j]:
                continue
            f = _related(cols[rep], cols[j], proportional)
            if f is not None:
                block[r + j] = block[r + rep]
                rho[r + j] = f
                break
        else:
            reps.append(j)
            block[r + j] = nb
            nb += 1
    return block, rho


@st.composite
def _planted(draw: st.DrawFn) -> tuple[np.ndarray, list[int]]:
    r = draw(st.integers(0, 6))
    c = draw(st.integers(0, 9))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["small-ints", "quarters", "normal", "float32"]))
    n_base = max(1, draw(st.integers(1, 4)))
    if kind == "small-ints":
        base = rng.integers(-3, 4, size=(r, n_base)).astype(np.float64)
    elif kind == "quarters":  # grid values on exact half-way points
        base = rng.integers(-8, 9, size=(r, n_base)) / 8.0
    elif kind == "normal":
        base = rng.standard_normal((r, n_base))
    else:
        base = rng.standard_normal((r, n_base)).astype(np.float32).astype(np.float64)
    factors = [1.0, 2.0, 0.5, 3.0, -1.0, 0.1, 1 / 3, 1.0 + 2.0**-40, 0.0]
    m = np.zeros((r, c))
    for j in range(c):
        m[:, j] = base[:, int(rng.integers(0, n_base))] * factors[int(rng.integers(0, 9))]
    if r and c and draw(st.booleans()):
        m[rng.random((r, c)) < 0.2] = 0.0
    labels = [int(x) for x in rng.integers(0, 2, size=c)]
    return m, labels


def _lump(g: WeightedGraph, r: int, labels: list[int], proportional: bool, arithmetic: str,
          tol: float):  # type: ignore[no-untyped-def]
    init = np.concatenate([np.arange(r), r + np.asarray(labels, dtype=np.int64)])
    return coarsest_lumping(g, init.astype(np.int64), proportional=proportional,
                            arithmetic=arithmetic, tolerance=tol)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_planted(), st.booleans(), st.sampled_from(MODES))
def test_dense_path_matches_the_definition_and_the_general_path(
        case: tuple[np.ndarray, list[int]], proportional: bool, mode: tuple[str, float]) -> None:
    m, labels = case
    arithmetic, tol = mode
    r, c = m.shape
    g = WeightedGraph.from_biadjacency(m)
    got = _lump(g, r, labels, proportional, arithmetic, tol)
    assert g._edges is None, "the dense path was not taken"
    block, rho = _oracle(m, labels, proportional, arithmetic, tol)
    # same partition as the definition (block numbering may differ: compare as partitions)
    assert _canon(got.block_of.tolist()) == _canon(block)
    nz = np.nonzero(m)
    edges = WeightedGraph.from_edges(r + c, nz[0], r + nz[1], m[nz])
    ref = _lump(edges, r, labels, proportional, arithmetic, tol)
    assert got.block_of.tolist() == ref.block_of.tolist()
    if proportional:
        assert got.rho is not None and ref.rho is not None
        if arithmetic == "exact":
            assert got.rho == ref.rho
            assert list(got.rho) == rho  # the oracle's factors (smallest node of a block: 1)
            # the same factors as exact ratios of two floats, without Fraction objects
            assert got.rho_ratio is not None
            num, den = got.rho_ratio
            assert [Fraction(a) / Fraction(b) for a, b in zip(num, den, strict=True)] == rho
        else:
            assert np.array_equal(got.rho, ref.rho)
    else:
        assert got.rho is None
    if not (proportional and arithmetic == "exact"):
        assert got.rho_ratio is None
    assert got.resolution == ref.resolution


def _canon(block: list[int]) -> list[int]:
    seen: dict[int, int] = {}
    return [seen.setdefault(b, len(seen)) for b in block]


def test_forced_key_collisions_are_split_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every projection coefficient zero all keys are 0 and all columns of one sign
    collide; the exact comparison must split them."""
    monkeypatch.setattr(dense, "_coefficients", lambda m: np.zeros(m, dtype=np.float64))
    rng = np.random.default_rng(7)
    base = rng.standard_normal((5, 4))
    m = np.concatenate([base, 2.0 * base, base[:, :2] * 0.5, -base[:, :1]], axis=1)
    r, c = m.shape
    for proportional in (False, True):
        for arithmetic, tol in MODES:
            g = WeightedGraph.from_biadjacency(m)
            got = _lump(g, r, [0] * c, proportional, arithmetic, tol)
            assert g._edges is None
            block, _ = _oracle(m, [0] * c, proportional, arithmetic, tol)
            assert _canon(got.block_of.tolist()) == _canon(block)
    got = _lump(WeightedGraph.from_biadjacency(m), r, [0] * c, True, "exact", 0.0)
    assert got.verify_rounds > 1  # the collision was noticed and repaired
    # base columns 0..3, then 2*base (merge with 0..3), 0.5*base[:, :2], -base[:, :1] alone
    assert got.num_blocks == r + 4 + 1


def test_half_way_points_round_to_even_exactly() -> None:
    # 0.125 / 0.25 = 0.5 -> 0 ; 0.375 / 0.25 = 1.5 -> 2 ; 0.625 / 0.25 = 2.5 -> 2
    m = np.array([[0.125, 0.0, 0.375, 0.5, 0.625, 0.5]])
    got = _lump(WeightedGraph.from_biadjacency(m), 1, [0] * 6, False, "float", 0.25)
    assert got.blocks[1:] == ((1, 2), (3, 4, 5, 6))
    # x / 0.1 close to a half-way point in float but not exactly: decided exactly
    x = 0.05
    exact = round(Fraction(x) / Fraction(0.1))
    m = np.array([[x, float(exact) * 0.1 if exact else 0.0]])
    got = _lump(WeightedGraph.from_biadjacency(m), 1, [0, 0], False, "float", 0.1)
    assert (got.block_of[1] == got.block_of[2]) == (
        round(Fraction(m[0, 1]) / Fraction(0.1)) == exact)


def test_out_of_range_values_fall_back_to_the_general_path() -> None:
    m = np.array([[1e-300, 2e-300, 3.0], [1.0, 2.0, 1e300]])
    g = WeightedGraph.from_biadjacency(m)
    got = _lump(g, 2, [0, 0, 0], True, "exact", 0.0)
    assert g._edges is not None  # the general path built the edge list
    assert got.blocks[2:] == ((2, 3), (4,))
    assert got.rho is not None and got.rho[3] == Fraction(1, 2)


def test_sources_sharing_a_block_use_the_general_path() -> None:
    m = np.array([[1.0, 1.0], [1.0, 0.0]])
    g = WeightedGraph.from_biadjacency(m)
    got = coarsest_lumping(g, [0, 0, 1, 1])
    nz = np.nonzero(m)
    ref = coarsest_lumping(WeightedGraph.from_edges(4, nz[0], 2 + nz[1], m[nz]), [0, 0, 1, 1])
    assert got.block_of.tolist() == ref.block_of.tolist()
    assert g._edges is not None


def test_non_finite_entries_are_named() -> None:
    m = np.array([[1.0, 2.0], [np.nan, 0.0]])
    with pytest.raises(ValueError, match=r"entry \(1, 0\) = nan"):
        coarsest_lumping(WeightedGraph.from_biadjacency(m), [0, 1, 2, 2])
    g = WeightedGraph.from_biadjacency(np.array([[np.inf]]))
    with pytest.raises(ValueError, match=r"entry \(0, 0\) = inf"):
        g.src  # noqa: B018 - building the edge list validates too


def test_from_biadjacency_layout_and_input_forms() -> None:
    g = WeightedGraph.from_biadjacency([[0.0, 1.5], [2.0, 0.0], [0.0, -1.0]])
    assert g.n == 5 and g.num_edges == 3 and g.weight_kind == "float"
    assert sorted(zip(g.src.tolist(), g.dst.tolist(), g.weight.tolist())) == [
        (0, 4, 1.5), (1, 3, 2.0), (2, 4, -1.0)]
    q = WeightedGraph.from_biadjacency([[Fraction(1, 3), 0], [0, "2/7"]])
    assert q.weight_kind == "rational" and q.weight.tolist() == [Fraction(1, 3), Fraction(2, 7)]
    i = WeightedGraph.from_biadjacency(np.array([[1, 0], [0, 2]]))
    assert i.weight_kind == "int" and i.dst.tolist() == [2, 3]
    with pytest.raises(ValueError, match="2-D"):
        WeightedGraph.from_biadjacency([1.0, 2.0])
    f32 = WeightedGraph.from_biadjacency(np.array([[0.1, 0.2]], dtype=np.float32))
    assert f32._edges is None and f32.weight.tolist() == [float(np.float32(0.1)),
                                                          float(np.float32(0.2))]
    for shape in ((0, 0), (0, 3), (3, 0)):
        e = WeightedGraph.from_biadjacency(np.zeros(shape))
        lump = coarsest_lumping(e, np.r_[np.arange(shape[0]), np.full(shape[1], shape[0])]
                                .astype(np.int64), proportional=True)
        assert lump.num_nodes == sum(shape)
        assert lump.num_blocks == shape[0] + (1 if shape[1] else 0)
    with pytest.raises(AttributeError, match="immutable"):
        g.n = 3  # type: ignore[misc]
    assert g.reversed().src.tolist() == g.dst.tolist()


@settings(max_examples=300, deadline=None)
@given(k=st.integers(-2**40, 2**40), ulps=st.integers(-3, 3),
       step=st.sampled_from([0.1, 0.25, 1e-3, 1e-6, 3.0, 2.0**-30, 0.7]))
def test_grid_rounding_is_exact_near_half_way_points(k: int, ulps: int, step: float) -> None:
    """``_grid`` equals Python's exact round(x / step) (ties to even), also a few ulps off a tie."""
    x = (k + 0.5) * step
    for _ in range(abs(ulps)):
        x = float(np.nextafter(x, np.inf if ulps > 0 else -np.inf))
    if abs(x / step) >= 2.0**50:
        return
    want = round(Fraction(x) / Fraction(step))
    assert dense._grid(x, step, 1.0 / step) == want


@settings(max_examples=200, deadline=None)
@given(k=st.integers(-2**52, 2**52), d1=st.integers(-4, 4), d2=st.integers(-4, 4),
       step=st.sampled_from([0.1, 0.3, 1e-3, 0.7]))
def test_general_path_rounds_to_the_grid_exactly(k: int, d1: int, d2: int, step: float) -> None:
    """Float mode merges two weights iff their *exact* roundings to the grid agree."""
    base = (k + 0.5) * step
    x1 = base
    for _ in range(abs(d1)):
        x1 = float(np.nextafter(x1, np.inf if d1 > 0 else -np.inf))
    x2 = float(np.nextafter(base, np.inf)) if d2 == 0 else base
    for _ in range(abs(d2)):
        x2 = float(np.nextafter(x2, np.inf if d2 > 0 else -np.inf))
    g = WeightedGraph.from_edges(3, [0, 0], [1, 2], [x1, x2])
    got = coarsest_lumping(g, [0, 1, 1], arithmetic="float", tolerance=step)
    same = round(Fraction(x1) / Fraction(step)) == round(Fraction(x2) / Fraction(step))
    assert (got.block_of[1] == got.block_of[2]) == same


def test_float_mode_rounds_rational_weights_themselves() -> None:
    """A rational weight on a half-way point rounds to even, whatever its float value does."""
    third = Fraction(1, 3)
    # 1/20 / (1/10) = 1/2 exactly -> 0 (even); float(1/20) / 0.1 is not exactly 1/2
    g = WeightedGraph.from_edges(3, [0, 0], [1, 2], [Fraction(1, 20), third * 0])
    got = coarsest_lumping(g, [0, 1, 1], arithmetic="float", tolerance=0.1)
    want = round(Fraction(1, 20) / Fraction(0.1)) == 0
    assert (got.block_of[1] == got.block_of[2]) == want
    # automatic grid: rationals rounded exactly to 2**-f
    h = WeightedGraph.from_edges(3, [0, 0], [1, 2], [third, Fraction(1, 3) + Fraction(1, 2**80)])
    lump = coarsest_lumping(h, [0, 1, 1], arithmetic="float")
    assert lump.resolution is not None
    step = Fraction(lump.resolution)
    same = round(third / step) == round((third + Fraction(1, 2**80)) / step)
    assert (lump.block_of[1] == lump.block_of[2]) == same


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), e=st.integers(-100, 100), k=st.integers(-250, 250),
       nudge=st.sampled_from([None, 0, 1, -1]), grid=st.booleans())
def test_power_of_two_ratios_are_compared_exactly(seed: int, e: int, k: int,
                                                  nudge: int | None, grid: bool) -> None:
    """Columns whose pivots differ by a power of two take a one-product comparison.

    Full 53-bit mantissas (no short products), exponents far apart, and a
    one-ulp nudge of one entry (row ``nudge``) that must keep the columns apart.
    Oracle: the exact definition.
    """
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(5) * 2.0**e
    other = base * 2.0**k
    if nudge is not None:
        other[nudge] = np.nextafter(other[nudge], np.inf)
    m = np.stack([base, other, base * 3.0], axis=1)
    arithmetic, tol = ("float", 2.0**(e - 60)) if grid else ("exact", 0.0)
    g = WeightedGraph.from_biadjacency(m)
    got = _lump(g, 5, [0, 0, 0], True, arithmetic, tol)
    block, rho = _oracle(m, [0, 0, 0], True, arithmetic, tol)
    assert _canon(got.block_of.tolist()) == _canon(block)
    if arithmetic == "exact":
        assert g._edges is None, "the dense path was not taken"
        assert list(got.rho) == rho
        assert (got.block_of[5] == got.block_of[6]) == (nudge is None)


@st.composite
def _proportional_pair(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    """A matrix of exactly proportional rows (``y = r x`` computed exactly) of a hard kind.

    Entries have mantissas of at most 26 bits and exponents over a wide range,
    signs mixed so that the projections cancel; ``r`` is a positive integer of
    at most 20 bits over a power of two, so every product is exact.
    """
    m = draw(st.integers(1, 257))
    spread = draw(st.sampled_from([0, 8, 60, 300]))
    mant = draw(st.lists(st.integers(-(2**26) + 1, 2**26 - 1), min_size=m, max_size=m))
    exps = draw(st.lists(st.integers(-spread, spread), min_size=m, max_size=m))
    x = np.array([math.ldexp(a, e - 26) for a, e in zip(mant, exps, strict=True)])
    num = draw(st.integers(1, 2**20))
    den_exp = draw(st.integers(-30, 30))
    r = math.ldexp(num, den_exp)
    rows = np.stack([x, x * r, -x, x * (1.0 + 2.0**-52)])
    return rows, int(np.flatnonzero(x)[0]) if np.any(x) else -1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_proportional_pair(), st.booleans())
def test_keys_of_proportional_rows_overlap(case: tuple[np.ndarray, int], plain: bool) -> None:
    """The candidate key's error bound: exactly proportional (plain: equal) rows get
    overlapping key intervals, whatever the cancellation, dynamic range, length and the
    rows' alignment in memory (a row of odd length starts at another alignment)."""
    rows, pivot = case  # rows of odd length start at different alignments in memory
    coef = dense.signature_coefficients(rows.shape[1])
    with threads_for(rows.size):  # small: one thread, as lumpcore runs it
        key, rad, piv, pval, status, _ = dense._hash_columns(rows, not plain, 0.0, coef)
        again = dense._hash_columns(rows[::-1].copy(), not plain, 0.0, coef)
    assert not status.any()
    assert piv[0] == pivot
    # the same rows at other addresses
    assert np.all(np.abs(key - again[0][::-1]) <= rad + again[1][::-1])
    if not plain:
        assert abs(key[0] - key[1]) <= rad[0] + rad[1]  # y = r x
        assert abs(key[0] - key[2]) <= rad[0] + rad[2]  # -x: the same key (sign apart)
        assert np.sign(pval[2]) == -np.sign(pval[0]) or pivot < 0
