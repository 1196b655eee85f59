"""Hypothesis strategies for the engine tests: small weighted digraphs.

Graphs are generated as plain data (:class:`SmallGraph`: a node count and a
tuple of ``(src, dst, exact weight)`` edges) so that the brute-force oracle
can work on exact rationals without touching lumpcore.  ``SmallGraph.kind``
says in which form the weights are handed to the engine:

``'int'``       small integers, passed as an ``int64`` array;
``'fraction'``  rationals, passed as a list of :class:`fractions.Fraction`;
``'dyadic'``    small dyadic rationals, passed as a ``float64`` array (every
                value and every sum of a few of them is exact in binary
                fixed point, so float arithmetic must agree with exact);
``'float'``     general floats (``0.1``, ``1/3`` ...), passed as ``float64``;
                their exact value is the binary value of the float.

Self-loops, parallel edges, zero and negative weights all occur.
:func:`planted_graphs` builds graphs that have a known non-trivial stable
partition (the "planted" one) for a chosen direction and mode, so that merges
happen often; it lifts a small quotient graph by splitting each quotient
weight among the members of a class, with per-node factors ``rho`` in
proportional mode.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

__all__ = [
    "MODES",
    "PlantedGraph",
    "SmallGraph",
    "examples",
    "graphs_with_initial",
    "initial_partitions",
    "planted_graphs",
    "small_graphs",
]

#: The four engine modes as (direction, proportional).
MODES: tuple[tuple[str, bool], ...] = (
    ("backward", False),
    ("backward", True),
    ("forward", False),
    ("forward", True),
)

KINDS = ("int", "fraction", "dyadic", "float")


def examples(k: int) -> int:
    """``k`` examples, or the loaded profile's count when that is larger.

    The tests pin modest counts to keep the suite fast; a profile with more
    examples (``HYPOTHESIS_PROFILE=thorough``, see ``tests/conftest.py``)
    raises them all.
    """
    return max(k, settings.default.max_examples) if settings.default.max_examples > 100 else k


@dataclass(frozen=True)
class SmallGraph:
    """A small weighted digraph with exact edge weights and an input form."""

    n: int
    edges: tuple[tuple[int, int, Fraction], ...]
    kind: str

    @property
    def src(self) -> np.ndarray:
        return np.array([e[0] for e in self.edges], dtype=np.int64)

    @property
    def dst(self) -> np.ndarray:
        return np.array([e[1] for e in self.edges], dtype=np.int64)

    def weights(self) -> np.ndarray | list[Fraction]:
        """The weights in the input form of :attr:`kind`."""
        ws = [e[2] for e in self.edges]
        if self.kind == "int":
            return np.array([int(w) for w in ws], dtype=np.int64)
        if self.kind == "fraction":
            return list(ws)
        return np.array([float(w) for w in ws], dtype=np.float64)

    def float_weights(self) -> np.ndarray:
        """The weights as a ``float64`` array (exact for int/dyadic kinds)."""
        return np.array([float(e[2]) for e in self.edges], dtype=np.float64)

    @property
    def float_exact(self) -> bool:
        """True when every weight is a small dyadic (float fixed point is exact)."""
        return all(
            e[2].denominator <= 64 and (e[2].denominator & (e[2].denominator - 1)) == 0
            and abs(e[2]) <= 64
            for e in self.edges
        )

    def relabel(self, perm: Sequence[int], order: Sequence[int]) -> SmallGraph:
        """Node ``v`` becomes ``perm[v]``; edges are listed in ``order``."""
        edges = tuple(
            (perm[self.edges[k][0]], perm[self.edges[k][1]], self.edges[k][2]) for k in order
        )
        return SmallGraph(self.n, edges, self.kind)


@dataclass(frozen=True)
class PlantedGraph:
    """A graph with a planted partition stable for ``direction``/``proportional``."""

    graph: SmallGraph
    initial: tuple[Hashable, ...] | None
    planted: tuple[int, ...]  # node -> class index
    direction: str
    proportional: bool

    @property
    def planted_refines_initial(self) -> bool:
        """Whether nodes of one planted class always share their initial label."""
        if self.initial is None:
            return True
        first: dict[int, Hashable] = {}
        for v, c in enumerate(self.planted):
            if first.setdefault(c, self.initial[v]) != self.initial[v]:
                return False
        return True


# --------------------------------------------------------------- weights
def _weights(kind: str) -> st.SearchStrategy[Fraction]:
    if kind == "int":
        return st.integers(-3, 3).map(Fraction)
    if kind == "fraction":
        return st.builds(Fraction, st.integers(-6, 6), st.integers(1, 6))
    if kind == "dyadic":
        return st.integers(-24, 24).map(lambda k: Fraction(k, 8))
    # general floats: a few classic non-dyadic values plus arbitrary ones
    special = st.sampled_from([0.1, 0.2, 0.3, -0.3, 1 / 3, 2 / 3, -1 / 3, 0.7, 1e-3, 2.5])
    general = st.floats(-8, 8, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    return st.one_of(special, general).map(Fraction)


@st.composite
def small_graphs(
    draw: st.DrawFn, max_nodes: int = 7, kinds: Sequence[str] = KINDS
) -> SmallGraph:
    """Random digraphs with <= ``max_nodes`` nodes (self-loops, parallel edges)."""
    n = draw(st.integers(1, max_nodes))
    kind = draw(st.sampled_from(list(kinds)))
    node = st.integers(0, n - 1)
    edges = draw(st.lists(st.tuples(node, node, _weights(kind)), max_size=3 * n))
    # parallel copies of some edges, and self-loops, more often than chance
    extra = []
    for u, v, _ in edges:
        if draw(st.integers(0, 7)) == 0:
            extra.append((u, v, draw(_weights(kind))))
        if draw(st.integers(0, 9)) == 0:
            extra.append((u, u, draw(_weights(kind))))
    return SmallGraph(n, tuple(edges + extra), kind)


@st.composite
def initial_partitions(draw: st.DrawFn, n: int) -> tuple[Hashable, ...] | None:
    """``None``, all equal, or random labels (ints or strings) for ``n`` nodes."""
    shape = draw(st.sampled_from(["none", "one", "labels", "labels", "strings"]))
    if shape == "none":
        return None
    if shape == "one":
        return ("x",) * n
    k = draw(st.integers(1, 3))
    labels = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    if shape == "strings":
        return tuple(f"L{x}" for x in labels)
    return tuple(labels)


@st.composite
def graphs_with_initial(
    draw: st.DrawFn, max_nodes: int = 7, kinds: Sequence[str] = KINDS
) -> tuple[SmallGraph, tuple[Hashable, ...] | None]:
    """A random graph with a random initial partition; planted half the time."""
    if draw(st.booleans()):
        direction, proportional = draw(st.sampled_from(MODES))
        pg = draw(
            planted_graphs(
                direction=direction,
                proportional=proportional,
                max_nodes=max_nodes,
                kinds=[k for k in kinds if k != "float"] or ["fraction"],
            )
        )
        return pg.graph, pg.initial
    g = draw(small_graphs(max_nodes=max_nodes, kinds=kinds))
    return g, draw(initial_partitions(g.n))


# ---------------------------------------------------------------- planted
_RHO = {
    "int": [Fraction(1)],
    "dyadic": [Fraction(1), Fraction(2), Fraction(1, 2)],
    "fraction": [Fraction(1), Fraction(2), Fraction(1, 3), Fraction(3, 2)],
}


def _piece(kind: str) -> st.SearchStrategy[Fraction]:
    if kind == "int":
        return st.integers(-3, 3).map(Fraction)
    if kind == "dyadic":
        return st.integers(-8, 8).map(lambda k: Fraction(k, 4))
    return st.builds(Fraction, st.integers(-4, 4), st.integers(1, 3))


@st.composite
def planted_graphs(
    draw: st.DrawFn,
    direction: str = "backward",
    proportional: bool = False,
    max_nodes: int = 7,
    kinds: Sequence[str] = ("int", "fraction", "dyadic"),
) -> PlantedGraph:
    """A graph lifted from a quotient so that a known partition is stable.

    Backward: for every class pair (A, B) and every target ``t`` in B the
    in-weights from A add up to ``H(A, B) / rho(t)``; forward: the
    out-weights of every source ``s`` in A into B add up to
    ``H(A, B) / rho(s)``.  The split among members is random (pieces may be
    negative or zero, so sums can cancel).  Nodes are then shuffled.
    """
    kind = draw(st.sampled_from(list(kinds)))
    total = draw(st.integers(2, max_nodes))
    k = draw(st.integers(1, min(4, total)))
    # class sizes >= 1 adding up to total
    cuts = sorted(draw(st.sets(st.integers(1, total - 1), min_size=k - 1, max_size=k - 1)))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]
    cls: list[int] = [c for c, s in enumerate(sizes) for _ in range(s)]
    members = [[v for v in range(total) if cls[v] == c] for c in range(k)]
    rho = [
        draw(st.sampled_from(_RHO[kind])) if proportional else Fraction(1) for _ in range(total)
    ]
    edges: list[tuple[int, int, Fraction]] = []
    for a in range(k):
        for b in range(k):
            h = draw(st.one_of(st.just(Fraction(0)), _piece(kind)))
            if h == 0 and draw(st.booleans()):
                continue  # no edges at all between these classes
            outer = members[b] if direction == "backward" else members[a]
            inner = members[a] if direction == "backward" else members[b]
            for x in outer:
                want = h / rho[x]
                chosen = draw(st.lists(st.sampled_from(inner), min_size=1, max_size=3))
                pieces = [draw(_piece(kind)) for _ in chosen[:-1]]
                pieces.append(want - sum(pieces, Fraction(0)))
                for y, w in zip(chosen, pieces, strict=True):
                    u, v = (y, x) if direction == "backward" else (x, y)
                    edges.append((u, v, w))
    perm = draw(st.permutations(range(total)))
    edges = [(perm[u], perm[v], w) for u, v, w in edges]
    edges = draw(st.permutations(edges)) if edges else edges
    planted = [0] * total
    for v in range(total):
        planted[perm[v]] = cls[v]
    g = SmallGraph(total, tuple(edges), kind)
    # initial partition: coarser than the planted one, or arbitrary
    shape = draw(st.sampled_from(["none", "classes", "random"]))
    initial: tuple[Hashable, ...] | None
    if shape == "none":
        initial = None
    elif shape == "classes":
        r = draw(st.integers(1, k))
        initial = tuple(f"c{planted[v] % r}" for v in range(total))
    else:
        initial = tuple(draw(st.lists(st.integers(0, 2), min_size=total, max_size=total)))
    return PlantedGraph(g, initial, tuple(planted), direction, proportional)
