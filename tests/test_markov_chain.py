"""Chain construction, validation and analyses (against hand-computed values)."""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

from markov import (
    CTMC,
    DTMC,
    ChainError,
    expected_reward,
    paper_example_2,
    stationary,
    transient,
)


def test_generator_forms_agree() -> None:
    dense = [[-3.0, 1.0, 2.0], [0.5, -0.5, 0.0], [0.0, 4.0, -4.0]]
    a = CTMC(dense)
    b = CTMC(sp.csr_array(np.asarray(dense)))
    c = CTMC.from_rates([[7.0, 1.0, 2.0], [0.5, 0.0, 0.0], [0.0, 4.0, 0.0]])  # self-loop ignored
    for x in (b, c):
        np.testing.assert_array_equal(a.matrix.toarray(), x.matrix.toarray())
    n, src, dst, val = a.to_edges()
    assert n == 3
    assert list(zip(src.tolist(), dst.tolist(), val.tolist(), strict=True)) == [
        (0, 0, -3.0), (0, 1, 1.0), (0, 2, 2.0), (1, 0, 0.5), (1, 1, -0.5), (2, 1, 4.0),
        (2, 2, -4.0)]
    assert not src.flags.writeable and not val.flags.writeable
    assert a.num_transitions == 4


def test_exact_chain_to_edges_gives_fractions() -> None:
    c = CTMC([[F(-1, 3), F(1, 3)], ["2/7", "-2/7"]])
    assert c.exact
    _, _, _, val = c.to_edges()
    assert val.dtype == object and val.tolist() == [F(-1, 3), F(1, 3), F(2, 7), F(-2, 7)]
    assert c.to_float().to_exact().exact_matrix()[0][1] == F(1 / 3)  # floats at binary value


def test_chain_is_immutable() -> None:
    c = paper_example_2()
    with pytest.raises(AttributeError):
        c.n = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ([[-1.0, 1.0], [-2.0, 2.0]], r"state 1, column 0: off-diagonal rate -2.0 is negative"),
        ([[-1.0, 2.0], [1.0, -1.0]], r"row of state 0 sums to 1.0, not 0"),
        ([[-1.0, float("nan")], [1.0, -1.0]], r"state 0, column 1: value nan is not finite"),
        ([[-1.0, float("inf")], [1.0, -1.0]], r"state 0, column 1: value inf is not finite"),
        ([[F(-1), F(1, 2)], [1, -1]], r"row of state 0 sums to -1/2, not 0"),
        ([[-1.0, 1.0, 0.0], [1.0, -1.0, 0.0]], r"square"),
    ],
)
def test_generator_validation_names_state_and_value(matrix: object, message: str) -> None:
    with pytest.raises(ChainError, match=message):
        CTMC(matrix)


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ([[0.5, 0.6], [0.0, 1.0]], r"row of state 0 sums to 1.1, not 1"),
        ([[1.5, -0.5], [0.0, 1.0]], r"state 0, column 0: probability 1.5 is not in \[0, 1\]"),
        ([[F(1, 2), F(1, 3)], [0, 1]], r"row of state 0 sums to 5/6, not 1"),
        ([[0.0, 0.0], [0.0, 1.0]], r"row of state 0 sums to 0.0"),
    ],
)
def test_dtmc_validation_names_state_and_value(matrix: object, message: str) -> None:
    with pytest.raises(ChainError, match=message):
        DTMC(matrix)


def test_annotation_validation() -> None:
    q = [[-1.0, 1.0], [1.0, -1.0]]
    with pytest.raises(ChainError, match="label 'x': state 5 does not exist"):
        CTMC(q, labels={"x": [5]})
    with pytest.raises(ChainError, match=r"initial distribution sums to 0\.5"):
        CTMC(q, initial=[0.25, 0.25])
    with pytest.raises(ChainError, match=r"state 1 has invalid mass -0\.5"):
        CTMC(q, initial=[1.5, -0.5])
    with pytest.raises(ChainError, match="reward 'r' has 3 values"):
        CTMC(q, rewards={"r": [1, 2, 3]})
    with pytest.raises(ChainError, match="reward 'r': state 0 has value nan"):
        CTMC(q, rewards={"r": [float("nan"), 1]})
    c = CTMC(q, labels={"init": [1]})
    assert c.initial.tolist() == [0.0, 1.0]
    assert CTMC(q).initial.tolist() == [1.0, 0.0]


def test_stationary_by_hand_and_exact() -> None:
    # birth-death chain 0 <-> 1 <-> 2, rates up 1, down 2: pi proportional to 1, 1/2, 1/4
    q = CTMC.from_rates([[0, 1, 0], [2, 0, 1], [0, 2, 0]], exact=True)
    expect = np.asarray([4, 2, 1]) / 7
    np.testing.assert_allclose(stationary(q), expect, atol=1e-12)
    assert stationary(q, exact=True).tolist() == [F(4, 7), F(2, 7), F(1, 7)]
    # DTMC version: pi P = pi
    p = DTMC([[F(1, 2), F(1, 2)], [F(1, 4), F(3, 4)]])
    assert stationary(p, exact=True).tolist() == [F(1, 3), F(2, 3)]
    np.testing.assert_allclose(stationary(p), [1 / 3, 2 / 3], atol=1e-12)


def test_stationary_with_transient_states_and_several_bsccs() -> None:
    # state 0 is transient, {1, 2} is the only BSCC
    q = CTMC.from_rates([[0, 1, 1], [0, 0, 3], [0, 1, 0]])
    np.testing.assert_allclose(stationary(q), [0.0, 0.25, 0.75], atol=1e-12)
    # two BSCCs, {1} and {2, 3}, reached from 0 with probabilities 1/4 and 3/4 (by hand)
    two = CTMC.from_rates([[0, 1, 3, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 2, 0]], exact=True)
    want = [F(0), F(1, 4), F(1, 2), F(1, 4)]
    assert stationary(two, exact=True).tolist() == want
    np.testing.assert_allclose(stationary(two), [float(x) for x in want], atol=1e-12)
    # the long run of an aperiodic chain is the limit of the transient distribution
    np.testing.assert_allclose(transient(two, 80.0), [float(x) for x in want], atol=1e-9)
    # from another start; and expected rewards use the same long run
    assert stationary(two, exact=True, initial=[0, 0, 1, 0]).tolist() == [0, 0, F(2, 3),
                                                                           F(1, 3)]
    assert expected_reward(two, [0, 4, 0, 8]) == pytest.approx(3.0)
    # a periodic DTMC BSCC {2, 3}: the time average (1/2, 1/2); from 0, 1/2 stays in {1}
    d = DTMC([[F(1, 2), F(1, 4), F(1, 4), 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]],
             exact=True)
    assert stationary(d, exact=True).tolist() == [0, F(1, 2), F(1, 4), F(1, 4)]
    np.testing.assert_allclose(stationary(d), [0, 0.5, 0.25, 0.25], atol=1e-12)
    with pytest.raises(ChainError, match="must have 4 entries"):
        stationary(d, initial=[1, 0])


def test_transient_against_dense_expm() -> None:
    c = paper_example_2()
    q = c.matrix.toarray()
    p0 = np.zeros(8)
    p0[0] = 1.0
    for t in (0.0, 0.3, 2.0):
        np.testing.assert_allclose(transient(c, t), p0 @ scipy.linalg.expm(q * t), atol=1e-12)
    p = DTMC([[0.0, 1.0], [0.5, 0.5]])
    np.testing.assert_allclose(transient(p, 3, [1.0, 0.0]),
                               np.asarray([1.0, 0.0]) @ np.linalg.matrix_power(
                                   np.asarray([[0.0, 1.0], [0.5, 0.5]]), 3))
    with pytest.raises(ChainError, match="whole steps"):
        transient(p, 0.5)


def test_expected_reward() -> None:
    q = CTMC.from_rates([[0, 1, 0], [2, 0, 1], [0, 2, 0]], rewards={"level": [0, 1, 2]})
    assert expected_reward(q, "level") == pytest.approx((2 + 2) / 7)
    assert expected_reward(q, "level", t=0.0) == 0.0
    with pytest.raises(ChainError, match="no reward structure 'x'"):
        expected_reward(q, "x")
