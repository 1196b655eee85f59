"""Golden table: hand-made graphs with hand-derived coarsest partitions.

One table, run against all four modes and both arithmetics.  Every expected
partition (and every expected ``rho``) below was derived by hand; the
derivation is sketched in each case's comment.  Nodes are 0-based.  The
table is additionally cross-checked against the brute-force oracle of
``test_engine_oracle`` so that a slip in a hand derivation cannot hide.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from fractions import Fraction as F

import numpy as np
import pytest
from test_engine_oracle import check_lumping_shape, check_rho, oracle_coarsest

from lumpcore import WeightedGraph, coarsest_lumping

BP, BX, FP, FX = ("backward", False), ("backward", True), ("forward", False), ("forward", True)
Partition = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Golden:
    name: str
    n: int
    edges: tuple[tuple[int, int, F], ...]
    initial: tuple[Hashable, ...] | None
    expected: dict[tuple[str, bool], Partition]
    # hand-derived rho (proportional modes), None where rho is not determined
    rho: dict[tuple[str, bool], tuple[F | None, ...]] = field(default_factory=dict)


def E(*triples: tuple[int, int, object]) -> tuple[tuple[int, int, F], ...]:
    return tuple((u, v, F(w)) for u, v, w in triples)  # type: ignore[arg-type]


def singletons(n: int) -> Partition:
    return tuple((v,) for v in range(n))


def same(p: Partition) -> dict[tuple[str, bool], Partition]:
    return {BP: p, BX: p, FP: p, FX: p}


# The paper's Example 2 (Fig. 2), states 1..8 -> nodes 0..7, built by hand as
# a generator Q (diagonal included, rows sum to 0):
#   0 -> 1, 2, 3 at rates 2, 1, 1          (in-sums x rho = 2 for S2)
#   1 -> 4, 5 at 2, 2;  2 -> 4 at 2;  3 -> 6 at 2
#        (S2 -> S3 column sums 4, 2, 2 = 4 / rho; S2's own column sums are the
#         diagonals -4, -2, -2 = -4 / rho)
#   4 -> 7 at 2;  5 -> 7 at 1;  6 -> 7 at 1   (diagonals -2, -1, -1 = -2 / rho)
#   7 -> 0 at 1
# Backward proportional from one block: column sums -3 -2 -1 -1 2 1 1 3 split
# by sign into N = {0..3}, P = {4..7}; the (N, P) vectors are 0: (-4, 1),
# 1: (-2, 0), 2, 3: (-1, 0), 4: (4, -2), 5, 6: (2, -1), 7: (0, 3), giving
# {0}, {1,2,3}, {4,5,6}, {7}, stable by construction: the maximum, with
# rho = 1,1,2,2,1,2,2,1.  Backward plain: column sums give {0} {1} {2,3} {4}
# {5,6} {7}; 5 gets 2 from {1} but 6 gets 2 from {2,3}: split; {2,3} only
# receive from 0 and themselves: stays.  Not exactly lumpable with the
# classes (S1 -> S2 sums are 2, 1, 1).  Forward: all row sums are 0, so the
# one-block partition is stable (ordinary lumpability is trivial here).
EXAMPLE2 = Golden(
    "paper-example-2",
    8,
    E(
        (0, 1, 2), (0, 2, 1), (0, 3, 1), (0, 0, -4),
        (1, 4, 2), (1, 5, 2), (1, 1, -4),
        (2, 4, 2), (2, 2, -2),
        (3, 6, 2), (3, 3, -2),
        (4, 7, 2), (4, 4, -2),
        (5, 7, 1), (5, 5, -1),
        (6, 7, 1), (6, 6, -1),
        (7, 0, 1), (7, 7, -1),
    ),
    None,
    {
        BP: ((0,), (1,), (2, 3), (4,), (5,), (6,), (7,)),
        BX: ((0,), (1, 2, 3), (4, 5, 6), (7,)),
        FP: ((0, 1, 2, 3, 4, 5, 6, 7),),
        FX: ((0, 1, 2, 3, 4, 5, 6, 7),),
    },
    {BX: (F(1), F(1), F(2), F(2), F(1), F(2), F(2), F(1))},
)

GOLDEN: list[Golden] = [
    EXAMPLE2,
    # A chain is discrete in every mode: the distance from the source (or to
    # the sink) separates every node.
    Golden("chain", 4, E((0, 1, 1), (1, 2, 1), (2, 3, 1)), None, same(singletons(4))),
    # Out-star 0 -> 1,2,3,4 with weights 1, 1, 2, -1.  Backward: leaves are
    # told apart by their single in-weight (proportional: 1, 1, 2 are positive
    # multiples, -1 is not).  Forward: only 0 has out-weight.
    Golden(
        "out-star",
        5,
        E((0, 1, 1), (0, 2, 1), (0, 3, 2), (0, 4, -1)),
        None,
        {
            BP: ((0,), (1, 2), (3,), (4,)),
            BX: ((0,), (1, 2, 3), (4,)),
            FP: ((0,), (1, 2, 3, 4)),
            FX: ((0,), (1, 2, 3, 4)),
        },
        {BX: (None, F(1), F(1), F(1, 2), F(1))},
    ),
    # In-star: the mirror image (backward and forward swap).
    Golden(
        "in-star",
        5,
        E((1, 0, 1), (2, 0, 1), (3, 0, 2), (4, 0, -1)),
        None,
        {
            BP: ((0,), (1, 2, 3, 4)),
            BX: ((0,), (1, 2, 3, 4)),
            FP: ((0,), (1, 2), (3,), (4,)),
            FX: ((0,), (1, 2, 3), (4,)),
        },
        {FX: (None, F(1), F(1), F(1, 2), F(1))},
    ),
    # Unit cycle: every node receives and sends 1 from/to the one block.
    Golden(
        "cycle",
        4,
        E((0, 1, 1), (1, 2, 1), (2, 3, 1), (3, 0, 1)),
        None,
        same(((0, 1, 2, 3),)),
        {BX: (F(1),) * 4, FX: (F(1),) * 4},
    ),
    # Alternating labels on the unit cycle are stable as they are.
    Golden(
        "cycle-alternating-labels",
        4,
        E((0, 1, 1), (1, 2, 1), (2, 3, 1), (3, 0, 1)),
        ("a", "b", "a", "b"),
        same(((0, 2), (1, 3))),
    ),
    # One distinguished node on the cycle propagates around it: discrete.
    Golden(
        "cycle-one-marked",
        4,
        E((0, 1, 1), (1, 2, 1), (2, 3, 1), (3, 0, 1)),
        (0, 1, 1, 1),
        same(singletons(4)),
    ),
    # Weights 1, 2, 1, 2 around the cycle: in-sums 2, 1, 2, 1 (out-sums
    # 1, 2, 1, 2) give {0,2}, {1,3} in plain mode (stable: A = {0,2} sends 1
    # to each of 1, 3; B sends 2 to each of 0, 2); in proportional mode all
    # single sums are positive multiples: one block.
    Golden(
        "cycle-weighted",
        4,
        E((0, 1, 1), (1, 2, 2), (2, 3, 1), (3, 0, 2)),
        None,
        {
            BP: ((0, 2), (1, 3)),
            BX: ((0, 1, 2, 3),),
            FP: ((0, 2), (1, 3)),
            FX: ((0, 1, 2, 3),),
        },
        {
            BX: (F(1), F(2), F(1), F(2)),
            FX: (F(1), F(1, 2), F(1), F(1, 2)),
        },
    ),
    # THEORY.md erratum network as a plain graph, layers as initial labels:
    # x=0, u1=1 (x), u2=2 (2x), v=3 (u1), t=4 (u2), o=5 (v - t).  Backward
    # proportional on *unscaled* sums merges u1 ~ u2 (1 vs 2) and then v ~ t
    # (each receives 1 from {u1, u2}): the graph engine computes what the
    # printed Definition 6 allows; scaling by the source rho is nnreduce's job.
    # Plain backward: u1, u2 differ, then v, t differ.  Forward: v, t send
    # +1 / -1 to o (negative factor), which then separates u1 and u2.
    Golden(
        "erratum-network",
        6,
        E((0, 1, 1), (0, 2, 2), (1, 3, 1), (2, 4, 1), (3, 5, 1), (4, 5, -1)),
        ("in", "L1", "L1", "L2", "L2", "out"),
        {
            BP: singletons(6),
            BX: ((0,), (1, 2), (3, 4), (5,)),
            FP: singletons(6),
            FX: singletons(6),
        },
        {BX: (None, F(1), F(1, 2), F(1), F(1), None)},
    ),
    # Zero-weight cancellation: A = {0,1,2} sends 1/2 + 1/4 - 3/4 = 0 to node 3
    # and 1 - 1 = 0 to node 4: backward every sum is 0 (one block per label).
    # Forward: out-sums into B are 3/2, -3/4, -3/4: {0} | {1,2} (also in
    # proportional mode, where 3/2 vs -3/4 is a negative factor).
    Golden(
        "zero-cancellation",
        5,
        E((0, 3, F(1, 2)), (1, 3, F(1, 4)), (2, 3, F(-3, 4)), (0, 4, 1), (1, 4, -1)),
        ("a", "a", "a", "b", "b"),
        {
            BP: ((0, 1, 2), (3, 4)),
            BX: ((0, 1, 2), (3, 4)),
            FP: ((0,), (1, 2), (3, 4)),
            FX: ((0,), (1, 2), (3, 4)),
        },
        {FX: (F(1), F(1), F(1), None, None)},
    ),
    # Parallel edges cancelling (3 - 3) and an explicit zero edge: all sums 0.
    Golden(
        "zero-parallel",
        3,
        E((0, 1, 3), (0, 1, -3), (0, 2, 0), (2, 2, 0)),
        None,
        same(((0, 1, 2),)),
    ),
    # v = -t must NOT merge in proportional mode: in-weights 1 and -1.
    # Forward, node 0 sends 1 - 1 = 0 into the one block: all zero, one block.
    Golden(
        "negative-factor",
        3,
        E((0, 1, 1), (0, 2, -1)),
        None,
        {BP: singletons(3), BX: singletons(3), FP: ((0, 1, 2),), FX: ((0, 1, 2),)},
    ),
    # Same with the source in its own initial block: forward sends 0 into
    # {1,2}; 1, 2 have no out-edges: {0} | {1,2}.
    Golden(
        "negative-factor-labelled",
        3,
        E((0, 1, 1), (0, 2, -1)),
        ("s", "t", "t"),
        {BP: singletons(3), BX: singletons(3), FP: ((0,), (1, 2)), FX: ((0,), (1, 2))},
    ),
    # Positive factor 2: proportional backward merges 1 and 2 (rho 1, 1/2).
    Golden(
        "positive-factor",
        3,
        E((0, 1, 1), (0, 2, 2)),
        None,
        {BP: singletons(3), BX: ((0,), (1, 2)), FP: ((0,), (1, 2)), FX: ((0,), (1, 2))},
        {BX: (None, F(1), F(1, 2))},
    ),
    # Self-loops, one of them given as two parallel loops 1 + 1: sums 2, 2, 4.
    Golden(
        "self-loops-parallel",
        3,
        E((0, 0, 2), (1, 1, 1), (1, 1, 1), (2, 2, 4)),
        None,
        {BP: ((0, 1), (2,)), BX: ((0, 1, 2),), FP: ((0, 1), (2,)), FX: ((0, 1, 2),)},
        {BX: (F(1), F(1), F(1, 2)), FX: (F(1), F(1), F(1, 2))},
    ),
    # Two source blocks: target vectors (1, 2), (2, 4), (1, 1) over ({0}, {1}):
    # proportional merges the first two (factor 2), plain none.
    Golden(
        "two-coordinates",
        5,
        E((0, 2, 1), (1, 2, 2), (0, 3, 2), (1, 3, 4), (0, 4, 1), (1, 4, 1)),
        (0, 1, 2, 2, 2),
        {
            BP: singletons(5),
            BX: ((0,), (1,), (2, 3), (4,)),
            FP: ((0,), (1,), (2, 3, 4)),
            FX: ((0,), (1,), (2, 3, 4)),
        },
        {BX: (None, None, F(1), F(1, 2), F(1))},
    ),
]

# (arithmetic, tolerance, weight form): every golden weight is a multiple of
# 1/4, so the fixed-point grids below represent them exactly.
ARITHMETICS = [
    ("exact", 0.0, "fraction"),
    ("exact", 0.0, "float64"),
    ("float", 0.0, "float64"),
    ("float", 2.0**-8, "float64"),
    ("float", 0.0, "fraction"),
]


def _graph(case: Golden, form: str) -> WeightedGraph:
    src = [u for u, _, _ in case.edges]
    dst = [v for _, v, _ in case.edges]
    if form == "fraction":
        w: object = [x for _, _, x in case.edges]
    else:
        w = np.array([float(x) for _, _, x in case.edges], dtype=np.float64)
    return WeightedGraph.from_edges(case.n, src, dst, w)  # type: ignore[arg-type]


@pytest.mark.parametrize("arith", ARITHMETICS, ids=lambda a: f"{a[0]}-{a[1]}-{a[2]}")
@pytest.mark.parametrize("mode", [BP, BX, FP, FX], ids=lambda m: f"{m[0]}-{m[1]}")
@pytest.mark.parametrize("case", GOLDEN, ids=lambda c: c.name)
def test_golden(case: Golden, mode: tuple[str, bool], arith: tuple[str, float, str]) -> None:
    arithmetic, tolerance, form = arith
    direction, prop = mode
    lump = coarsest_lumping(
        _graph(case, form),
        case.initial,
        direction=direction,
        proportional=prop,
        arithmetic=arithmetic,
        tolerance=tolerance,
    )
    check_lumping_shape(lump, case.n)
    assert lump.blocks == case.expected[mode]
    check_rho(lump, case.n, case.edges, exact=arithmetic == "exact")
    if mode in case.rho:
        assert lump.rho is not None
        for v, want in enumerate(case.rho[mode]):
            if want is not None:
                assert lump.rho[v] == want, (v, lump.rho[v], want)


@pytest.mark.parametrize("case", GOLDEN, ids=lambda c: c.name)
def test_golden_table_agrees_with_oracle(case: Golden) -> None:
    """The hand derivations above, re-checked by brute force."""
    assert oracle_coarsest(case.n, case.edges, case.initial) == case.expected


def test_example2_is_a_generator_and_not_exactly_lumpable() -> None:
    """Example 2 is a CTMC generator whose classes are proportionally but not
    plainly exact-lumpable (checked directly on the matrix)."""
    Q = np.zeros((8, 8), dtype=object)
    Q[:] = F(0)
    for u, v, w in EXAMPLE2.edges:
        Q[u, v] += w
    assert all(sum(Q[i, :]) == 0 for i in range(8))
    assert all(Q[i, j] >= 0 for i in range(8) for j in range(8) if i != j)
    classes = [(0,), (1, 2, 3), (4, 5, 6), (7,)]
    rho = EXAMPLE2.rho[BX]
    plain_ok = True
    for S in classes:
        for Sp in classes:
            sums = [sum(Q[u, v] for u in Sp) for v in S]
            assert len({rho[v] * s for v, s in zip(S, sums, strict=True)}) == 1  # type: ignore[operator]
            plain_ok &= len(set(sums)) == 1
    assert not plain_ok


def test_tolerance_merges_float_cancellation() -> None:
    """0.1 + 0.2 - 0.3 is not 0 at the floats' exact binary values, but is 0
    on the grid 1e-9 Z (0.1, 0.2, -0.3 are each rounded to 1e8, 2e8, -3e8
    grid steps).  Node 3 receives that sum, node 4 receives nothing."""
    src, dst, w = [0, 1, 2], [3, 3, 3], [0.1, 0.2, -0.3]
    exact_sum = F(0.1) + F(0.2) + F(-0.3)
    assert exact_sum != 0  # by hand: 2**-55
    assert exact_sum == F(1, 2**55)
    g = WeightedGraph.from_edges(5, src, dst, np.array(w))
    init = ["s", "s", "s", "t", "t"]
    for prop in (False, True):
        exact = coarsest_lumping(g, init, proportional=prop)
        assert exact.blocks == ((0, 1, 2), (3,), (4,))
        fl = coarsest_lumping(g, init, proportional=prop, arithmetic="float", tolerance=1e-9)
        assert fl.blocks == ((0, 1, 2), (3, 4))
        assert fl.resolution == 1e-9
