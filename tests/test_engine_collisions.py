"""Deliberate hash collisions: exact mode must never merge distinct sums.

The engine groups sums by their residue modulo the prime ``P = 2**61 - 1``
and verifies the result exactly (see ``coarsest_lumping``'s Notes).  Weights
that differ by a multiple of ``P`` have equal residues, so these graphs force
a collision; the exact answers below are derived by hand.
"""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from lumpcore import WeightedGraph, coarsest_lumping

P = 2**61 - 1
INIT = ["S", "X", "X", "Y", "Y"]


@pytest.mark.parametrize(
    "wa,wb",
    [
        (-1, P - 1),  # both int64; -1 = P - 1 (mod P)
        (1, P + 1),  # 1 = 2**61 (mod P)
        (3, 3 + P),
        (F(1, 3), F(1, 3) + P),  # rationals: equal residues after scaling
        (F(1, 2), F(1, 2) + 5 * P),
        (F(2**70), F(2**70 + P)),  # beyond int64
    ],
    ids=str,
)
def test_collision_is_repaired_and_propagates(wa: object, wb: object) -> None:
    """s=0 sends wa to a=1 and wb to b=2 (wa != wb, equal residues); a sends
    1 to c=3 and b sends 1 to d=4.  Plain backward: a, b differ, hence c
    (receives from {a}) and d (from {b}) differ too: all singletons.
    Proportional: wa, wb > 0 are positive multiples except for (-1, P-1)."""
    g = WeightedGraph.from_edges(5, [0, 0, 1, 2], [1, 2, 3, 4], [wa, wb, 1, 1])  # type: ignore[list-item]
    plain = coarsest_lumping(g, INIT)
    assert plain.blocks == ((0,), (1,), (2,), (3,), (4,))
    prop = coarsest_lumping(g, INIT, proportional=True)
    if F(wa) > 0:  # type: ignore[arg-type]
        assert prop.blocks == ((0,), (1, 2), (3, 4))
        assert prop.rho is not None and prop.rho[2] == F(wa) / F(wb)  # type: ignore[arg-type]
    else:
        assert prop.blocks == ((0,), (1,), (2,), (3,), (4,))
    # forward: a and b each send 1 into {c, d}; s sends wa + wb: nothing splits
    # but the labels
    fwd = coarsest_lumping(g, INIT, direction="forward")
    assert fwd.blocks == ((0,), (1, 2), (3, 4))


@pytest.mark.parametrize(
    "t_vec,v_vec",
    [
        ((1, 1), (1, 1 + P)),  # (1, 1) vs (1, 2**61): equal residues, not multiples
        ((1, 2), (2, 4 + P)),  # multiple by 2 modulo P only
        ((3, 1), (6, 2 + P)),
    ],
    ids=str,
)
def test_proportional_collision(t_vec: tuple[int, int], v_vec: tuple[int, int]) -> None:
    """t=3 and v=4 receive the two coordinates from A={0} and B={1}; their
    vectors are proportional modulo P but not over the rationals: split."""
    g = WeightedGraph.from_edges(
        5, [0, 1, 0, 1], [3, 3, 4, 4], [t_vec[0], t_vec[1], v_vec[0], v_vec[1]]
    )
    lump = coarsest_lumping(g, ["A", "B", "C", "X", "X"], proportional=True)
    assert lump.blocks == ((0,), (1,), (2,), (3,), (4,))
