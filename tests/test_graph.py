"""WeightedGraph input forms and input validation.

Every accepted form (edge arrays, scipy sparse, dense numpy, nested lists of
Fractions or sympy Rationals, networkx DiGraph) must give the same lumping;
bad input must raise a lumpkit error that is also a ValueError/TypeError and
whose message names the offending value.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import sympy
from hypothesis import HealthCheck, given, settings
from strategies import MODES, SmallGraph, examples, graphs_with_initial

from lumpcore import LumpkitError, WeightedGraph, coarsest_lumping


# ------------------------------------------------------------------ helpers
def _matrix(g: SmallGraph) -> list[list[Fraction]]:
    """Dense exact matrix; parallel edges add up."""
    M = [[Fraction(0)] * g.n for _ in range(g.n)]
    for u, v, w in g.edges:
        M[u][v] += w
    return M


def _forms(g: SmallGraph) -> dict[str, Callable[[], WeightedGraph]]:
    M = _matrix(g)
    dyadic = g.float_exact
    forms: dict[str, Callable[[], WeightedGraph]] = {
        "edges-fraction": lambda: WeightedGraph.from_edges(
            g.n, g.src, g.dst, [w for _, _, w in g.edges]
        ),
        "edges-sympy": lambda: WeightedGraph.from_edges(
            g.n, g.src.tolist(), g.dst.tolist(),
            [sympy.Rational(w.numerator, w.denominator) for _, _, w in g.edges],
        ),
        "edges-strings": lambda: WeightedGraph.from_edges(
            g.n, g.src, g.dst, [f"{w.numerator}/{w.denominator}" for _, _, w in g.edges]
        ),
        "nested-fractions": lambda: WeightedGraph.from_matrix(M),
        "nested-sympy": lambda: WeightedGraph.from_matrix(
            [[sympy.Rational(x.numerator, x.denominator) for x in row] for row in M]
        ),
        "networkx": lambda: _networkx(g),
    }
    if dyadic:
        dense = np.array([[float(x) for x in row] for row in M], dtype=np.float64)
        forms |= {
            "edges-float64": lambda: WeightedGraph.from_edges(
                g.n, g.src, g.dst, g.float_weights()
            ),
            "dense-numpy": lambda: WeightedGraph.from_matrix(dense),
            "scipy-csr_array": lambda: WeightedGraph.from_matrix(sp.csr_array(dense)),
            "scipy-csr_matrix": lambda: WeightedGraph.from_matrix(sp.csr_matrix(dense)),
            # COO with the original parallel edges (duplicates are summed)
            "scipy-coo-duplicates": lambda: WeightedGraph.from_matrix(
                sp.coo_array((g.float_weights(), (g.src, g.dst)), shape=(g.n, g.n))
            ),
        }
    if all(w.denominator == 1 for _, _, w in g.edges):
        forms["edges-int64"] = lambda: WeightedGraph.from_edges(
            g.n, g.src, g.dst, np.array([int(w) for _, _, w in g.edges], dtype=np.int64)
        )
        forms["dense-int"] = lambda: WeightedGraph.from_matrix(
            np.array([[int(x) for x in row] for row in M], dtype=np.int64)
        )
    return forms


def _networkx(g: SmallGraph) -> WeightedGraph:
    G = nx.DiGraph()
    G.add_nodes_from(range(g.n))
    for u, v, w in g.edges:  # DiGraph has no parallel edges: add them up
        old = G.edges[u, v]["rate"] if G.has_edge(u, v) else Fraction(0)
        G.add_edge(u, v, rate=old + w)
    return WeightedGraph.from_networkx(G, weight="rate")


# ------------------------------------------------------------- input forms
@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs_with_initial(kinds=("int", "fraction", "dyadic")))
def test_all_input_forms_give_the_same_lumping(case: tuple) -> None:
    g, initial = case
    forms = _forms(g)
    for direction, prop in MODES:
        results = {}
        for name, make in forms.items():
            wg = make()
            assert wg.n == g.n
            lump = coarsest_lumping(wg, initial, direction=direction, proportional=prop)
            results[name] = (lump.blocks, lump.rho)
        ref = results["edges-fraction"]
        for name, res in results.items():
            assert res == ref, (name, direction, prop)


def test_networkx_node_names_and_order() -> None:
    G = nx.DiGraph()
    G.add_edge("a", "b", weight=1.0)
    G.add_edge("a", "c", weight=1.0)
    G.add_node("d")
    g = WeightedGraph.from_networkx(G)
    assert g.nodes == ("a", "b", "c", "d")
    assert coarsest_lumping(g).blocks == ((0, 3), (1, 2))  # a, d receive nothing
    h = WeightedGraph.from_networkx(G, nodelist=["d", "c", "b", "a"])
    assert h.nodes == ("d", "c", "b", "a")
    assert coarsest_lumping(h).blocks == ((0, 3), (1, 2))


def test_multidigraph_parallel_edges_add_up() -> None:
    G = nx.MultiDiGraph()
    G.add_edge(0, 2, weight=1)
    G.add_edge(0, 2, weight=1)
    G.add_edge(0, 1, weight=2)
    g = WeightedGraph.from_networkx(G, nodelist=[0, 1, 2])
    assert g.num_edges == 3
    assert coarsest_lumping(g).blocks == ((0,), (1, 2))


def test_graph_attributes() -> None:
    g = WeightedGraph.from_edges(3, [0, 1], [1, 2], np.array([1.5, -2.0]))
    assert (g.n, g.num_edges, g.weight_kind, g.nodes) == (3, 2, "float", None)
    assert g.src.dtype == np.int64 and g.dst.dtype == np.int64
    assert g.weight.dtype == np.float64
    assert not g.src.flags.writeable and not g.weight.flags.writeable
    r = g.reversed()
    assert r.src.tolist() == [1, 2] and r.dst.tolist() == [0, 1]
    assert r.weight.tolist() == [1.5, -2.0]
    gi = WeightedGraph.from_edges(2, [0], [1], np.array([3]))
    assert gi.weight_kind == "int" and gi.weight.dtype == np.int64
    gf = WeightedGraph.from_edges(2, [0], [1], [Fraction(1, 3)])
    assert gf.weight_kind == "rational" and gf.weight[0] == Fraction(1, 3)
    # the input array is copied: changing it later does not change the graph
    w = np.array([1.0])
    gc = WeightedGraph.from_edges(2, [0], [1], w)
    w[0] = 5.0
    assert gc.weight[0] == 1.0


def test_sparse_explicit_zeros_are_dropped() -> None:
    m = sp.csr_array((np.array([0.0, 2.0]), (np.array([0, 1]), np.array([1, 0]))), shape=(2, 2))
    g = WeightedGraph.from_matrix(m)
    assert g.num_edges == 1


# ---------------------------------------------------------------- bad input
def _check(err: BaseException, builtin: type[Exception], *needles: str) -> None:
    assert isinstance(err, LumpkitError), type(err)
    assert isinstance(err, builtin), type(err)
    msg = str(err)
    for s in needles:
        assert s in msg, (s, msg)


BAD_GRAPHS: list[tuple[str, Callable[[], object], type[Exception], tuple[str, ...]]] = [
    ("nan-float", lambda: WeightedGraph.from_edges(2, [0, 1], [1, 0], np.array([1.0, np.nan])),
     ValueError, ("nan", "edge 1")),
    ("inf-float", lambda: WeightedGraph.from_edges(2, [0], [1], np.array([np.inf])),
     ValueError, ("inf", "edge 0")),
    ("nan-in-list",
     lambda: WeightedGraph.from_edges(2, [0, 1], [1, 0], [Fraction(1), float("nan")]),
     ValueError, ("nan", "edge 1")),
    ("neg-inf-list",
     lambda: WeightedGraph.from_edges(2, [0, 1], [1, 0], [Fraction(1, 2), -np.inf]),
     ValueError, ("inf", "edge 1")),
    ("nan-dense", lambda: WeightedGraph.from_matrix(np.array([[0.0, np.nan], [1.0, 0.0]])),
     ValueError, ("nan",)),
    ("nan-sparse", lambda: WeightedGraph.from_matrix(sp.csr_array(np.array([[0.0, np.nan],
                                                                            [1.0, 0.0]]))),
     ValueError, ("nan",)),
    ("bad-string", lambda: WeightedGraph.from_edges(2, [0], [1], ["one half"]),
     ValueError, ("one half",)),
    ("src-out-of-range", lambda: WeightedGraph.from_edges(3, [0, 5], [1, 2], [1, 1]),
     ValueError, ("5", "src", "edge 1")),
    ("dst-negative", lambda: WeightedGraph.from_edges(3, [0, 1], [1, -1], [1, 1]),
     ValueError, ("-1", "dst", "edge 1")),
    ("lengths", lambda: WeightedGraph.from_edges(3, [0, 1], [1, 2, 0], [1, 1]),
     ValueError, ("2", "3")),
    ("weight-length", lambda: WeightedGraph.from_edges(3, [0, 1], [1, 2], [1.0, 2.0, 3.0]),
     ValueError, ("2", "3")),
    ("negative-n", lambda: WeightedGraph.from_edges(-2, [], [], []), ValueError, ("-2",)),
    ("float-src", lambda: WeightedGraph.from_edges(3, np.array([0.5]), [1], [1.0]),
     TypeError, ("src",)),
    ("non-square", lambda: WeightedGraph.from_matrix(np.ones((2, 3))), ValueError, ("(2, 3)",)),
    ("non-square-sparse", lambda: WeightedGraph.from_matrix(sp.csr_array(np.ones((3, 2)))),
     ValueError, ("(3, 2)",)),
    ("undirected", lambda: WeightedGraph.from_networkx(nx.path_graph(3)),
     TypeError, ("Graph",)),
    ("nx-missing-weight", lambda: WeightedGraph.from_networkx(nx.DiGraph([("a", "b")])),
     ValueError, ("'a'", "'b'", "weight")),
    ("nx-nan-weight", lambda: WeightedGraph.from_networkx(
        nx.DiGraph([("a", "b", {"weight": float("nan")})])), ValueError, ("nan",)),
    ("bool-weights", lambda: WeightedGraph.from_edges(2, [0], [1], np.array([True])),
     TypeError, ("bool",)),
    # a node id that is no integer: named with its edge, not only by the array's dtype
    ("fractional-src", lambda: WeightedGraph.from_edges(2, [0.5], [1], [1.0]),
     TypeError, ("src", "edge 0", "0.5")),
    ("none-dst", lambda: WeightedGraph.from_edges(2, [0, 1], [1, None], [1.0, 1.0]),
     TypeError, ("dst", "edge 1", "None")),
    ("huge-src", lambda: WeightedGraph.from_edges(2, [2**70], [1], [1.0]),
     TypeError, ("src", "edge 0", str(2**70))),
    ("text-src", lambda: WeightedGraph.from_edges(2, ["a"], [1], [1.0]),
     TypeError, ("src", "edge 0", "'a'")),
]


@pytest.mark.parametrize("make,builtin,needles", [c[1:] for c in BAD_GRAPHS],
                         ids=[c[0] for c in BAD_GRAPHS])
def test_bad_graph_input(
    make: Callable[[], object], builtin: type[Exception], needles: tuple[str, ...]
) -> None:
    with pytest.raises(builtin) as info:
        make()
    _check(info.value, builtin, *needles)


_G = WeightedGraph.from_edges(3, [0, 1], [1, 2], np.array([1.0, 2.0]))

BAD_CALLS: list[tuple[str, Callable[[], object], type[Exception], tuple[str, ...]]] = [
    ("initial-too-short", lambda: coarsest_lumping(_G, [0, 1]), ValueError, ("3", "2")),
    ("initial-too-long", lambda: coarsest_lumping(_G, np.zeros(4, dtype=np.int64)),
     ValueError, ("3", "4")),
    ("initial-unhashable", lambda: coarsest_lumping(_G, [[0], [1], [2]]), TypeError,
     ("hashable", "node 0", "[0]")),
    ("direction", lambda: coarsest_lumping(_G, direction="sideways"), ValueError, ("'sideways'",)),
    ("arithmetic", lambda: coarsest_lumping(_G, arithmetic="decimal"), ValueError, ("'decimal'",)),
    ("negative-tolerance", lambda: coarsest_lumping(_G, arithmetic="float", tolerance=-0.5),
     ValueError, ("-0.5",)),
    ("nan-tolerance", lambda: coarsest_lumping(_G, arithmetic="float", tolerance=float("nan")),
     ValueError, ("nan",)),
    ("tolerance-in-exact", lambda: coarsest_lumping(_G, tolerance=1e-3), ValueError, ("0.001",)),
    ("not-a-graph", lambda: coarsest_lumping(np.eye(3)), TypeError, ("ndarray",)),
]


@pytest.mark.parametrize("make,builtin,needles", [c[1:] for c in BAD_CALLS],
                         ids=[c[0] for c in BAD_CALLS])
def test_bad_call(
    make: Callable[[], object], builtin: type[Exception], needles: tuple[str, ...]
) -> None:
    with pytest.raises(builtin) as info:
        make()
    _check(info.value, builtin, *needles)


def test_block_sums_bad_input() -> None:
    from lumpcore import block_sums

    with pytest.raises(ValueError) as info:
        block_sums(_G, [0, 0])
    _check(info.value, ValueError, "3")
    with pytest.raises(ValueError) as info:
        block_sums(_G, [0, 0, 0], direction="up")
    _check(info.value, ValueError, "'up'")
    # a fractional or negative block index names the node (-1 was taken as a block)
    for bad, node, shown in (([0.5, 0, 0], "node 0", "0.5"), ([0, -1, 0], "node 1", "-1")):
        with pytest.raises(ValueError) as info:
            block_sums(_G, bad)
        _check(info.value, ValueError, node, shown)
