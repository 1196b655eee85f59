"""The compiled bookkeeping of ``lump`` against the generic numpy/Python code.

For float CTMCs and forward kinds without ``rho`` the quotient is built by a
compiled pass and a trusted constructor (no re-validation); it must be, bit
for bit, the chain the generic path (``_quotient`` followed by the checking
constructors) builds, and a valid chain.  The rate matrix of a float chain
comes from a compiled pass too; it must hold the exact values the exact
chain's rate matrix holds.  The initial partition packs label bits; it must be
the partition by label sets (brute force), also with more than 62 labels.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from markov import CTMC, lump
from markov._chain import _Edges
from markov._lump import _initial_partition, _quotient

RATES = [0.1, 0.2, 0.3, 1 / 3, 0.5, 1.0, 2.0, 3.0, 1e-3, 7.25, 1e6]


@st.composite
def float_ctmcs(draw: st.DrawFn) -> CTMC:
    """Float CTMCs with twin states (so blocks merge), self-loops, labels, rewards."""
    n = draw(st.integers(1, 10))
    m = draw(st.integers(0, 3 * n))
    src = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    dst = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    val = draw(st.lists(st.sampled_from(RATES), min_size=m, max_size=m))
    if n >= 3:  # node n-1 copies node 0's outgoing rates: a twin for forward kinds
        for s, d, x in list(zip(src, dst, val, strict=True)):
            if s == 0:
                src.append(n - 1)
                dst.append(d)
                val.append(x)
    labels = {
        "a": draw(st.lists(st.integers(0, n - 1), max_size=n)),
        "b": draw(st.lists(st.integers(0, n - 1), max_size=n)),
    }
    rewards = {"r": draw(st.lists(st.sampled_from([0.0, 1.0, 2.5]), min_size=n, max_size=n))}
    initial = [0.0] * n  # masses 1 or 1/2 + 1/2: exact, so to_exact() accepts them
    a, b = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
    initial[a] += 0.5
    initial[b] += 0.5
    return CTMC.from_rates((n, src, dst, np.array(val, dtype=np.float64)), labels=labels,
                           rewards=rewards, initial=initial)


def _same_chain(a: CTMC, b: CTMC) -> None:
    for x, y in ((a._src, b._src), (a._dst, b._dst), (a._val, b._val), (a.initial, b.initial)):
        assert x.dtype == y.dtype and np.array_equal(x, y)
    assert a.n == b.n and a.exact == b.exact
    assert list(a.labels) == list(b.labels)
    assert all(np.array_equal(a.labels[k], b.labels[k]) for k in a.labels)
    assert list(a.rewards) == list(b.rewards)
    assert all(np.array_equal(a.rewards[k], b.rewards[k]) for k in a.rewards)
    assert (a.loops is None) == (b.loops is None)
    if a.loops is not None and b.loops is not None:
        assert np.array_equal(a.loops, b.loops)
    assert (a.variables, a.valuations) == (b.variables, b.valuations)


@settings(max_examples=60, deadline=None)
@given(float_ctmcs(), st.sampled_from(["bisim", "ordinary", "strict"]), st.booleans())
def test_compiled_forward_quotient_is_the_generic_one(chain: CTMC, kind: str,
                                                      keep_rewards: bool) -> None:
    rewards = None if keep_rewards else ()
    res = lump(chain, kind, rewards=rewards)
    q = res.quotient
    assert isinstance(q, CTMC)
    respected = sorted(x for x in chain.labels if x != "init")
    names = sorted(chain.rewards) if keep_rewards else []
    want = _quotient(chain, kind, res.block_of, None, respected, names)
    assert isinstance(want, CTMC)
    _same_chain(q, want)
    # and it is a valid chain: the checking constructor accepts the same arrays
    again = CTMC(_Edges(q.n, q._src, q._dst, q._val), labels=q.labels, initial=q.initial,
                 rewards=q.rewards)
    assert np.array_equal(again._val, q._val)
    assert not q._val.flags.writeable and not q.initial.flags.writeable


@settings(max_examples=60, deadline=None)
@given(float_ctmcs())
def test_compiled_rate_edges_hold_the_exact_rates(chain: CTMC) -> None:
    n, src, dst, val = chain.rate_edges()
    n2, src2, dst2, val2 = chain.to_exact().rate_edges()
    assert n == n2
    assert src.tolist() == src2.tolist() and dst.tolist() == dst2.tolist()
    assert [Fraction(x) for x in val.tolist()] == val2.tolist()
    # by definition: the off-diagonal generator entries plus the non-zero self-loops
    want: dict[tuple[int, int], float] = {}
    for s, d, x in zip(*chain.to_edges()[1:], strict=True):
        if s != d:
            want[(int(s), int(d))] = float(x)
    if chain.loops is not None:
        for i, x in enumerate(chain.loops.tolist()):
            if x != 0:
                want[(i, i)] = x
    assert list(zip(src.tolist(), dst.tolist(), val.tolist(), strict=True)) == [
        (s, d, want[(s, d)]) for s, d in sorted(want)
    ]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(0, 130), st.integers(0, 2**32 - 1))
def test_label_partition_is_the_partition_by_label_sets(n: int, nlab: int, seed: int) -> None:
    """With up to 130 labels (the packed code is renumbered when 62 bits fill);
    memberships from a seeded generator (drawing them one by one through
    hypothesis exceeds its entropy budget)."""
    rng = np.random.default_rng(seed)
    member = rng.random((nlab, n)) < 0.5
    labels = {f"l{i}": np.flatnonzero(member[i]).tolist() for i in range(nlab)}
    chain = CTMC.from_rates((n, [], [], np.zeros(0)), labels=labels)
    code = _initial_partition(chain, sorted(labels), [], False)
    sets = [frozenset(k for k, v in labels.items() if s in v) for s in range(n)]
    for u in range(n):
        for v in range(n):
            assert (code[u] == code[v]) == (sets[u] == sets[v])


def test_discrete_quotient_recomputes_exit_rates_that_differ() -> None:
    """With every state alone, the quotient reuses the chain's arrays only when
    its stored exit rates are the ones from_rates computes.  Here state 0
    stores 1 + 2**-52 (within the row-sum tolerance) where from_rates
    computes the sum of 1.0, 1e-16, 1e-16: the quotient must carry the
    latter, as the generic construction does."""
    rates = [[0, 1.0, 1e-16, 1e-16], [0, 0, 2.0, 0], [0, 0, 0, 3.0], [4.0, 0, 0, 0]]
    want_exit = CTMC.from_rates(rates).exit_rates()[0]
    stored = want_exit + 2.0**-52
    q = [[-stored, 1.0, 1e-16, 1e-16], [0.0, -2.0, 2.0, 0.0], [0.0, 0.0, -3.0, 3.0],
         [4.0, 0.0, 0.0, -4.0]]
    chain = CTMC(q, labels={"a": [0], "b": [1], "c": [2]})
    assert chain.exit_rates()[0] == stored != want_exit
    for kind in ("bisim", "ordinary"):
        res = lump(chain, kind)
        assert res.num_blocks == 4
        assert res.quotient.exit_rates()[0] == want_exit
        want = _quotient(chain, kind, res.block_of, None, ["a", "b", "c"], [])
        assert isinstance(want, CTMC) and isinstance(res.quotient, CTMC)
        _same_chain(res.quotient, want)
    # a chain built from its rates: the quotient is the chain's own arrays
    rated = CTMC.from_rates(rates, labels={"a": [0], "b": [1], "c": [2]})
    res = lump(rated, "bisim")
    assert res.num_blocks == 4 and res.quotient._val is rated._val


@settings(max_examples=60, deadline=None)
@given(float_ctmcs(), st.sampled_from(["exact", "proportional", "proportional-exact",
                                       "ordinary", "bisim"]))
def test_quotient_by_singletons_is_the_generic_one(chain: CTMC, kind: str) -> None:
    """With every state alone (random chains rarely merge), every kind's quotient
    is, bit for bit, what the generic construction builds from the formulas."""
    res = lump(chain, kind)
    if res.num_blocks != chain.n:
        return
    labels = sorted(x for x in chain.labels if x != "init")
    want = _quotient(chain, kind, res.block_of, res.rho, labels, sorted(chain.rewards))
    assert isinstance(want, CTMC) and isinstance(res.quotient, CTMC)
    _same_chain(res.quotient, want)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 6),
       entries=st.lists(st.tuples(st.integers(0, 5),
                                  st.one_of(st.fractions(max_denominator=10**6),
                                            st.integers(-10**30, 10**30),
                                            st.builds(lambda k: Fraction(1, 3**k),
                                                      st.integers(0, 200)))),
                        max_size=40))
def test_exact_row_sums_are_the_rational_sums(n: int, entries: list[tuple[int, Fraction]]
                                              ) -> None:
    """Exit rates of exact chains are summed as integers over one common denominator
    (falling back to Fractions for huge denominators or integers beyond int64); oracle:
    the plain sum of the Fractions, row by row."""
    from markov._chain import _row_sums

    entries = [(r % n, v) for r, v in entries]
    rows = np.array([r for r, _ in entries], dtype=np.int64)
    vals = np.empty(len(entries), dtype=object)
    vals[:] = [v for _, v in entries]
    want = [sum((v for r, v in entries if r == u), Fraction(0)) for u in range(n)]
    got = _row_sums(n, rows, vals, True)
    assert got.tolist() == want
    assert all(isinstance(x, Fraction) for x in got.tolist())
