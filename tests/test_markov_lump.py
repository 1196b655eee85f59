"""Lumping of chains: every notion against a brute-force oracle, and every claim
of THEORY section 2 (positive and negative) against the unreduced chain.

Chains are random with PLANTED lumpable structure (including non-trivial
rho); expectations come from the definitions (exact rational checks), from
enumerating all partitions, or from numerically solving the unreduced chain.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import markov
from markov import CTMC, DTMC, lump, paper_example_2, stationary, transient

SETTINGS = settings(max_examples=25, deadline=None)

# ----------------------------------------------------------------- oracles


def q_matrix(chain: CTMC | DTMC) -> list[list[F]]:
    n = chain.n
    m = [[F(0)] * n for _ in range(n)]
    for i, row in enumerate(chain.exact_matrix()):
        for j, v in row.items():
            m[i][j] = v
    return m


def block_vectors(m: list[list[F]], part: list[list[int]], forward: bool) -> list[list[list[F]]]:
    """For each block S, for each v in S: the vector over blocks S' of sums."""
    out = []
    for s_block in part:
        rows = []
        for v in s_block:
            if forward:
                rows.append([sum((m[v][u] for u in b), F(0)) for b in part])
            else:
                rows.append([sum((m[u][v] for u in b), F(0)) for b in part])
        out.append(rows)
    return out


def stable(m: list[list[F]], part: list[list[int]], forward: bool, proportional: bool) -> bool:
    """The definition, in exact arithmetic, independent of lumpcore."""
    for rows in block_vectors(m, part, forward):
        base = rows[0]
        for w in rows[1:]:
            if not proportional:
                if w != base:
                    return False
                continue
            ratio = None
            for a, b in zip(base, w, strict=True):
                if (a == 0) != (b == 0):
                    return False
                if a != 0:
                    r = b / a
                    if ratio is None:
                        ratio = r
                    elif r != ratio:
                        return False
            if ratio is not None and ratio <= 0:
                return False
    return True


def set_partitions(items: list[int]) -> Iterator[list[list[int]]]:
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for p in set_partitions(rest):
        for k in range(len(p)):
            yield [*p[:k], [first, *p[k]], *p[k + 1:]]
        yield [[first], *p]


KIND_DEF = {  # kind -> list of (forward, proportional, matrix) conditions
    "ordinary": [(True, False, "Q")],
    "exact": [(False, False, "Q")],
    "strict": [(True, False, "Q"), (False, False, "Q")],
    "proportional": [(True, True, "Q")],
    "proportional-exact": [(False, True, "Q")],
    "bisim": [(True, False, "R")],
}


def satisfies(chain: CTMC, kind: str, part: list[list[int]]) -> bool:
    q = q_matrix(chain)
    r = [[x if i != j else F(0) for j, x in enumerate(row)] for i, row in enumerate(q)]
    return all(stable(q if mat == "Q" else r, part, fw, prop)
               for fw, prop, mat in KIND_DEF[kind])


def brute_force_coarsest(chain: CTMC, kind: str, initial: list[object]) -> list[list[int]]:
    best: list[list[int]] | None = None
    for part in set_partitions(list(range(chain.n))):
        if any(len({initial[v] for v in b}) > 1 for b in part):
            continue
        if satisfies(chain, kind, part) and (best is None or len(part) < len(best)):
            best = part
    assert best is not None
    return sorted(sorted(b) for b in best)


# ------------------------------------------------------------ strategies

RATES = st.sampled_from([F(1), F(2), F(3), F(1, 2), F(3, 2), F(1, 3)])
RHOS = st.sampled_from([F(1), F(2), F(1, 2), F(3)])


@st.composite
def block_sizes(draw: st.DrawFn, max_states: int = 8) -> list[int]:
    k = draw(st.integers(2, 4))
    sizes = [draw(st.integers(1, 3)) for _ in range(k)]
    assume(sum(sizes) <= max_states)
    return sizes


def _blocks(sizes: list[int]) -> list[list[int]]:
    out, s = [], 0
    for z in sizes:
        out.append(list(range(s, s + z)))
        s += z
    return out


def _split(draw: st.DrawFn, total: F, parts: int) -> list[F]:
    """total split into `parts` non-negative rationals (random weights 0..3)."""
    w = [draw(st.integers(0, 3)) for _ in range(parts)]
    if sum(w) == 0:
        w[draw(st.integers(0, parts - 1))] = 1
    return [total * x / sum(w) for x in w]


def _balance(net: dict[int, F]) -> dict[tuple[int, int], F]:
    """Non-negative rates W inside a block with colsum(v) - rowsum(v) = net[v] (sum net = 0)."""
    pos = {v: d for v, d in net.items() if d > 0}
    neg = {v: -d for v, d in net.items() if d < 0}
    total = sum(pos.values(), F(0))
    w: dict[tuple[int, int], F] = {}
    for u, du in neg.items():
        for v, dv in pos.items():
            w[(u, v)] = du * dv / total
    return w


def _circulation(draw: st.DrawFn, block: list[int]) -> dict[tuple[int, int], F]:
    """Rates with equal row and column sums inside a block (a scaled cycle)."""
    if len(block) < 2:
        return {}
    c = draw(st.sampled_from([F(0), F(1), F(2)]))
    return {(block[i], block[(i + 1) % len(block)]): c for i in range(len(block))} if c else {}


@st.composite
def planted_forward(
    draw: st.DrawFn, proportional: bool, bisim: bool = False
) -> tuple[CTMC, list[list[int]], list[F]]:
    """rho(v) * Q(v, J) = C(I, J) for every block J != I (ordinary / proportional)."""
    blocks = _blocks(draw(block_sizes()))
    n = blocks[-1][-1] + 1
    rho = [draw(RHOS) if proportional else F(1) for _ in range(n)]
    rates: dict[tuple[int, int], F] = {}
    for bi, blk in enumerate(blocks):
        for bj, other in enumerate(blocks):
            if bi == bj:
                continue
            c = draw(st.sampled_from([F(0), F(1), F(2), F(1, 2)]))
            for v in blk:
                for u, x in zip(other, _split(draw, c / rho[v], len(other)), strict=True):
                    if x:
                        rates[(v, u)] = rates.get((v, u), F(0)) + x
        inner = _circulation(draw, blk) if bisim else {
            (u, v): draw(RATES) for u in blk for v in blk if u != v and draw(st.booleans())
        }
        for key, x in inner.items():
            rates[key] = rates.get(key, F(0)) + x
    return _ctmc(n, rates), blocks, rho


@st.composite
def planted_backward(draw: st.DrawFn, proportional: bool) -> tuple[CTMC, list[list[int]], list[F]]:
    """rho(v) * sum_{u in I} Q(u, v) = C(I, J) for all blocks I, J and v in J (diagonal incl.)."""
    blocks = _blocks(draw(block_sizes()))
    n = blocks[-1][-1] + 1
    rho = [draw(RHOS) if proportional else F(1) for _ in range(n)]
    rates: dict[tuple[int, int], F] = {}
    for bi, blk in enumerate(blocks):
        for bj, other in enumerate(blocks):
            if bi == bj:
                continue
            c = draw(st.sampled_from([F(0), F(1), F(2), F(1, 2)]))
            for v in other:  # column sums into v from blk: c / rho(v)
                for u, x in zip(blk, _split(draw, c / rho[v], len(blk)), strict=True):
                    if x:
                        rates[(u, v)] = rates.get((u, v), F(0)) + x
    for blk in blocks:
        out_of_block = {v: sum((x for (a, b), x in rates.items() if a == v), F(0)) for v in blk}
        inv = sum((1 / rho[v] for v in blk), F(0))
        cjj = -sum(out_of_block.values(), F(0)) / inv
        net = {v: out_of_block[v] + cjj / rho[v] for v in blk}
        for key, x in {**_balance(net)}.items():
            rates[key] = rates.get(key, F(0)) + x
        for key, x in (_circulation(draw, blk) if not proportional else {}).items():
            rates[key] = rates.get(key, F(0)) + x
    return _ctmc(n, rates), blocks, rho


def _ctmc(n: int, rates: dict[tuple[int, int], F], **kw: object) -> CTMC:
    m = [[F(0)] * n for _ in range(n)]
    for (i, j), x in rates.items():
        m[i][j] += x
    return CTMC.from_rates(m, exact=True, **kw)  # type: ignore[arg-type]


def irreducible(chain: CTMC) -> bool:
    from scipy.sparse.csgraph import connected_components

    ncomp, _ = connected_components(chain.matrix != 0, directed=True, connection="strong")
    return ncomp == 1


def refines(fine: list[list[int]], coarse: tuple[tuple[int, ...], ...]) -> bool:
    where = {v: i for i, b in enumerate(coarse) for v in b}
    return all(len({where[v] for v in b}) == 1 for b in fine)


def parts(res: markov.ChainLumping) -> list[list[int]]:
    return [list(b) for b in res.blocks]


def uniform_chain(chain: CTMC) -> CTMC:
    """Same chain, uniform initial distribution (so it does not constrain backward kinds)."""
    n = chain.n
    return CTMC.from_rates((n, *chain.off_diagonal()), initial=[F(1, n)] * n, exact=True)


# ----------------------------------------------------- the example chain


def test_paper_example_2_is_maximum_proportional_exact_by_enumeration() -> None:
    c = paper_example_2()
    init = [0] * c.n  # no constraint other than Def. 5
    best = brute_force_coarsest(c, "proportional-exact", init)
    assert best == [[0], [1, 2, 3], [4, 5, 6], [7]]
    # the same classes are not plainly exactly lumpable: rho matters
    assert not satisfies(c, "exact", best)
    # rho by hand: column sums from block {0} into 1, 2, 3 are 2, 1, 1
    res = lump(c, "proportional-exact", labels=[])
    assert [int(r) for r in res.rho] == [1, 1, 2, 2, 1, 2, 2, 1]
    assert irreducible(c)


# ------------------------------------------------ coarsest vs brute force


@st.composite
def small_chain(draw: st.DrawFn) -> CTMC:
    n = draw(st.integers(2, 5))
    rates = {
        (i, j): draw(st.sampled_from([F(1), F(2), F(1, 2)]))
        for i in range(n) for j in range(n) if i != j and draw(st.integers(0, 2)) == 0
    }
    return _ctmc(n, rates)


@pytest.mark.parametrize("kind", markov.KINDS)
@SETTINGS
@given(chain=small_chain())
def test_coarsest_matches_brute_force(kind: str, chain: CTMC) -> None:
    n = chain.n
    c = CTMC.from_rates((n, *chain.off_diagonal()), initial=[F(1, n)] * n, exact=True)
    res = lump(c, kind)
    assert sorted(map(list, res.blocks)) == brute_force_coarsest(c, kind, [0] * n)


@pytest.mark.parametrize("kind", markov.KINDS)
def test_initial_partition_is_respected(kind: str) -> None:
    c = paper_example_2()
    labelled = CTMC.from_rates((c.n, *c.off_diagonal()), labels={"odd": [1, 3, 5, 7]},
                               rewards={"r": [0, 0, 0, 0, 1, 1, 2, 1]}, exact=True)
    res = lump(labelled, kind)
    for b in res.blocks:
        assert len({s % 2 for s in b}) == 1
        if kind in ("ordinary", "bisim", "proportional", "strict"):
            assert len({labelled.rewards["r"][s] for s in b}) == 1
        if kind in ("exact", "proportional-exact", "strict"):
            assert len({labelled.initial[s] for s in b}) == 1
    init = ["odd" if s % 2 else "even" for s in range(c.n)]
    if kind in ("ordinary", "bisim", "proportional"):
        init = [(init[s], labelled.rewards["r"][s]) for s in range(c.n)]
    elif kind == "strict":
        init = [(init[s], labelled.rewards["r"][s], labelled.initial[s]) for s in range(c.n)]
    else:
        init = [(init[s], labelled.initial[s]) for s in range(c.n)]
    assert sorted(map(list, res.blocks)) == brute_force_coarsest(labelled, kind, init)


# --------------------------------------------------- planted structure


@SETTINGS
@given(data=planted_forward(proportional=False))
def test_planted_ordinary_found_and_claims(data: tuple[CTMC, list[list[int]], list[F]]) -> None:
    chain, planted, _ = data
    res = lump(chain, "ordinary")
    assert refines(planted, res.blocks)
    assert satisfies(chain, "ordinary", parts(res))
    q = res.quotient
    assert q.exact and all(sum(r.values(), F(0)) == 0 for r in q.exact_matrix())
    # claim: for ANY initial distribution the block masses evolve as the quotient
    rng = np.random.default_rng(len(planted))
    p0 = rng.random(chain.n)
    p0 /= p0.sum()
    for t in (0.1, 1.0, 3.0):
        lhs = res.aggregate(transient(chain, t, p0))
        rhs = transient(q, t, res.aggregate(p0))
        np.testing.assert_allclose(lhs, rhs, atol=1e-9)
    if irreducible(chain):
        np.testing.assert_allclose(res.aggregate(stationary(chain)), stationary(q), atol=1e-9)


@SETTINGS
@given(data=planted_forward(proportional=False, bisim=True))
def test_planted_bisim_equal_exit_rates(data: tuple[CTMC, list[list[int]], list[F]]) -> None:
    chain, planted, _ = data
    res = lump(chain, "bisim")
    assert refines(planted, res.blocks)
    assert satisfies(chain, "bisim", parts(res))
    exits = chain.exit_rates()
    for b in res.blocks:
        assert len({exits[s] for s in b}) == 1  # "equal exit rates follow"
    # bisimulation is an ordinary lumping: the quotients agree
    assert refines(parts(res), lump(chain, "ordinary").blocks)
    p0 = np.full(chain.n, 1.0 / chain.n)
    np.testing.assert_allclose(res.aggregate(transient(chain, 1.0, p0)),
                               transient(res.quotient, 1.0, res.aggregate(p0)), atol=1e-9)


@SETTINGS
@given(data=planted_backward(proportional=False), masses=st.lists(st.integers(1, 5), min_size=4,
                                                                  max_size=4))
def test_planted_exact_found_and_claims(data: tuple[CTMC, list[list[int]], list[F]],
                                        masses: list[int]) -> None:
    chain, planted, _ = data
    res0 = lump(uniform_chain(chain), "exact")
    assert refines(planted, res0.blocks)
    assert satisfies(chain, "exact", parts(res0))
    # a start uniform inside every block of the found partition (random block masses)
    blocks = res0.blocks
    w = [F(masses[i % len(masses)]) for i in range(len(blocks))]
    p0 = [F(0)] * chain.n
    for b, wb in zip(blocks, w, strict=True):
        for s in b:
            p0[s] = wb / sum(w) / len(b)
    c = CTMC.from_rates((chain.n, *chain.off_diagonal()), initial=p0, exact=True)
    res = lump(c, "exact")
    assert res.blocks == blocks  # the initial distribution does not split further
    q = res.quotient
    assert all(sum(r.values(), F(0)) == 0 for r in q.exact_matrix())
    p0f = np.asarray([float(x) for x in p0])
    for t in (0.2, 1.0, 4.0):
        pt = transient(c, t, p0f)
        # claim: it stays uniform inside blocks, p_v(t) = pt_J(t) / |J|
        np.testing.assert_allclose(pt, res.lift_distribution(transient(q, t)), atol=1e-9)
    if irreducible(chain):
        np.testing.assert_allclose(stationary(c), res.lift_distribution(stationary(q)), atol=1e-9)


@SETTINGS
@given(data=planted_backward(proportional=True))
def test_planted_proportional_exact_claims(data: tuple[CTMC, list[list[int]], list[F]]) -> None:
    chain, planted, _ = data
    c = uniform_chain(chain)
    res = lump(c, "proportional-exact")
    assert refines(planted, res.blocks)
    assert satisfies(chain, "proportional-exact", parts(res))
    assert res.rho is not None
    # the engine's rho satisfies Def. 5 exactly: rho(v) * sum_{u in S'} Q(u, v) constant on S
    q = q_matrix(chain)
    for s_block in res.blocks:
        for other in res.blocks:
            vals = {res.rho[v] * sum((q[u][v] for u in other), F(0)) for v in s_block}
            assert len(vals) == 1
    # Qt is a generator (rows sum to 0, exactly)
    qt = res.quotient
    assert all(sum(r.values(), F(0)) == 0 for r in qt.exact_matrix())
    assume(irreducible(chain))
    pi = stationary(chain)
    # claim: stationary distribution uniform inside blocks, block masses = stationary of Qt
    np.testing.assert_allclose(pi, res.lift_distribution(stationary(qt)), atol=1e-9)
    np.testing.assert_allclose(res.aggregate(pi), stationary(qt), atol=1e-9)


@SETTINGS
@given(data=planted_forward(proportional=True))
def test_planted_proportional_claims(data: tuple[CTMC, list[list[int]], list[F]]) -> None:
    chain, planted, _ = data
    res = lump(chain, "proportional")
    assert refines(planted, res.blocks)
    assert satisfies(chain, "proportional", parts(res))
    assert res.rho is not None
    # Q' = diag(kappa)^-1 Q with kappa = 1/rho is ordinarily lumpable for the same blocks
    rho = [F(r) for r in res.rho]
    qp = [[rho[i] * x for x in row] for i, row in enumerate(q_matrix(chain))]
    assert stable(qp, parts(res), forward=True, proportional=False)
    assume(irreducible(chain))
    # claim: pi proportional to pi'/kappa = pi' * rho, pi' block masses = stationary of Qt
    pi = stationary(chain)
    pi_prime = pi / np.asarray([float(r) for r in rho])
    pi_prime /= pi_prime.sum()
    np.testing.assert_allclose(res.aggregate(pi_prime), stationary(res.quotient), atol=1e-9)
    # what the result says it preserves, and what it refuses to lift
    assert "block masses of pi / rho" in res.preserves
    with pytest.raises(ValueError, match="pi / rho"):
        res.lift_distribution(stationary(res.quotient))


@st.composite
def planted_strict(draw: st.DrawFn) -> tuple[CTMC, list[list[int]]]:
    """Constant block-to-block rates (row and column sums constant) and circulations inside."""
    blocks = _blocks(draw(block_sizes()))
    n = blocks[-1][-1] + 1
    rates: dict[tuple[int, int], F] = {}
    for bi, blk in enumerate(blocks):
        for bj, other in enumerate(blocks):
            if bi != bj and (a := draw(st.sampled_from([F(0), F(1), F(1, 2)]))):
                for u in blk:
                    for v in other:
                        rates[(u, v)] = a
        for key, x in _circulation(draw, blk).items():
            rates[key] = x
    return _ctmc(n, rates), blocks


@SETTINGS
@given(data=planted_strict())
def test_planted_strict_both_claims(data: tuple[CTMC, list[list[int]]]) -> None:
    chain, planted = data
    c = uniform_chain(chain)
    res = lump(c, "strict")
    assert refines(planted, res.blocks)
    assert satisfies(c, "strict", parts(res))
    # strict = ordinary and exact at once: the ordinary and exact quotient formulas agree
    ex = lump(c, "exact")
    assert refines(parts(res), ex.blocks)
    p0 = np.random.default_rng(0).random(c.n)
    p0 /= p0.sum()
    np.testing.assert_allclose(res.aggregate(transient(c, 1.0, p0)),
                               transient(res.quotient, 1.0, res.aggregate(p0)), atol=1e-9)
    assert len(res.engine) >= 2  # alternated forward and backward until stable


# ------------------------------------------------------- negative claims


def test_exact_lumping_with_non_uniform_start_breaks_block_masses() -> None:
    """Example 2: exact lumping merges states 2 and 3 (rho = 1); they move to different
    blocks ({5} and {6}), so starting in state 2 alone the block masses do not follow
    the quotient (which splits the flow half/half)."""
    c = paper_example_2()
    res = lump(c, "exact")
    assert (2, 3) in res.blocks
    start = np.zeros(c.n)
    start[2] = 1.0
    t = 0.5
    lhs = res.aggregate(transient(c, t, start))
    rhs = transient(res.quotient, t, res.aggregate(start))
    b5, b6 = int(res.block_of[5]), int(res.block_of[6])
    # from state 2 the flow goes to 5 only, at rate 1: mass in {5} > mass in {6}
    assert lhs[b5] > lhs[b6] + 0.05
    assert np.max(np.abs(lhs - rhs)) > 0.05
    # the uniform start over the block does follow the quotient
    start = np.zeros(c.n)
    start[2] = start[3] = 0.5
    np.testing.assert_allclose(res.aggregate(transient(c, t, start)),
                               transient(res.quotient, t, res.aggregate(start)), atol=1e-9)


@SETTINGS
@given(data=planted_backward(proportional=False))
def test_exact_not_ordinary_point_start_deviates(
    data: tuple[CTMC, list[list[int]], list[F]],
) -> None:
    """Whenever the exact partition is not also ordinary, some point start makes the block
    masses leave the quotient (their derivatives at t = 0 already differ)."""
    chain, _, _ = data
    c = uniform_chain(chain)
    res = lump(c, "exact")
    assume(not satisfies(c, "ordinary", parts(res)))
    q = q_matrix(c)
    worst = 0.0
    for s in range(c.n):
        start = np.zeros(c.n)
        start[s] = 1.0
        t = 1e-3
        lhs = res.aggregate(transient(c, t, start))
        rhs = transient(res.quotient, t, res.aggregate(start))
        worst = max(worst, float(np.max(np.abs(lhs - rhs))))
    # exact oracle for the first-order term: max_s,J |Q(s,J) - mean_{u in I} Q(u,J)| * t
    gap = max(
        abs(sum((q[s][v] for v in jb), F(0)) - sum((q[u][v] for u in ib for v in jb), F(0))
            / len(ib))
        for ib in res.blocks for s in ib for jb in res.blocks
    )
    assert gap > 0
    assert worst > float(gap) * 1e-3 / 2


def test_proportional_exact_transient_uniformity_not_preserved() -> None:
    c = paper_example_2()
    res = lump(c, "proportional-exact")
    p = transient(c, 0.3)
    # from state 0 rates 2, 1, 1 into block {1, 2, 3}: not uniform at time t > 0
    assert p[1] > p[2] + 0.05
    assert abs(p[2] - p[3]) < 1e-12
    # ... but the stationary distribution is uniform inside the blocks
    pi = stationary(c)
    for b in res.blocks:
        assert np.ptp(pi[list(b)]) < 1e-12


def test_ordinary_lumping_does_not_make_inside_of_blocks_uniform() -> None:
    """Forward notions determine only block masses: lifting is refused."""
    c = CTMC.from_rates([[0, 1, 2], [3, 0, 0], [3, 0, 0]], labels={"a": [0]}, exact=True)
    res = lump(c, "ordinary")
    assert res.blocks == ((0,), (1, 2))
    pi = stationary(c)
    assert abs(pi[1] - pi[2]) > 0.1
    with pytest.raises(ValueError, match="block masses"):
        res.lift_distribution(stationary(res.quotient))
    np.testing.assert_allclose(res.aggregate(pi), stationary(res.quotient), atol=1e-12)


# -------------------------------------------------- arithmetic and DTMC


@SETTINGS
@given(data=planted_backward(proportional=True))
def test_float_mode_refines_exact_result(data: tuple[CTMC, list[list[int]], list[F]]) -> None:
    """Float mode lumps the graph with every entry rounded to the grid; sums that are equal
    only mathematically (1/3 + 1/3 - 1 vs -1/3) may then differ, so float mode can be finer
    than the exact answer, never coarser here (distinct rates differ by far more than 1e-9)."""
    chain, _, _ = data
    exact_res = lump(uniform_chain(chain), "proportional-exact")
    fl = uniform_chain(chain).to_float()
    res = lump(fl, "proportional-exact", arithmetic="float", tolerance=1e-9)
    assert refines(parts(res), exact_res.blocks)
    assert not res.quotient.exact
    assert np.allclose(res.quotient.matrix.sum(axis=1), 0.0, atol=1e-12)


@pytest.mark.parametrize("kind", markov.KINDS)
def test_float_modes_agree_with_exact_on_integer_rates(kind: str) -> None:
    c = paper_example_2()
    exact_res = lump(c, kind)
    for arithmetic, tol in (("exact", 0.0), ("float", 0.0), ("float", 1e-6)):
        res = lump(c.to_float(), kind, arithmetic=arithmetic, tolerance=tol)
        assert res.blocks == exact_res.blocks
        np.testing.assert_allclose(res.quotient.matrix.toarray(),
                                   exact_res.quotient.matrix.toarray(), atol=1e-12)


def test_dtmc_ordinary_and_exact() -> None:
    h = F(1, 2)
    p = DTMC([[0, h, h, 0], [0, 0, 0, 1], [0, 0, 0, 1], [1, 0, 0, 0]], labels={"goal": [3]},
             exact=True)
    for kind in ("ordinary", "exact", "strict", "bisim"):
        res = lump(p, kind)
        assert res.blocks == ((0,), (1, 2), (3,))
        assert isinstance(res.quotient, DTMC)
        assert [sum(r.values(), F(0)) for r in res.quotient.exact_matrix()] == [1, 1, 1]
    with pytest.raises(ValueError, match="CTMCs only"):
        lump(p, "proportional")


def test_bad_arguments_are_named() -> None:
    c = paper_example_2()
    with pytest.raises(ValueError, match="unknown kind 'fast'"):
        lump(c, "fast")
    with pytest.raises(ValueError, match="label 'nope'"):
        lump(c, "ordinary", labels=["nope"])
    with pytest.raises(ValueError, match="tolerance"):
        lump(c, "ordinary", tolerance=0.1)


@pytest.mark.parametrize("kind", ["ordinary", "exact", "strict", "proportional-exact"])
@pytest.mark.parametrize("tolerance", [math.inf, -1.0, math.nan, 10**400])
def test_a_tolerance_that_is_no_grid_step_is_named(kind: str, tolerance: float) -> None:
    """An infinite, negative, NaN or huge tolerance is refused before anything is rounded to
    it (rewards, the initial distribution): inf raised an OverflowError from inside."""
    chain = CTMC.from_rates([[0, 1], [2, 0]], rewards={"r": [1, 2]})
    with pytest.raises(ValueError, match=r"tolerance must be finite and >= 0"):
        lump(chain, kind, arithmetic="float", tolerance=tolerance)


def test_example_quotient_by_hand() -> None:
    """Qt(S', S) = (R(S)/|S'|) rho(v) sum_{u in S'} Q(u, v), computed by hand for Example 2."""
    res = lump(paper_example_2(), "proportional-exact")
    qt = res.quotient.exact_matrix()
    # blocks A={0}, B={1,2,3}, C={4,5,6}, D={7}; R(B) = R(C) = 1 + 1/2 + 1/2 = 2
    assert qt[0] == {0: F(-4), 1: 2 * F(2)}  # (2/1) * 1 * Q(0,1) = 4
    assert qt[1] == {1: F(-4, 3), 2: F(2, 3) * 2}  # (2/3) * Q(1,4)
    assert qt[2] == {2: F(-4, 3), 3: F(4, 3)}  # (1/3) * (Q(4,7)+Q(5,7)+Q(6,7)) = 4/3
    assert qt[3] == {0: F(1), 2: F(2) * 2, 3: F(-5)}  # (2/1) * Q(7,4) = 4
    # labels of the quotient: the respected ones, and init on the block of state 0
    q = res.quotient
    assert q.labels["init"].tolist() == [0] and q.initial.tolist() == [1, 0, 0, 0]
    assert q.labels["first"].tolist() == [0] and q.labels["last"].tolist() == [3]



def test_exact_lumping_needs_the_own_block_with_the_diagonal() -> None:
    """THEORY section 2 says including the own block (with the diagonal) is the same as
    excluding it.  That holds for the forward (ordinary) condition, whose own-block sum
    is fixed by the others since rows sum to 0, but NOT for the backward (exact) one:
    columns do not sum to 0.  Here {v, t} receive equal rates from {w} (so the condition
    without the own block holds) but have different exit rates; a start uniform on
    {v, t} does not stay uniform, so the own block must be included (as lump does)."""
    w, v, t = 0, 1, 2
    c = CTMC.from_rates([[0, 1, 1], [1, 0, 0], [2, 0, 0]], initial=[F(1, 3)] * 3, exact=True)
    q = q_matrix(c)
    part = [[w], [v, t]]
    from_w = {sum((q[u][x] for u in [w]), F(0)) for x in (v, t)}
    assert len(from_w) == 1  # the condition over the other block holds
    assert not satisfies(c, "exact", part)  # the own-block condition fails
    assert lump(c, "exact").num_blocks == 3
    start = np.asarray([0.0, 0.5, 0.5])
    p = transient(c, 0.5, start)
    assert abs(p[v] - p[t]) > 0.05  # not uniform inside {v, t}
    # forward: the own block is redundant (rows sum to 0)
    r = [[x if i != j else F(0) for j, x in enumerate(row)] for i, row in enumerate(q)]
    for part2 in set_partitions([0, 1, 2]):
        with_own = stable(q, part2, forward=True, proportional=False)
        without = all(
            len({sum((r[x][u] for u in b), F(0)) for x in s_block}) == 1
            for s_block in part2 for b in part2 if b is not s_block
        )
        assert with_own == without


def test_lift_values_reachability_is_constant_on_ordinary_blocks() -> None:
    """For an ordinary lumping, the probability of reaching `goal` from a state depends
    only on its block: solve it on the original and on the quotient (dense linear
    algebra) and compare with lift_values."""
    rates = [[0, 1, 2, 0, 1], [0, 0, 0, 3, 1], [0, 0, 0, 3, 1], [0, 0, 0, 0, 0],
             [0, 0, 0, 0, 0]]
    c = CTMC.from_rates(rates, labels={"goal": [3], "fail": [4]}, exact=True)
    res = lump(c, "ordinary")
    assert res.blocks == ((0,), (1, 2), (3,), (4,))

    def reach(chain: CTMC, goal: list[int], absorbing: list[int]) -> np.ndarray:
        q = chain.matrix.toarray()
        n = chain.n
        a = q.copy()
        b = np.zeros(n)
        for s in absorbing:
            a[s] = 0.0
            a[s, s] = 1.0
            b[s] = 1.0 if s in goal else 0.0
        return np.linalg.solve(a, b)

    x = reach(c, [3], [3, 4])
    xq = reach(res.quotient, [2], [2, 3])  # blocks 2 = {3}, 3 = {4}
    np.testing.assert_allclose(res.lift_values(xq), x, atol=1e-12)
    assert x[1] == pytest.approx(3 / 4) and x[0] == pytest.approx((1 * 0.75 + 2 * 0.75) / 4)
    with pytest.raises(ValueError, match="not constant"):
        lump(c, "exact").lift_values(np.zeros(lump(c, "exact").num_blocks))


def test_float_arithmetic_on_exact_chain_gives_float_quotient() -> None:
    c = paper_example_2()
    for kind in markov.KINDS:
        res = lump(c, kind, arithmetic="float")
        assert not res.quotient.exact
        np.testing.assert_allclose(res.quotient.matrix.toarray(),
                                   lump(c, kind).quotient.matrix.toarray(), atol=1e-12)


@SETTINGS
@given(data=planted_forward(proportional=False))
def test_dtmc_ordinary_and_exact_claims_by_uniformisation(
    data: tuple[CTMC, list[list[int]], list[F]],
) -> None:
    """The same claims for DTMCs: P = I + Q / Lambda (uniformisation) is ordinarily
    (exactly) lumpable iff Q is; block masses follow the quotient step by step."""
    chain, planted, _ = data
    q = q_matrix(chain)
    lam = max((-q[i][i] for i in range(chain.n)), default=F(0)) + 1
    p = DTMC([[F(int(i == j)) + q[i][j] / lam for j in range(chain.n)] for i in range(chain.n)],
             exact=True)
    res = lump(p, "ordinary")
    assert refines(planted, res.blocks)
    assert sorted(map(list, res.blocks)) == sorted(map(list, lump(chain, "ordinary").blocks))
    p0 = np.random.default_rng(chain.n).random(chain.n)
    p0 /= p0.sum()
    for k in (1, 3, 10):
        np.testing.assert_allclose(res.aggregate(transient(p, k, p0)),
                                   transient(res.quotient, k, res.aggregate(p0)), atol=1e-12)


_DECIMALS = [0.05, 0.1, 0.2, 0.3, 0.7, 3.3, 1 / 3, 2 / 3, 1e-3]


@st.composite
def _float_ctmc_with_twins(draw: st.DrawFn) -> np.ndarray:
    """Rates from decimals that float sums round (0.1 + 0.2 != 0.3): states with the
    same rates listed in other orders or split differently (0.05 + 0.05 vs 0.1)."""
    n = draw(st.integers(3, 7))
    rates = np.zeros((n, n))
    for s in range(n):
        for t in draw(st.lists(st.integers(0, n - 1), max_size=4, unique=True)):
            if t != s:
                rates[s, t] = draw(st.sampled_from(_DECIMALS))
    if draw(st.booleans()):  # a twin of state 0 with its rates in reverse order
        order = np.flatnonzero(rates[0])[::-1]
        twin = np.zeros(n + 1)
        for k, t in enumerate(order):
            twin[t] = rates[0, np.flatnonzero(rates[0])[k]]
        rates = np.pad(rates, ((0, 1), (0, 1)))
        rates[n] = twin
    return rates


@settings(max_examples=150, deadline=None)
@given(_float_ctmc_with_twins())
def test_float_chain_lumps_like_the_exact_generator(rates: np.ndarray) -> None:
    """A float CTMC lumped in exact arithmetic gives the partition of the exact generator
    of the same (binary) rates, whose diagonal is exactly minus the rate sum.

    Oracle: the same chain built with ``exact=True`` (rational weights, exact diagonal).
    Before, the stored float diagonal (a rounded sum) made rows sum to tiny non-zero
    values, and states whose rates were listed in another order differed."""
    flo = CTMC.from_rates(rates)
    ex = CTMC.from_rates(rates, exact=True)
    from proofs import check_markov_lumping

    for kind in ("ordinary", "exact", "strict", "proportional", "proportional-exact"):
        got = lump(flo, kind)
        assert got.blocks == lump(ex, kind).blocks, kind
        # the independent checker takes the float chain's generator the same way
        assert check_markov_lumping(flo, got.blocks, kind, rho=got.rho).valid, kind


@pytest.mark.parametrize("kind, what", [("ordinary", "rewards"), ("bisim", "rewards"),
                                        ("strict", "rewards"), ("exact", "initial"),
                                        ("strict", "initial")])
def test_tolerance_rounds_reward_and_initial_values_like_rates(kind: str, what: str) -> None:
    """Two alike cycles 0 <-> 2 and 1 <-> 3 at rate 1: every kind lumps them into {0, 1}
    and {2, 3} when 0 and 1 (2 and 3) have equal rewards (initial probabilities).  Float
    values that are equal only mathematically (0.1 + 0.2 and 0.3) keep states apart at the
    default grid, and are one value at tolerance 1e-9, as the exact chain says."""
    rates = [[0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, 0]]
    exact_vals = [F(3, 10), F(3, 10), F(1, 5), F(1, 5)]
    float_vals = [0.1 + 0.2, 0.3, 0.2, 0.2]
    assert float_vals[0] != float_vals[1]

    def chain(vals: list[F] | list[float], exact: bool) -> CTMC:
        if what == "rewards":  # (strict respects the start too: a uniform one)
            return CTMC.from_rates(rates, rewards={"r": vals}, initial=[F(1, 4)] * 4,
                                   exact=exact)
        return CTMC.from_rates(rates, initial=vals, exact=exact)

    want = lump(chain(exact_vals, True), kind).blocks  # the oracle: exact values
    assert want == ((0, 1), (2, 3))
    fine = lump(chain(float_vals, False), kind, arithmetic="float").blocks
    assert len(fine) > len(want)  # 0.30000000000000004 != 0.3 at the default grid
    assert lump(chain(float_vals, False), kind, arithmetic="float",
                tolerance=1e-9).blocks == want


def test_a_tolerance_too_fine_for_the_rewards_is_refused() -> None:
    c = CTMC.from_rates([[0, 1], [1, 0]], rewards={"r": [1e300, 2e300]}, exact=False)
    with pytest.raises(ValueError, match="too fine for a reward or initial value"):
        lump(c, "ordinary", arithmetic="float", tolerance=1e-300)
