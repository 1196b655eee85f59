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
