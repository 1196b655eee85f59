"""Long-run distributions of chains with several bottom SCCs.

Oracle, independent of the implementation (which solves for the probability
of reaching each BSCC and the stationary distribution of each): the lazy,
uniformised chain ``L = (I + P) / 2`` (``P = I + Q / Lambda`` for a CTMC) is
aperiodic and has the same long-run behaviour, so ``p0 L^(2^k)`` converges
to the long-run distribution; it is computed by repeated squaring.  Ordinary
lumping must preserve it blockwise (the quotient's long run is the sum over
each block).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from markov import CTMC, DTMC, lump, stationary


def _oracle(p: np.ndarray, p0: np.ndarray) -> np.ndarray:
    lazy = (np.eye(p.shape[0]) + p) / 2
    for _ in range(200):  # L^(2^200): far past any mixing time of these small chains
        lazy = lazy @ lazy
        lazy /= lazy.sum(axis=1, keepdims=True)  # keep rows stochastic against rounding
    return np.asarray(p0 @ lazy)


@st.composite
def _chains(draw: st.DrawFn) -> tuple[bool, list[list[Fraction]], list[Fraction]]:
    n = draw(st.integers(2, 7))
    ctmc = draw(st.booleans())
    rows: list[list[Fraction]] = []
    for u in range(n):
        absorbing = draw(st.integers(0, 4)) == 0
        row = [Fraction(0)] * n
        if not absorbing:
            for v in draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3)):
                row[v] += Fraction(draw(st.integers(1, 6)), draw(st.integers(1, 3)))
        if ctmc:
            row[u] = Fraction(0)
            row[u] = -sum(row, Fraction(0))
        else:
            total = sum(row, Fraction(0))
            row = [x / total for x in row] if total else [Fraction(int(v == u)) for v in range(n)]
        rows.append(row)
    start = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n).filter(any))
    p0 = [Fraction(x, sum(start)) for x in start]
    return ctmc, rows, p0


@settings(max_examples=120, deadline=None)
@given(_chains())
def test_long_run_matches_the_lazy_chain_limit_and_survives_lumping(
        case: tuple[bool, list[list[Fraction]], list[Fraction]]) -> None:
    ctmc, rows, p0 = case
    chain = (CTMC if ctmc else DTMC)(rows, exact=True, initial=p0)
    m = np.array([[float(x) for x in r] for r in rows])
    if ctmc:
        lam = max(1.0, float(np.max(-np.diag(m)))) * 1.5
        p = np.eye(len(rows)) + m / lam
    else:
        p = m
    want = _oracle(p, np.array([float(x) for x in p0]))
    got = stationary(chain, exact=True)
    assert sum(got) == 1 and all(x >= 0 for x in got)
    np.testing.assert_allclose([float(x) for x in got], want, atol=1e-9)
    np.testing.assert_allclose(stationary(chain), want, atol=1e-9)
    # ordinary lumping keeps the long-run probability of every block
    res = lump(chain, "ordinary", labels=(), rewards=())
    q = stationary(res.quotient, exact=True)
    block = res.block_of
    sums = [sum((got[s] for s in range(chain.n) if block[s] == b), Fraction(0))
            for b in range(res.quotient.n)]
    assert list(q) == sums
