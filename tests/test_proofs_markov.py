"""proofs.check_markov_lumping against a brute-force matrix oracle and markov.lump."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import markov
import proofs

NOTIONS = ["ordinary", "exact", "strict", "proportional", "proportional-exact"]


def oracle(Q: list[list[Fraction]], labels: list[int], notion: str) -> bool:
    """Definition, written with block indicator matrices: Q V (forward) and Q^T V (backward)."""
    n = len(Q)
    blocks = sorted(set(labels))
    V = [[Fraction(1) if labels[s] == B else Fraction(0) for B in blocks] for s in range(n)]

    def prod(M: list[list[Fraction]]) -> list[list[Fraction]]:
        return [[sum((M[i][k] * V[k][j] for k in range(n)), Fraction(0))
                 for j in range(len(blocks))] for i in range(n)]

    QT = [[Q[j][i] for j in range(n)] for i in range(n)]
    mats = {"ordinary": [prod(Q)], "exact": [prod(QT)], "strict": [prod(Q), prod(QT)],
            "proportional": [prod(Q)], "proportional-exact": [prod(QT)]}[notion]
    prop = notion.startswith("proportional")
    for S in mats:
        for s in range(n):
            for t in range(n):
                if labels[s] != labels[t]:
                    continue
                a, b = S[s], S[t]
                if not prop:
                    if a != b:
                        return False
                    continue
                # positive multiples of each other (both zero allowed)
                nz = [j for j in range(len(blocks)) if a[j] or b[j]]
                if not nz:
                    continue
                j0 = nz[0]
                if not a[j0] or not b[j0] or a[j0] / b[j0] <= 0:
                    return False
                r = a[j0] / b[j0]
                if any(a[j] != r * b[j] for j in nz):
                    return False
    return True


@st.composite
def chains(draw: st.DrawFn) -> list[list[Fraction]]:
    n = draw(st.integers(2, 5))
    Q = [[Fraction(0)] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if i != j:
                Q[i][j] = Fraction(draw(st.sampled_from([0, 0, 1, 2, 3])))
        Q[i][i] = -sum(Q[i])
    return Q


@settings(max_examples=80, deadline=None)
@given(chains(), st.data(), st.sampled_from(NOTIONS))
def test_checker_agrees_with_matrix_oracle(Q: list, data: st.DataObject, notion: str) -> None:
    n = len(Q)
    labels = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    res = proofs.check_markov_lumping(Q, labels, notion)
    assert res.valid == oracle(Q, labels, notion), res.message


@settings(max_examples=40, deadline=None)
@given(chains(), st.sampled_from(NOTIONS))
def test_markov_lump_results_are_confirmed(Q: list, notion: str) -> None:
    chain = markov.CTMC(Q)
    lumping = markov.lump(chain, notion)
    rho = getattr(lumping, "rho", None)
    res = proofs.check_markov_lumping(chain, lumping.blocks, notion)
    assert res.valid, res.message
    if notion.startswith("proportional") and rho is not None:
        assert proofs.check_markov_lumping(chain, lumping.blocks, notion, rho=rho).valid


def test_paper_example_2_proportional_exact_and_wrong_rho() -> None:
    chain = markov.paper_example_2()
    lumping = markov.lump(chain, "proportional-exact")
    assert len(lumping.blocks) == 4
    assert proofs.check_markov_lumping(chain, lumping.blocks, "proportional-exact",
                                       rho=lumping.rho).valid
    wrong = [Fraction(1)] * chain.n
    res = proofs.check_markov_lumping(chain, lumping.blocks, "proportional-exact", rho=wrong)
    if any(len(b) > 1 and len({lumping.rho[s] for s in b}) > 1 for b in lumping.blocks):
        assert not res.valid
        assert res.condition == "proportional incoming sums (proportional_exact)"
        assert len(res.location["states"]) == 2


def test_violation_names_block_states_and_sums() -> None:
    # states 0 and 2 in one block: incoming from block {1}: Q(1,0)=1 vs Q(1,2)=1, but
    # incoming from the own block {0,2}: Q(0,0)+Q(2,0) = -1 vs Q(0,2)+Q(2,2) = -3
    Q = [[-1, 1, 0], [1, -2, 1], [0, 3, -3]]
    res = proofs.check_markov_lumping(Q, [[0, 2], [1]], "exact")
    assert not res.valid
    assert res.condition == "equal incoming sums (exact)"
    assert res.location == {"block": 0, "states": [0, 2], "summed over block": 0}
    assert res.values == {"sum(state 0)": "-1", "sum(state 2)": "-3"}


def test_float_rates_are_taken_exactly() -> None:
    # 0.1 + 0.2 != 0.3 for the binary values of the floats: state 0 leaves to block
    # {2, 3} with 0.1 + 0.2, state 1 with 0.3; exactly equal only for decimal rationals
    Q = np.array([[-0.3, 0.0, 0.1, 0.2], [0.0, -0.3, 0.3, 0.0], [0.0] * 4, [0.0] * 4])
    res = proofs.check_markov_lumping(Q, [[0, 1], [2, 3]], "ordinary")
    assert not res.valid and res.location["summed over block"] == 1
    F = Fraction
    Q2 = [[F(-3, 10), 0, F(1, 10), F(2, 10)], [0, F(-3, 10), F(3, 10), 0], [0] * 4, [0] * 4]
    assert proofs.check_markov_lumping(Q2, [[0, 1], [2, 3]], "ordinary").valid


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="notion"):
        proofs.check_markov_lumping([[0]], [0], "weird")
    with pytest.raises(ValueError, match="state 1"):
        proofs.check_markov_lumping([[-1, 1], [1, -1]], [[0]], "ordinary")
    with pytest.raises(ValueError, match="positive"):
        proofs.check_markov_lumping([[-1, 1], [1, -1]], [[0, 1]], "proportional", rho=[1, -1])
    edges = markov.CTMC([[-1, 1], [1, -1]]).to_edges()
    assert proofs.check_markov_lumping(edges, [0, 0], "strict").valid
