"""Built-in example chains."""

from __future__ import annotations

from fractions import Fraction

from ._chain import CTMC

__all__ = ["paper_example_2"]

#: Off-diagonal rates of the reconstructed Example 2 (0-based states).
_EXAMPLE_2_RATES: dict[tuple[int, int], int] = {
    (0, 1): 2, (0, 2): 1, (0, 3): 1,
    (1, 4): 2, (2, 5): 1, (3, 6): 1, (2, 3): 1, (3, 2): 1,
    (4, 7): 1, (4, 5): 1, (5, 7): 1, (5, 6): 1, (6, 7): 2,
    (7, 0): 1, (7, 4): 2, (7, 5): 1, (7, 6): 1,
}


def paper_example_2() -> CTMC:
    """The 8-state CTMC of Example 2 of Ressi et al. (2022), reconstructed, exact.

    The paper's Fig. 2 (the rates) is not in the text copy; this chain is a
    **reconstruction consistent with the text**: it is irreducible, and its
    maximum proportional exact lumping (Def. 5: ``rho(v) * sum_{u in S'}
    Q(u, v)`` constant over ``v`` in ``S`` for every pair of classes,
    diagonal included) has exactly the classes ``{1}, {2,3,4}, {5,6,7},
    {8}`` (0-based ``{0}, {1,2,3}, {4,5,6}, {7}``) with
    ``rho = 1, 1, 2, 2, 1, 2, 2, 1``.  The same classes are *not* exactly
    lumpable with ``rho = 1`` (state 0 sends rate 2 to state 1 but rate 1
    to states 2 and 3), so the factors matter.  Maximality was checked by
    enumerating all 4,140 partitions of the 8 states.

    Rates (0-based): ``0->1: 2, 0->2: 1, 0->3: 1, 1->4: 2, 2->3: 1, 2->5: 1,
    3->2: 1, 3->6: 1, 4->5: 1, 4->7: 1, 5->6: 1, 5->7: 1, 6->7: 2, 7->0: 1,
    7->4: 2, 7->5: 1, 7->6: 1``.  The initial state is 0 (label ``init``);
    the labels ``first`` and ``last`` mark states 0 and 7.

    Returns
    -------
    CTMC
        Exact (rational) chain with 8 states and 17 transitions.

    References
    ----------
    A. Ressi, R. Romanello, C. Piazza, S. Rossi, *Neural Networks Reduction
    via Lumping*, AIxIA 2022, arXiv:2209.07475, Example 2 and Fig. 2.

    Examples
    --------
    >>> c = paper_example_2()
    >>> c.n, c.num_transitions, c.exact
    (8, 17, True)
    >>> [int(-c.exit_rates()[i]) for i in range(8)]
    [-4, -2, -2, -2, -2, -2, -2, -5]
    """
    n = 8
    rates = [[Fraction(0)] * n for _ in range(n)]
    for (i, j), r in _EXAMPLE_2_RATES.items():
        rates[i][j] = Fraction(r)
    return CTMC.from_rates(
        rates, labels={"init": [0], "first": [0], "last": [7]}, exact=True
    )
