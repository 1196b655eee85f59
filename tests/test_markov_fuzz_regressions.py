"""Regressions found by the adversarial campaign on ``markov`` (readers, writers, edge cases).

Every expectation is written by hand from the file given (the chain it
describes, or the line that is wrong), not taken from lumpkit's output.
"""

from __future__ import annotations

from fractions import Fraction as F
from pathlib import Path

import pytest

from lumpcore import ModelFormatError
from markov import read_drn, read_prism_explicit

_HEAD = ("@type: CTMC\n@parameters\n\n@reward_models\n{rewards}\n@nr_states\n{n}\n"
         "@nr_choices\n{n}\n@model\n")
_TWO = "state 0 !2 init\n\taction 0\n\t\t1 : 2\nstate 1 !1\n\taction 0\n\t\t0 : 1\n"


def _drn(tmp_path: Path, body: str, *, rewards: str = "", n: int = 2) -> Path:
    p = tmp_path / "m.drn"
    p.write_text(_HEAD.format(rewards=rewards, n=n) + body)
    return p


# ------------------------------------------------------------------------ DRN


@pytest.mark.parametrize("exact", [False, True])
def test_drn_state_with_two_actions_is_refused(tmp_path: Path, exact: bool) -> None:
    # an MDP: state 0 has two actions, state 1 none.  The vectorised float reader
    # counted actions and states only and merged both actions into one row (rate 5)
    body = ("state 0 init\n\taction 0\n\t\t1 : 2\n\taction 1\n\t\t1 : 3\n"
            "state 1\n\t\t0 : 1\n")
    with pytest.raises(ModelFormatError, match=r"m\.drn, line 14: state 0 has more than one"):
        read_drn(_drn(tmp_path, body), exact=exact)


def test_drn_transition_before_its_action_line_is_refused(tmp_path: Path) -> None:
    body = "state 0 !2 init\n\t\t1 : 2\n\taction 0\nstate 1 !1\n\taction 0\n\t\t0 : 1\n"
    with pytest.raises(ModelFormatError, match=r"line 12: transition '1 : 2' outside"):
        read_drn(_drn(tmp_path, body))


@pytest.mark.parametrize(
    ("rewards", "body", "where"),
    [
        ("", _TWO.replace("!2", "!abc"), r"line 11: bad exit rate 'abc'"),
        ("", _TWO.replace("state 1 !1", "state x !1"), r"line 14: expected 'state <index>"),
        ("r", _TWO.replace("!2 init", "!2 [abc] init").replace("!1", "!1 [1]"),
         r"line 11: bad reward 'abc'"),
        ("r", _TWO.replace("!2 init", "!2 [1 init").replace("!1", "!1 [1]"),
         r"line 11: unclosed '\['"),
        ("r", _TWO.replace("!2 init", "!2 [1] init").replace("!1", "!1 [1]")
         .replace("\taction 0\n\t\t1", "\taction 0 [zz]\n\t\t1"),
         r"line 12: bad action reward 'zz'"),
    ],
)
def test_drn_bad_tokens_name_the_line(tmp_path: Path, rewards: str, body: str,
                                      where: str) -> None:
    # the float reader raised a bare ValueError/IndexError from float()/int()/index()
    with pytest.raises(ModelFormatError, match=where):
        read_drn(_drn(tmp_path, body, rewards=rewards))


def test_drn_huge_state_count_is_a_format_error(tmp_path: Path) -> None:
    # a corrupt @nr_states with a reward model: reward lists of that length were
    # allocated before the states were counted (MemoryError)
    body = _TWO.replace("!2 init", "!2 [1] init").replace("!1", "!1 [0]")
    with pytest.raises(ModelFormatError, match="@nr_states says 10000000000000, the file lists 2"):
        read_drn(_drn(tmp_path, body, rewards="r", n=10**13))


def test_drn_zero_rate_and_underflow(tmp_path: Path) -> None:
    body = _TWO.replace("!2 init", "init").replace("1 : 2", "1 : 1e-400")
    with pytest.raises(ModelFormatError, match=r"line 13: .*'1e-400' is not zero but rounds to 0"):
        read_drn(_drn(tmp_path, body))
    exact = read_drn(_drn(tmp_path, body), exact=True)
    assert exact.exact_matrix()[0] == {0: -F(1, 10**400), 1: F(1, 10**400)}


# ------------------------------------------------------------ PRISM explicit


def test_rate_that_underflows_is_refused_not_dropped(tmp_path: Path) -> None:
    # 1e-400 read as float64 was 0: the transition vanished and state 0 became absorbing
    (tmp_path / "m.tra").write_text("2 2\n0 1 1e-400\n1 0 1\n")
    with pytest.raises(ModelFormatError, match=r"m\.tra, line 2: .*rounds to 0 in float64"):
        read_prism_explicit(tmp_path / "m.tra")
    c = read_prism_explicit(tmp_path / "m.tra", exact=True)
    assert c.exact_matrix()[0] == {0: -F(1, 10**400), 1: F(1, 10**400)}
    (tmp_path / "z.tra").write_text("2 2\n0 1 0.0\n1 0 5e-324\n")  # zeros and subnormals are fine
    z = read_prism_explicit(tmp_path / "z.tra")
    assert z.exact_matrix() == [{}, {0: F(5e-324), 1: -F(5e-324)}]


def test_utf8_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "m.tra").write_bytes("\ufeff2 2\n0 1 3\n1 0 1\n".encode())
    (tmp_path / "m.lab").write_bytes('\ufeff0="init" 1="up"\n0: 0\n1: 1\n'.encode())
    c = read_prism_explicit(tmp_path / "m.tra")
    assert c.exact_matrix() == [{0: -3, 1: 3}, {0: 1, 1: -1}]
    assert c.labels["up"].tolist() == [1]
