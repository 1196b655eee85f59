"""Regressions of the second markov campaign: PRISM-language models through stormpy.

Every expectation is written by hand from the model text (its states, rates
and rewards), not taken from lumpkit's output.
"""

from __future__ import annotations

import warnings
from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest

from lumpcore import LumpkitWarning, ModelFormatError
from markov import from_stormpy, lump, read_prism

stormpy = pytest.importorskip("stormpy")

_TWO_STATES = ("ctmc\nmodule m\n  x : [0..1] init 0;\n  [] x=0 -> 2 : (x'=1);\n"
               "  [] x=1 -> 3 : (x'=0);\nendmodule\n")


def test_unnamed_reward_structure_beside_one_named_default_is_kept(tmp_path: Path) -> None:
    # Storm names the unnamed structure "", and it was renamed "default": the structure
    # the model names "default" was then silently replaced (one of the two was lost, and
    # lumping no longer respected it)
    p = tmp_path / "m.prism"
    p.write_text(_TWO_STATES + 'rewards "default"\n  x=0 : 1;\nendrewards\n'
                 "rewards\n  x=1 : 7;\nendrewards\n")
    chain = read_prism(p, exact=True)
    assert sorted(chain.rewards) == ["default", "default_2"]
    assert list(chain.rewards["default"]) == [1, 0]
    assert list(chain.rewards["default_2"]) == [0, 7]
    # both are respected: states 0 and 1 differ in each
    assert lump(chain, "ordinary", rewards=["default_2"]).num_blocks == 2


def test_unnamed_reward_structure_alone_is_called_default(tmp_path: Path) -> None:
    p = tmp_path / "m.prism"
    p.write_text(_TWO_STATES + "rewards\n  x=1 : 7;\nendrewards\n")
    assert {k: list(v) for k, v in read_prism(p, exact=True).rewards.items()} == {
        "default": [0, 7]}


def test_parametric_stormpy_model_is_a_format_error() -> None:
    # a parametric DTMC's probabilities are rational functions ("(p)/(1)"): this was a
    # bare ValueError from Fraction() instead of an error saying what to do
    import stormpy.examples.files as ex

    prog = stormpy.parse_prism_program(ex.prism_pdtmc_die)
    model = stormpy.build_model[stormpy.RationalFunction](prog)
    with pytest.raises(ModelFormatError, match=r"parametric model.*instantiate the parameters"):
        from_stormpy(model)


_BIRTH_DEATH = ("ctmc\nconst bool fast;\nconst int K;\nconst double lam = fast ? 2 : 1;\n"
                "module m\n  x : [0..K] init 0;\n  [] x<K -> lam : (x'=x+1);\n"
                "  [] x>0 -> 1 : (x'=x-1);\nendmodule\n")


@pytest.mark.parametrize("constants", [
    {"K": 3, "fast": True},
    {"K": F(3), "fast": True},           # was "3/1": Storm refuses it for an int
    {"K": np.int64(3), "fast": np.True_},  # np.True_ was "True": Storm wants "true"
    {"K": 3.0, "fast": np.bool_(True)},  # was "3.0": refused for an int
    {"K": "3", "fast": "true"},          # as on the command line
], ids=["int", "Fraction", "numpy", "float", "str"])
def test_constants_of_python_and_numpy_number_types(tmp_path: Path,
                                                    constants: dict[str, object]) -> None:
    p = tmp_path / "bd.prism"
    p.write_text(_BIRTH_DEATH)
    chain = read_prism(p, constants, exact=True)
    # K = 3: states x = 0..3, up rate lam = 2 (fast), down rate 1
    assert chain.exact_matrix() == [
        {0: F(-2), 1: F(2)},
        {0: F(1), 1: F(-3), 2: F(2)},
        {1: F(1), 2: F(-3), 3: F(2)},
        {2: F(1), 3: F(-1)},
    ]


def test_decimal_and_fraction_constants_are_exact(tmp_path: Path) -> None:
    p = tmp_path / "r.prism"
    p.write_text("ctmc\nconst double r;\nmodule m\n  x : [0..1] init 0;\n"
                 "  [] x=0 -> r : (x'=1);\n  [] x=1 -> 1 : (x'=0);\nendmodule\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", LumpkitWarning)
        for value, want in ((0.1, F(1, 10)), (F(1, 3), F(1, 3)), (np.float64(2.5), F(5, 2)),
                            (1e-20, F(1, 10**20))):
            assert read_prism(p, {"r": value}, exact=True).exact_matrix()[0][1] == want


# ------------------------------------------------- float arithmetic: exact diagonal


@pytest.mark.parametrize("kind", ["ordinary", "proportional"])
def test_float_arithmetic_takes_the_generator_diagonal_exactly(kind: str) -> None:
    # Without labels the one-block partition is ordinarily (and proportionally) lumpable
    # for every CTMC: rows of Q sum to 0.  The stored diagonal of state 0 is the float
    # sum 0.1 + 0.2 = 0.30000000000000004, not minus the exact sum of its rates; float
    # arithmetic (default grid, far finer than these floats' spacing) used it and split
    # every state, while exact arithmetic on the same chain gave one block.
    from markov import CTMC

    chain = CTMC.from_rates([[0, 0.1, 0.2], [0.3, 0, 0], [0.5, 0, 0]])
    assert chain.exit_rates()[0] == 0.1 + 0.2 != F(0.1) + F(0.2)
    res = lump(chain, kind, arithmetic="float")
    assert res.blocks == ((0, 1, 2),)
    assert res.quotient.n == 1 and res.quotient.num_transitions == 0
