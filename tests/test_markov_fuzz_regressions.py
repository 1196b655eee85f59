"""Regressions found by the adversarial campaign on ``markov`` (readers, writers, edge cases).

Every expectation is written by hand from the file given (the chain it
describes, or the line that is wrong), not taken from lumpkit's output.
"""

from __future__ import annotations

from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest

import markov
from lumpcore import ModelFormatError
from markov import CTMC, DTMC, lump, read_drn, read_prism_explicit, write_prism_explicit

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


@pytest.mark.parametrize("header", ["10000000000000 1", "2 10000000000000"])
def test_huge_tra_header_is_a_format_error(tmp_path: Path, header: str) -> None:
    # arrays of the announced sizes were allocated up front (MemoryError)
    (tmp_path / "m.tra").write_text(header + "\n0 1 1\n")
    with pytest.raises(ModelFormatError, match=r"m\.tra"):
        read_prism_explicit(tmp_path / "m.tra")


def test_tra_read_in_pieces_larger_than_the_first_allocation(tmp_path: Path) -> None:
    n = 70_000  # more transitions than the first block of the growing arrays
    lines = [f"{i} {(i + 1) % n} {i % 7 + 1}" for i in range(n)]
    (tmp_path / "m.tra").write_text(f"{n} {n}\n" + "\n".join(lines) + "\n")
    c = read_prism_explicit(tmp_path / "m.tra")
    src, dst, val = c.off_diagonal()
    np.testing.assert_array_equal(src, np.arange(n))
    np.testing.assert_array_equal(dst, (np.arange(n) + 1) % n)
    np.testing.assert_array_equal(val, np.arange(n) % 7 + 1.0)


def test_utf8_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "m.tra").write_bytes("\ufeff2 2\n0 1 3\n1 0 1\n".encode())
    (tmp_path / "m.lab").write_bytes('\ufeff0="init" 1="up"\n0: 0\n1: 1\n'.encode())
    c = read_prism_explicit(tmp_path / "m.tra")
    assert c.exact_matrix() == [{0: -3, 1: 3}, {0: 1, 1: -1}]
    assert c.labels["up"].tolist() == [1]


def test_label_index_declared_twice_is_refused(tmp_path: Path) -> None:
    # 0="init" 0="a": 'init' silently disappeared (and with it the initial states)
    (tmp_path / "m.tra").write_text("2 2\n0 1 1\n1 0 1\n")
    (tmp_path / "m.lab").write_text('0="init" 0="a"\n1: 0\n')
    with pytest.raises(ModelFormatError, match=r"m\.lab, line 1: label index 0 is declared twice"):
        read_prism_explicit(tmp_path / "m.tra")


@pytest.mark.parametrize(
    ("srew", "message"),
    [
        ("3 1\n7 2.5\n", r"m\.srew, line 2: state 7 out of range 0\.\.2"),
        ("3 2\n1 2.5\n1 3\n", r"m\.srew, line 3: state 1 has a second reward"),
        ("3 1\n1 2.5\n2 3\n", r"m\.srew, line 1: the header announces 1 rewards, the file has 2"),
        ("", r"m\.srew: empty file"),
    ],
)
def test_malformed_srew(tmp_path: Path, srew: str, message: str) -> None:
    (tmp_path / "m.tra").write_text("3 2\n0 1 1\n1 2 1\n")
    (tmp_path / "m.srew").write_text(srew)
    with pytest.raises(ModelFormatError, match=message):
        read_prism_explicit(tmp_path / "m.tra")


def test_two_srew_files_with_one_name_are_refused(tmp_path: Path) -> None:
    # the second file silently replaced the first
    (tmp_path / "m.tra").write_text("3 2\n0 1 1\n1 2 1\n")
    (tmp_path / "m1.srew").write_text('# Reward structure "a"\n3 1\n1 1\n')
    (tmp_path / "m2.srew").write_text('# Reward structure "a"\n3 1\n2 1\n')
    with pytest.raises(ModelFormatError, match=r"m2\.srew: reward structure 'a' is also in"):
        read_prism_explicit(tmp_path / "m.tra")


def test_rewriting_a_name_removes_the_stale_companion_files(tmp_path: Path) -> None:
    # writing a chain with two reward structures, then one with one structure (and no
    # valuations) to the same name left m1.srew, m2.srew and m.sta behind; reading
    # gave the OLD rewards (m1.srew's 'r' replaced the new m.srew's 'r') and valuations
    old = CTMC.from_rates([[0, 1], [2, 0]], rewards={"r": [1, 2], "s": [3, 4]},
                          variables=["x"], valuations=[[1], [2]])
    new = CTMC.from_rates([[0, 5], [7, 0]], rewards={"r": [5, 6]})
    write_prism_explicit(old, tmp_path / "m.tra")
    written = write_prism_explicit(new, tmp_path / "m.tra")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written) == [
        "m.lab", "m.srew", "m.tra"]
    back = read_prism_explicit(tmp_path / "m.tra")
    assert {k: v.tolist() for k, v in back.rewards.items()} == {"r": [5.0, 6.0]}
    assert back.valuations is None
    # srew=False / sta=False: the caller keeps the files it did not ask to write
    write_prism_explicit(old, tmp_path / "k.tra")
    write_prism_explicit(new, tmp_path / "k.tra", srew=False, sta=False)
    assert {"k1.srew", "k2.srew", "k.sta"} <= {p.name for p in tmp_path.iterdir()}


# ---------------------------------------------------------- chains, analyses


@pytest.mark.parametrize("cls", [CTMC, DTMC])
@pytest.mark.parametrize("exact", [False, True])
def test_chain_without_states(tmp_path: Path, cls: type, exact: bool) -> None:
    # float chains raised ZeroDivisionError building the initial distribution; the
    # lumping listed one empty block for 0 blocks; transient failed inside scipy
    c = cls(np.zeros((0, 0)), exact=exact)
    assert c.n == 0 and c.initial.tolist() == []
    kinds = markov.KINDS if cls is CTMC else ("ordinary", "exact", "strict", "bisim")
    for kind in kinds:
        res = lump(c, kind)
        assert res.num_blocks == 0 and res.blocks == ()
    assert markov.transient(c, 1).tolist() == []
    (tmp_path / "e.tra").write_text("0 0\n")
    assert read_prism_explicit(tmp_path / "e.tra", model_type=c.kind).n == 0


@pytest.mark.parametrize(
    ("states", "message"),
    [
        ([1.5], "1.5 is not a state index"),  # was state 1
        (np.array([0.9, 2.2]), "0.9 is not a state index"),  # was states 0 and 2
        ("12", "expected a collection of states, got '12'"),  # was states 1 and 2
        (np.array([True, False, True]), "boolean mask"),  # was states 0 and 1
        ([True], "True is not a state index"),
        (["1"], "'1' is not a state index"),
        ([F(3, 2)], r"Fraction\(3, 2\) is not a state index"),
        ([float("nan")], "nan is not a state index"),
        (3, "expected a collection of states, got 3"),  # was a bare TypeError
        (None, "expected a collection of states, got None"),
        ([10**30], "state 1000000000000000000000000000000 does not exist"),  # was OverflowError
    ],
)
def test_label_states_must_be_integer_indices(states: object, message: str) -> None:
    with pytest.raises(markov.ChainError, match=message):
        CTMC([[-1, 1, 0], [0, -1, 1], [1, 0, -1]], labels={"a": states})


def test_integral_label_states_of_any_number_type_are_accepted() -> None:
    for states in ([2.0, 0], np.array([2.0, 0.0]), [F(2), np.int32(0)], {0, 2}, range(0, 3, 2)):
        c = CTMC([[-1, 1, 0], [0, -1, 1], [1, 0, -1]], labels={"a": states})
        assert c.labels["a"].tolist() == [0, 2]


# ------------------------------------------------------------------- networkx


def test_networkx_partial_initial_and_single_label_name() -> None:
    nx = pytest.importorskip("networkx")
    g = nx.DiGraph(kind="ctmc")
    g.add_node("a", labels="goal")  # one name, not the labels 'g', 'o', 'a', 'l'
    g.add_node("b", initial=1.0)  # 'a' has none: probability 0 (was: all attributes ignored,
    g.add_edge("a", "b", rate=1.0)  # and the mass put on 'a')
    g.add_edge("b", "a", rate=2.0)
    c = markov.from_networkx(g)
    assert {k: v.tolist() for k, v in c.labels.items()} == {"goal": [0]}
    assert c.initial.tolist() == [0.0, 1.0]


# ------------------------------------------------------------------------ CLI


def _two_init_model(tmp_path: Path) -> Path:
    # states 0 and 1 both move to 3 at rate 1, state 2 at rate 5: 0 ~ 1 (ordinary)
    (tmp_path / "m.tra").write_text("4 4\n0 3 1\n1 3 1\n2 3 5\n3 0 1\n")
    (tmp_path / "m.lab").write_text('0="init" 1="goal"\n0: 0\n1: 0\n2: 0\n3: 1\n')
    return tmp_path / "m.tra"


@pytest.mark.parametrize("target", ["nodir/q.tra", "adir.tra"])
def test_cli_output_path_is_checked_before_lumping(tmp_path: Path, target: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from lumpkit._cli import main

    (tmp_path / "adir.tra").mkdir()
    model = _two_init_model(tmp_path)
    assert main(["ctmc", "lump", str(model), "--kind", "exact", "-o",
                 str(tmp_path / target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lumpkit: error: -o ") and ".tmp" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.tra", "m.lab", "m.tra"]


def test_unwritable_initial_distribution_is_named(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from lumpkit._cli import main

    # the ordinary quotient {0,1} {2} {3} has initial masses 2/3, 1/3: PRISM explicit
    # and DRN can only say 'uniform over init'; the error names the states, nothing is written
    model = _two_init_model(tmp_path)
    assert main(["ctmc", "lump", str(model), "-o", str(tmp_path / "q.drn")]) == 2
    err = capsys.readouterr().err
    assert "state 0 has 0.666" in err and "state 1 has 0.333" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.lab", "m.tra"]


def test_prism_parse_error_names_the_place_and_keeps_stdout_clean(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("stormpy")
    from lumpkit._cli import main

    # the message was Storm's last line, the caret under the error ('\t   ^'), and
    # Storm's own ERROR line went to stdout, in front of what --json prints
    (tmp_path / "bad.prism").write_text(
        "ctmc\nmodule m x:[0..2] init 0;\n[] x<2 -> 2:(x=x+1);\nendmodule\n")
    assert main(["ctmc", "lump", str(tmp_path / "bad.prism"), "--json"]) == 2
    out, err = capfd.readouterr()
    assert out == ""
    assert "bad.prism: stormpy could not build the model:" in err
    assert "Parsing error at 3:13" in err and "[] x<2 -> 2:(x=x+1);" in err


def test_to_exact_of_decimal_probabilities_says_why_and_what_to_do() -> None:
    # 0.1 + 0.2 + 0.7 at their binary values is 1 - 2**-55, not 1: refused, with the fix
    d = DTMC([[0.1, 0.2, 0.7], [0, 1, 0], [0, 0, 1]])
    assert sum((F(x) for x in (0.1, 0.2, 0.7)), F(0)) == 1 - F(1, 2**55)
    with pytest.raises(markov.ChainError, match=r"to_exact: .*sums to .*read or build the chain "
                                                r"with exact=True"):
        d.to_exact()
    exact = DTMC([["0.1", "0.2", "0.7"], [0, 1, 0], [0, 0, 1]])
    assert exact.exact_matrix()[0] == {0: F(1, 10), 1: F(1, 5), 2: F(7, 10)}


@pytest.mark.parametrize(
    ("variables", "valuations", "message"),
    [
        (["node"], [("up",), ("down",)], "'up' cannot be written to a .sta file"),
        (["x"], [(float("nan"),), (1,)], "nan cannot be written"),  # was a ValueError mid-write
        (["a,b"], [(1,), (2,)], "state variable 'a,b' cannot be written"),
    ],
)
def test_valuations_a_sta_file_cannot_hold_are_refused_before_writing(
        tmp_path: Path, variables: list[str], valuations: list[tuple[object, ...]],
        message: str) -> None:
    # from_networkx gives named nodes string valuations: the .sta was written, and then
    # read_prism_explicit refused it ('bad state index or value in 0:(up)')
    c = CTMC.from_rates([[0, 1], [2, 0]], variables=variables, valuations=valuations)
    with pytest.raises(ModelFormatError, match=message):
        write_prism_explicit(c, tmp_path / "m.tra")
    assert list(tmp_path.iterdir()) == []
    assert [p.name for p in write_prism_explicit(c, tmp_path / "m.tra", sta=False)] == [
        "m.tra", "m.lab"]


def test_sta_values_of_numpy_types_and_no_variables_round_trip(tmp_path: Path) -> None:
    c = CTMC.from_rates([[0, 1], [2, 0]], variables=["x", "y"],
                        valuations=[(np.True_, np.int64(3)), (False, -1)])
    write_prism_explicit(c, tmp_path / "m.tra")  # np.True_ was written 'True', unreadable
    assert read_prism_explicit(tmp_path / "m.tra").valuations == ((True, 3), (False, -1))
    e = CTMC.from_rates([[0, 1], [2, 0]], variables=[], valuations=[(), ()])
    write_prism_explicit(e, tmp_path / "e.tra")  # '0:()' was read as one empty value
    assert read_prism_explicit(tmp_path / "e.tra").valuations == ((), ())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: markov.transient(CTMC([[-1, 1], [2, -2]]), "1"), "time t must be a number"),
        (lambda: markov.transient(CTMC([[-1, 1], [2, -2]]), None), "time t must be a number"),
        (lambda: markov.stationary(CTMC([[-1, 1], [2, -2]]), initial=[1]),
         "initial distribution must have 2 entries"),  # was accepted (one BSCC)
        (lambda: CTMC([[0], [0, 0]]), "must be a square 2-D matrix"),  # numpy's ValueError
        (lambda: CTMC.from_rates((2, [0, 1], [1], [1.0])), "arrays of one length"),  # IndexError
        (lambda: CTMC.from_rates((-1, [], [], [])), "need n >= 0"),  # numpy's ValueError
    ],
)
def test_api_misuse_is_a_chain_error(call: object, message: str) -> None:
    with pytest.raises(markov.ChainError, match=message):
        call()  # type: ignore[operator]


def test_transient_accepts_fraction_and_numpy_times() -> None:
    d = DTMC([["1/2", "1/2"], [0, 1]])
    assert markov.transient(d, np.int64(2)).tolist() == [0.25, 0.75]  # P^2 by hand
    assert markov.transient(d, F(2)).tolist() == [0.25, 0.75]


def test_srew_mapping_names_the_structures(tmp_path: Path) -> None:
    # srew={"cost": ..., "energy": ...}: the keys were ignored for the files' comments,
    # so two files commented "time" collided (or one came back as "time", not "cost")
    (tmp_path / "m.tra").write_text("3 2\n0 1 1\n1 2 1\n")
    (tmp_path / "a.srew").write_text('# Reward structure "time"\n3 1\n1 1\n')
    (tmp_path / "b.srew").write_text('# Reward structure "time"\n3 1\n2 5\n')
    c = read_prism_explicit(tmp_path / "m.tra", srew={"cost": tmp_path / "a.srew",
                                                      "energy": tmp_path / "b.srew"})
    assert {k: v.tolist() for k, v in c.rewards.items()} == {
        "cost": [0.0, 1.0, 0.0], "energy": [0.0, 0.0, 5.0]}
    one = read_prism_explicit(tmp_path / "m.tra", srew=tmp_path / "a.srew")  # a path: its comment
    assert list(one.rewards) == ["time"]


def test_transient_and_stationary_refuse_a_start_that_is_no_distribution() -> None:
    """A negative mass or a total other than 1 is no start distribution (transient
    used to propagate it as a signed measure)."""
    import markov
    from markov import ChainError

    chain = markov.paper_example_2()
    n = chain.n
    for bad, needle in (([-1.0] + [0.0] * (n - 2) + [2.0], "entry 0 is -1.0"),
                        ([0.5] * n, "sums to 4.0"),
                        ([float("nan")] + [0.0] * (n - 1), "entry 0 is nan")):
        with pytest.raises(ChainError, match=needle):
            markov.transient(chain, 1.0, bad)
        with pytest.raises(ChainError, match=needle):
            markov.stationary(chain, initial=bad)
    ok = [1.0] + [0.0] * (n - 1)
    assert abs(float(markov.transient(chain, 1.0, ok).sum()) - 1.0) < 1e-12
