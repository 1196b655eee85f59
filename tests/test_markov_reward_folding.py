"""Folding action and transition rewards of float models: exact, then rounded once.

Two states with the same rates listed in another order have exit rates that
float addition in file order rounds differently (0.1 + 0.2 + 0.3 is not
0.3 + 0.2 + 0.1); folded into the state rewards, that last-bit difference
kept them apart in every lumping that respects the reward.  Oracle: the
folded value computed here with Fractions from the floats, and the lumping
of the same model read with exact rationals.
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from markov import CTMC, lump, read_drn, read_prism

RATES = (0.1, 0.2, 0.3)


def test_the_float_sums_in_file_order_differ() -> None:
    """The premise: float addition in the two orders disagrees, exact values do not."""
    assert (0.1 + 0.2) + 0.3 != (0.3 + 0.2) + 0.1


def _drn(tmp_path: Path) -> Path:
    a, b, c = RATES
    p = tmp_path / "m.drn"
    p.write_text(
        "@type: CTMC\n@reward_models\nr\n@nr_states\n6\n@model\n"
        "state 0 init\n\taction 0 [0]\n\t\t1 : 1\n\t\t2 : 1\n"
        f"state 1\n\taction 0 [1]\n\t\t3 : {a}\n\t\t4 : {b}\n\t\t5 : {c}\n"
        f"state 2\n\taction 0 [1]\n\t\t3 : {c}\n\t\t4 : {b}\n\t\t5 : {a}\n"
        + "".join(f"state {s}\n\taction 0 [0]\n\t\t{s} : 1\n" for s in (3, 4, 5)))
    return p


def _blocks(chain: object) -> int:
    return lump(chain, "ordinary").quotient.n  # type: ignore[arg-type]


def _read_both(read: Any, path: Path) -> tuple[Any, Any]:
    """The model read with floats and with exact rationals (folding warnings silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read(path), read(path, exact=True)


def test_drn_action_rewards_times_exit_rates_are_rounded_once(tmp_path: Path) -> None:
    chain, exact = _read_both(read_drn, _drn(tmp_path))
    rew = np.asarray(chain.rewards["r"], dtype=np.float64)
    want = float(sum((Fraction(x) for x in RATES), Fraction(0)))  # exit rate times 1
    assert rew[1] == rew[2] == want
    assert _blocks(chain) == _blocks(exact) == 3  # {0}, {1, 2}, {3, 4, 5}


def test_prism_transition_rewards_are_folded_exactly(tmp_path: Path) -> None:
    a, b, c = RATES
    p = tmp_path / "m.prism"
    p.write_text(
        "ctmc\nmodule m\n x : [0..5] init 0;\n"
        " [] x=0 -> 1:(x'=1) + 1:(x'=2);\n"
        f" [go] x=1 -> {a}:(x'=3) + {b}:(x'=4) + {c}:(x'=5);\n"
        f" [go] x=2 -> {c}:(x'=3) + {b}:(x'=4) + {a}:(x'=5);\n"
        " [] x>=3 -> 1:(x'=x);\nendmodule\n"
        "rewards \"r\"\n [go] true : 0.7;\nendrewards\n")
    chain, exact = _read_both(read_prism, p)
    assert isinstance(chain, CTMC)
    rew = np.asarray(chain.rewards["r"], dtype=np.float64)
    _, src, _, _ = chain.rate_edges()
    three = np.flatnonzero(np.bincount(src, minlength=chain.n) == 3)  # x = 1 and x = 2
    assert three.size == 2
    # per firing 0.7 times the probabilities (rates over the exit rate, summing to 1),
    # times the exit rate: 0.7 times the exact sum of the rates, rounded once
    exit_rate = sum((Fraction(x) for x in RATES), Fraction(0))
    want = float(sum((Fraction(r) / exit_rate * Fraction(0.7) for r in RATES), Fraction(0))
                 * exit_rate)
    assert rew[three[0]] == rew[three[1]] == want
    assert _blocks(chain) == _blocks(exact) == 3


def test_a_folded_reward_beyond_float64_is_named(tmp_path: Path) -> None:
    """Exit rate 2e308 (exactly) times action reward 1: no float holds the folded
    reward; the reader names the reward and the state (it used to, via a float sum of
    inf), not an OverflowError from the exact sum."""
    p = tmp_path / "big.drn"
    p.write_text("@type: CTMC\n@reward_models\nr\n@nr_states\n3\n@model\n"
                 "state 0 init\n\taction 0 [1]\n\t\t1 : 1e308\n\t\t2 : 1e308\n"
                 "state 1\n\taction 0 [0]\n\t\t0 : 1\n"
                 "state 2\n\taction 0 [0]\n\t\t0 : 1\n")
    with pytest.raises(ValueError, match=r"reward 'r': state 0 has value inf"):
        _read_both(read_drn, p)


def test_an_infinite_rate_from_storm_is_named_before_rewards_are_folded(
        tmp_path: Path) -> None:
    """Storm adds two rates of 1e308 to the same target into inf: refused by position
    before the exact reward folding (which has no value for inf) looks at it."""
    p = tmp_path / "big.prism"
    p.write_text("ctmc\nmodule m\n x : [0..1] init 0;\n"
                 " [go] x=0 -> 1e308:(x'=1) + 1e308:(x'=1);\n [] x=1 -> 1:(x'=0);\n"
                 "endmodule\nrewards \"r\"\n [go] true : 1;\nendrewards\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"state 0, column 1: value inf is not finite"):
            read_prism(p)


@pytest.mark.parametrize("rewards", ["[go] true : 1e308*10;", "[go] true : 1; x=0 : 1e308*10;"])
def test_an_infinite_reward_from_storm_is_named(tmp_path: Path, rewards: str) -> None:
    """An infinite transition reward (or state reward beside a folded one) has no exact
    value: refused by structure and state, as before the exact folding."""
    p = tmp_path / "r.prism"
    p.write_text("ctmc\nmodule m\n x : [0..1] init 0;\n [go] x=0 -> 1:(x'=1);\n"
                 " [] x=1 -> 1:(x'=0);\nendmodule\n"
                 f"rewards \"r\"\n {rewards}\nendrewards\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"reward 'r': state 0 has value inf"):
            read_prism(p)
