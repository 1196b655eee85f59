"""Regressions found by an independent brute-force campaign on the engine's public API.

Every expected answer below follows from the definition (worked out in the
docstring of each test, or computed by :func:`brute_force`, a plain
enumeration of every partition with :class:`fractions.Fraction`), never from
what the engine printed.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from lumpcore import (
    LumpkitError,
    WeightedGraph,
    block_sums,
    coarsest_lumping,
    rational_to_str,
    to_rational,
    to_rationals,
)

Edge = tuple[int, int, Fraction]


# ------------------------------------------------------------------ the oracle
def _partitions(labels: Sequence[int]) -> list[tuple[int, ...]]:
    """Every set partition refining ``labels`` (node -> block, blocks by first node)."""
    out: list[tuple[int, ...]] = []

    def rec(v: int, bo: list[int], block_label: list[int]) -> None:
        if v == len(labels):
            out.append(tuple(bo))
            return
        for b, lab in enumerate(block_label):
            if lab == labels[v]:
                rec(v + 1, [*bo, b], block_label)
        rec(v + 1, [*bo, len(block_label)], [*block_label, labels[v]])

    rec(0, [], [])
    return out


def _vectors(
    n: int, edges: Sequence[Edge], bo: Sequence[int], direction: str
) -> list[list[Fraction]]:
    vec = [[Fraction(0)] * (max(bo) + 1) for _ in range(n)]
    for u, v, w in edges:
        if direction == "backward":
            vec[v][bo[u]] += w
        else:
            vec[u][bo[v]] += w
    return vec


def _factor(a: list[Fraction], b: list[Fraction]) -> Fraction | None:
    """``c > 0`` with ``a == c * b`` (1 for two zero vectors), else None."""
    nz = [k for k, x in enumerate(a) if x]
    if nz != [k for k, x in enumerate(b) if x]:
        return None
    if not nz:
        return Fraction(1)
    c = a[nz[0]] / b[nz[0]]
    return c if c > 0 and all(a[k] == c * b[k] for k in nz) else None


def brute_force(
    n: int, edges: Sequence[Edge], initial: Sequence[Hashable] | None, direction: str,
    proportional: bool,
) -> tuple[tuple[tuple[int, ...], ...], list[Fraction] | None]:
    """Blocks and ``rho`` (normalised to 1 on each block's smallest node) of the coarsest
    stable partition, by enumeration."""
    index: dict[Hashable, int] = {}
    labels = [index.setdefault(x, len(index)) for x in (initial or [0] * n)]
    best = None
    for bo in _partitions(labels):
        vec = _vectors(n, edges, bo, direction)
        first = {b: bo.index(b) for b in set(bo)}
        if all((_factor(vec[first[bo[v]]], vec[v]) is not None) if proportional
               else vec[first[bo[v]]] == vec[v] for v in range(n)):
            if best is None or max(bo) < max(best):
                best = bo
    assert best is not None
    blocks = tuple(tuple(v for v in range(n) if best[v] == b) for b in range(max(best) + 1))
    rho = None
    if proportional:
        vec = _vectors(n, edges, best, direction)
        rho = [_factor(vec[blocks[best[v]][0]], vec[v]) for v in range(n)]
    return blocks, rho  # type: ignore[return-value]


def _edges(src: Sequence[int], dst: Sequence[int], w: Sequence[Any]) -> list[Edge]:
    return [(u, v, to_rational(x)) for u, v, x in zip(src, dst, w, strict=True)]


# ---------------------------------------------------------------- the counters
@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_splits_count_sign_splits(direction: str) -> None:
    """Node 0 has the vector (1.5, -1.0) (forward: out to 0, 1), node 1 (0, 0):
    not multiples, two blocks; the split is found as a sign split."""
    src, dst, w = [1, 0], [0, 0], [-1.0, 1.5]
    if direction == "backward":
        src, dst = dst, src
    g = WeightedGraph.from_edges(2, src, dst, w)
    lump = coarsest_lumping(g, direction=direction, proportional=True)
    blocks, _ = brute_force(2, _edges(src, dst, w), None, direction, True)
    assert lump.blocks == blocks == ((0,), (1,))
    assert lump.splits == 1


def test_splits_count_an_exact_repair() -> None:
    """``2**62 + 1`` and ``3`` are equal modulo ``2**61 - 1``: the hashed core merges
    nodes 2 and 3, the exact verification splits them; that split counts too."""
    g = WeightedGraph.from_edges(4, [0, 0], [2, 3], [2**62 + 1, 3])
    lump = coarsest_lumping(g, [0, 1, 2, 2])
    assert lump.blocks == ((0,), (1,), (2,), (3,))
    assert lump.splits == 1


# ------------------------------------------------- magnitudes near the range ends
@pytest.mark.parametrize("arithmetic", ["exact", "float"])
@pytest.mark.parametrize("proportional", [False, True])
@pytest.mark.parametrize("dense", [False, True])
def test_sums_beyond_float64_range(arithmetic: str, proportional: bool, dense: bool) -> None:
    """Column sums of |w| overflow float64 (2 * 1.7e308 + 1, exponents far apart):
    no OverflowError.  Targets 3 and 4 receive (1.7e308, 1.7e308, 1) and target 5
    (1.7e308, the next float below, 1): {3, 4} | {5} (also proportionally: the
    entries 1 fix the factor to 1)."""
    big = 1.7e308
    below = float(np.nextafter(big, 0.0))
    matrix = np.array([[big, big, big], [big, big, below], [1.0, 1.0, 1.0]])
    if dense:
        g = WeightedGraph.from_biadjacency(matrix)
    else:
        rows, cols = np.nonzero(matrix)
        g = WeightedGraph.from_edges(6, rows, cols + 3, matrix[rows, cols])
    lump = coarsest_lumping(g, [0, 1, 2, 3, 3, 3], proportional=proportional,
                            arithmetic=arithmetic)
    assert lump.blocks == ((0,), (1,), (2,), (3, 4), (5,))


def test_subnormal_weights_report_a_nonzero_resolution() -> None:
    """Float mode, tolerance 0, weights 5e-324: the grid step is the smallest float
    (every float is a multiple of it), not a step that underflows to 0."""
    g = WeightedGraph.from_edges(3, [0, 0, 1], [1, 2, 2], [5e-324, 5e-324, 5e-324])
    lump = coarsest_lumping(g, arithmetic="float")
    assert lump.resolution == 5e-324
    assert lump.blocks == ((0,), (1,), (2,))  # in-sums 0, 5e-324, 1e-323


def test_large_int64_weights_are_rounded_as_integers() -> None:
    """int64 weights beyond 2**53 must not pass through float64 before rounding.

    Grid 1: ``2**60`` and ``2**60 + 1`` stay apart.  Tolerance 0: the step is
    2 (sums up to 2**61 + 3), ``(2**60 + 3) / 2 = 2**59 + 1.5`` rounds to
    ``2**59 + 2`` while ``2**60 / 2 = 2**59``: apart as well."""
    g = WeightedGraph.from_edges(4, [0, 0], [2, 3], np.array([2**60, 2**60 + 1]))
    assert g.weight.dtype == np.int64
    assert coarsest_lumping(g, [0, 1, 2, 2], arithmetic="float",
                            tolerance=1.0).blocks == ((0,), (1,), (2,), (3,))
    g = WeightedGraph.from_edges(4, [0, 0], [2, 3], np.array([2**60, 2**60 + 3]))
    lump = coarsest_lumping(g, [0, 1, 2, 2], arithmetic="float")
    assert lump.resolution == 2.0
    assert lump.blocks == ((0,), (1,), (2,), (3,))


def test_rationals_beyond_float64_in_float_mode() -> None:
    """``10**400`` and ``10**400 + 1``: grid 1 keeps them apart, grid 10 rounds
    both to ``10**399`` steps; without a tolerance there is no float grid step:
    a clear error."""
    big = Fraction(10**400)
    g = WeightedGraph.from_edges(4, [0, 0], [2, 3], [big, big + 1])
    init = [0, 1, 2, 2]
    assert coarsest_lumping(g, init, arithmetic="float", tolerance=1.0).blocks == (
        (0,), (1,), (2,), (3,))
    assert coarsest_lumping(g, init, arithmetic="float", tolerance=10.0).blocks == (
        (0,), (1,), (2, 3))
    with pytest.raises(ValueError, match="arithmetic='exact'") as info:
        coarsest_lumping(g, init, arithmetic="float")
    assert isinstance(info.value, LumpkitError)


def test_tiny_rationals_get_the_finest_float_grid() -> None:
    """Weights 1e-400 and 2e-400 (rationals below every float): tolerance 0 picks
    the finest float step 2**-1074, not 1.0 (it was chosen from float values
    that underflowed to 0)."""
    g = WeightedGraph.from_edges(2, [0, 0], [0, 1], [Fraction(1, 10**400), Fraction(2, 10**400)])
    lump = coarsest_lumping(g, arithmetic="float")
    assert lump.resolution == 2.0**-1074
    assert coarsest_lumping(g).blocks == ((0,), (1,))


# ------------------------------------------------------------- parallel edges
@pytest.mark.parametrize("tolerance", [1.0, 0.5, 0.0])
def test_parallel_edges_are_rounded_as_their_sum(tolerance: float) -> None:
    """Node 1 gets 0.3 + 0.3 from node 0, node 2 gets 0.6 (the same float as
    0.3 + 0.3): one edge carrying the sum, rounded once, so they merge.  Rounding
    each 0.3 on the grid 1 would give 0 and split them."""
    g = WeightedGraph.from_edges(3, [0, 0, 0], [1, 1, 2], [0.3, 0.3, 0.6])
    lump = coarsest_lumping(g, [0, 1, 1], arithmetic="float", tolerance=tolerance)
    assert lump.blocks == ((0,), (1, 2))


def test_coo_duplicates_are_one_matrix_entry_in_float_mode() -> None:
    """A scipy COO matrix with duplicate entries means their sum (scipy's own
    convention): entry (0, 1) is 0.6 like entry (0, 2); grid 1 rounds both to 1."""
    m = sp.coo_array((np.array([0.3, 0.3, 0.6]), (np.array([0, 0, 0]), np.array([1, 1, 2]))),
                     shape=(3, 3))
    g = WeightedGraph.from_matrix(m)
    lump = coarsest_lumping(g, [0, 1, 1], arithmetic="float", tolerance=1.0)
    assert lump.blocks == ((0,), (1, 2))


@pytest.mark.parametrize("tolerance", [2.0**-60, 0.0])
def test_parallel_edges_are_summed_exactly(tolerance: float) -> None:
    """0.1 + 0.2 is exactly 0.3000000000000000166..., not a float; float addition
    gives 0.30000000000000004 (0.3000000000000000444...).  Both are multiples of
    2**-60, so with node 2 receiving 0.30000000000000004 the exact sum keeps
    nodes 1 and 2 apart (a float sum would merge them).  Tolerance 0 picks the
    same step: sums below 0.5 fit 63-bit fixed point with 2**-60."""
    g = WeightedGraph.from_edges(3, [0, 0, 0], [1, 1, 2], [0.1, 0.2, 0.1 + 0.2])
    edges = [(0, 1, Fraction(0.1) + Fraction(0.2)), (0, 2, Fraction(0.1 + 0.2))]
    step = Fraction(2) ** -60
    rounded = [(u, v, round(w / step) * step) for u, v, w in edges]
    expected, _ = brute_force(3, rounded, [0, 1, 1], "backward", False)
    lump = coarsest_lumping(g, [0, 1, 1], arithmetic="float", tolerance=tolerance)
    assert lump.resolution == 2.0**-60
    assert lump.blocks == expected == ((0,), (1,), (2,))


@pytest.mark.parametrize("tolerance", [1e300, 0.0])
def test_parallel_edges_summing_beyond_float64(tolerance: float) -> None:
    """Nodes 1 and 2 each get 1.7e308 + 1.7e308 (a sum beyond float64), node 3 gets
    1.7e308 once: {1, 2} | {3} on every grid that can hold them."""
    big = 1.7e308
    g = WeightedGraph.from_edges(4, [0] * 5, [1, 1, 2, 2, 3], [big] * 5)
    lump = coarsest_lumping(g, [0, 1, 1, 1], arithmetic="float", tolerance=tolerance)
    assert lump.blocks == ((0,), (1, 2), (3,))


# ---------------------------------------------------------- extended precision
def test_longdouble_weights_are_taken_exactly() -> None:
    """``numpy.longdouble('0.1')`` is not the float64 0.1: exact mode keeps it apart."""
    ld = np.longdouble("0.1")
    if Fraction(*ld.as_integer_ratio()) == Fraction(0.1):
        pytest.skip("numpy.longdouble is float64 on this platform")
    assert to_rational(ld) == Fraction(*ld.as_integer_ratio())
    w = np.array([ld, np.longdouble(0.1)], dtype=np.longdouble)
    g = WeightedGraph.from_edges(3, [0, 0], [1, 2], w)
    assert coarsest_lumping(g, [0, 1, 1]).blocks == ((0,), (1,), (2,))
    same = WeightedGraph.from_edges(3, [0, 0], [1, 2], np.array([0.5, 0.5], dtype=np.longdouble))
    assert same.weight.dtype == np.float64


# ---------------------------------------------------------------- validation
def _raises(exc: type[Exception], fn: Any, *needles: str) -> None:
    with pytest.raises(exc) as info:
        fn()
    assert isinstance(info.value, LumpkitError), repr(info.value)
    for needle in needles:
        assert needle in str(info.value)


def test_clear_errors_for_bad_input() -> None:
    g = WeightedGraph.from_edges(3, [0, 1], [1, 2], [1.0, 2.0])
    _raises(TypeError, lambda: WeightedGraph.from_edges(2, [0], [1], 1.0), "weight", "float")
    _raises(ValueError, lambda: WeightedGraph.from_matrix([[1, 2], [3]]), "rectangular")
    _raises(ValueError, lambda: WeightedGraph.from_biadjacency([[1.0], [2.0, 3.0]]),
            "rectangular")
    _raises(ValueError, lambda: WeightedGraph.from_edges(
        2, np.array([2**63], dtype=np.uint64), [0], [1.0]), str(2**63))
    _raises(TypeError, lambda: coarsest_lumping(g, proportional="no"),  # type: ignore[arg-type]
            "'no'")
    _raises(TypeError, lambda: coarsest_lumping(g, proportional=None),  # type: ignore[arg-type]
            "None")
    _raises(ValueError, lambda: coarsest_lumping(
        g, direction=np.array(["backward"])),  # type: ignore[arg-type]
            "direction")
    _raises(ValueError, lambda: coarsest_lumping(g, arithmetic="float", tolerance=10**400),
            "tolerance")
    _raises(TypeError, lambda: block_sums(None, [0, 0, 0]),  # type: ignore[arg-type]
            "WeightedGraph")
    _raises(TypeError, lambda: to_rationals("12"), "to_rational")
    _raises(TypeError, lambda: to_rationals(None), "NoneType")  # type: ignore[arg-type]
    _raises(ValueError, lambda: rational_to_str(float("nan")), "nan")  # type: ignore[arg-type]
    _raises(ValueError, lambda: rational_to_str(True), "boolean")  # type: ignore[arg-type]


def test_unhashable_nodelist_is_a_clear_error() -> None:
    nx = pytest.importorskip("networkx")
    graph = nx.DiGraph([(1, 2, {"weight": 1.0})])
    _raises(TypeError, lambda: WeightedGraph.from_networkx(
        graph, nodelist=[[1], 2]),  # type: ignore[list-item]
            "hashable")


def test_numpy_integer_tolerance_is_a_tolerance() -> None:
    """``np.int64(1)`` is accepted like the int 1 (weights 0.4 and 0.6 round to 0 and 1)."""
    g = WeightedGraph.from_edges(3, [0, 0], [1, 2], [0.4, 0.6])
    tols: tuple[Any, ...] = (1, np.int64(1), 1.0)
    for tol in tols:
        lump = coarsest_lumping(g, [0, 1, 1], arithmetic="float", tolerance=tol)
        assert lump.blocks == ((0,), (1,), (2,))
        assert lump.resolution == 1.0
