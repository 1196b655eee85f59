"""File formats: round trips, Storm as an independent reader/writer, malformed input."""

from __future__ import annotations

from fractions import Fraction as F
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import markov
from lumpcore import LumpkitWarning, ModelFormatError
from markov import (
    CTMC,
    DTMC,
    from_networkx,
    paper_example_2,
    read_drn,
    read_model,
    read_prism,
    read_prism_explicit,
    to_networkx,
    write_drn,
    write_prism_explicit,
)

stormpy = pytest.importorskip("stormpy")
stormpy_io = pytest.importorskip("stormpy.io")
DATA = Path(__file__).parent / "data"
TWOQ = DATA / "markov" / "twoqueues.prism"


def same_chain(a: CTMC | DTMC, b: CTMC | DTMC, *, exact: bool = True) -> None:
    assert type(a) is type(b) and a.n == b.n
    _, s1, d1, v1 = a.to_edges()
    _, s2, d2, v2 = b.to_edges()
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(d1, d2)
    if exact:
        assert v1.tolist() == v2.tolist()
    else:
        np.testing.assert_allclose(v1.astype(float), v2.astype(float), rtol=1e-12)
    # (labels without states cannot be written to DRN; they carry no information here)
    assert {k: v.tolist() for k, v in a.labels.items() if k != "init" and v.size} == {
        k: v.tolist() for k, v in b.labels.items() if k != "init" and v.size}
    assert [float(x) for x in a.initial] == pytest.approx([float(x) for x in b.initial])
    if isinstance(a, CTMC):
        assert (a.loops is None) == (b.loops is None)  # type: ignore[union-attr]
        if a.loops is not None:
            assert [float(x) for x in a.loops] == pytest.approx([float(x) for x in b.loops])  # type: ignore[union-attr]
    assert set(a.rewards) == set(b.rewards)
    for k in a.rewards:
        assert [float(x) for x in a.rewards[k]] == pytest.approx([float(x) for x in b.rewards[k]])


@st.composite
def chains(draw: st.DrawFn) -> CTMC | DTMC:
    n = draw(st.integers(1, 6))
    exact = draw(st.booleans())
    values = (st.fractions(min_value=F(1, 100), max_value=100, max_denominator=100) if exact
              else st.floats(min_value=1e-6, max_value=1e6))
    labels = {
        name: draw(st.lists(st.integers(0, n - 1), max_size=n, unique=True))
        for name in draw(st.lists(st.sampled_from(["a", "goal", "x_1"]), unique=True))
    }
    rewards = {name: [draw(values) for _ in range(n)]
               for name in draw(st.lists(st.sampled_from(["r", "cost"]), unique=True))}
    init = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    initial = [F(1, len(init)) if s in init else F(0) for s in range(n)]
    if not exact:
        initial = [float(x) for x in initial]  # type: ignore[misc]
    if draw(st.booleans()):
        rates = [[draw(values) if draw(st.booleans()) else 0 for j in range(n)]
                 for i in range(n)]  # diagonal entries: self-loops (kept in CTMC.loops)
        return CTMC.from_rates(rates, labels=labels, rewards=rewards, initial=initial,
                               exact=exact)
    rows = []
    for _ in range(n):
        w = [draw(st.integers(0, 3)) for _ in range(n)]
        if sum(w) == 0:
            w[0] = 1
        rows.append([F(x, sum(w)) for x in w] if exact else [x / sum(w) for x in w])
    return DTMC(rows, labels=labels, rewards=rewards, initial=initial, exact=exact)


@settings(max_examples=40, deadline=None)
@given(chain=chains())
def test_round_trips(chain: CTMC | DTMC, tmp_path_factory: pytest.TempPathFactory) -> None:
    d = tmp_path_factory.mktemp("rt")
    kind = "ctmc" if isinstance(chain, CTMC) else "dtmc"
    write_prism_explicit(chain, d / "m.tra")
    back = read_prism_explicit(d / "m.tra", model_type=kind, exact=chain.exact)  # type: ignore[arg-type]
    same_chain(chain, back)
    write_drn(chain, d / "m.drn")
    same_chain(chain, read_drn(d / "m.drn", exact=chain.exact))
    same_chain(chain, from_networkx(to_networkx(chain)))


def test_sta_and_named_rewards_round_trip(tmp_path: Path) -> None:
    c = CTMC.from_rates([[0, 1.5], [0.25, 0]], labels={"init": [0], "b": [1]},
                        rewards={"cost": [1.0, 2.5], "time": [0.0, 1.0]},
                        variables=("x", "on"), valuations=[(0, True), (1, False)])
    written = write_prism_explicit(c, tmp_path / "c.tra")
    assert [p.name for p in written] == ["c.tra", "c.lab", "c.sta", "c1.srew", "c2.srew"]
    assert (tmp_path / "c.sta").read_text() == "(x,on)\n0:(0,true)\n1:(1,false)\n"
    assert (tmp_path / "c.lab").read_text() == '0="init" 1="b"\n0: 0\n1: 1\n'
    back = read_prism_explicit(tmp_path / "c.tra")
    same_chain(c, back)
    assert back.variables == ("x", "on") and back.valuations == ((0, True), (1, False))


def test_exact_values_are_written_exactly(tmp_path: Path) -> None:
    c = CTMC.from_rates([[0, F(1, 3)], [F(1, 10), 0]], exact=True)
    write_prism_explicit(c, tmp_path / "e.tra")
    assert (tmp_path / "e.tra").read_text() == "2 2\n0 1 1/3\n1 0 0.1\n"
    assert read_prism_explicit(tmp_path / "e.tra", exact=True).exact_matrix()[1][0] == F(1, 10)


# ------------------------------------------------------------ Storm as a second opinion


def test_storm_reads_our_drn(tmp_path: Path) -> None:
    c = paper_example_2()
    write_drn(c, tmp_path / "ex2.drn")
    m = stormpy.build_model_from_drn(str(tmp_path / "ex2.drn"))
    assert m.nr_states == 8 and m.nr_transitions == 17
    assert list(m.exit_rates) == [4, 2, 2, 2, 2, 2, 2, 5]
    assert sorted(m.labeling.get_states("last")) == [7]
    assert list(m.initial_states) == [0]


def test_we_read_storms_drn_and_prism_and_jani_agree(tmp_path: Path) -> None:
    with pytest.warns(LumpkitWarning, match="'served': transition/action rewards are folded"):
        from_prism = read_prism(TWOQ, {"N": 3})
    prog = stormpy.parse_prism_program(str(TWOQ), prism_compatibility=True)
    prog, _ = stormpy.instantiate_constants(prog, "N=3")
    model = stormpy.build_model(prog)
    stormpy_io.export_to_drn(model, str(tmp_path / "tq.drn"))
    with pytest.warns(LumpkitWarning, match="tq.drn: reward structure.s. 'served': action"):
        from_drn = read_drn(tmp_path / "tq.drn")  # the vectorised reader
    same_chain(from_prism, from_drn, exact=False)
    with pytest.warns(LumpkitWarning, match="tq.drn: reward structure.s. 'served': action"):
        slow = read_drn(tmp_path / "tq.drn", exact=True)  # the line-by-line reader
    assert [float(x) for x in slow.rewards["served"]] == list(from_drn.rewards["served"])
    with pytest.warns(LumpkitWarning, match="'served'"):
        from_jani = read_prism(DATA / "markov" / "twoqueues.jani", {"N": 3})
    same_chain(from_prism, from_jani)
    # by hand: 16 states (x1, x2 in 0..3), rates lambda = 1/2 up, mu = 3/2 down
    assert from_prism.n == 16
    exits = sorted(set(from_prism.exit_rates().tolist()))
    # per queue: empty 1/2 (arrival), busy 1/2 + 3/2 = 2, full 3/2; sums over two queues:
    assert exits == [1.0, 2.0, 2.5, 3.0, 3.5, 4.0]
    # the action reward [arrive1] 1 is earned at rate lambda = 1/2 while queue 1 has room
    with pytest.warns(LumpkitWarning, match="'served'"):
        ex = read_prism(TWOQ, {"N": 3}, exact=True, valuations=True)
    x1 = ex.variables.index("x1")
    assert ex.rewards["served"].tolist() == [F(1, 2) if v[x1] < 3 else 0 for v in ex.valuations]
    assert list(from_prism.rewards["served"]) == [float(x) for x in ex.rewards["served"]]


def test_exact_build_and_read_model_dispatch(tmp_path: Path) -> None:
    ex = read_model(TWOQ, {"N": 2}, exact=True)
    assert ex.exact and F(3, 2) in ex.off_diagonal()[2].tolist()
    write_prism_explicit(ex, tmp_path / "tq.tra")
    same_chain(ex, read_model(tmp_path / "tq.tra", exact=True))
    write_drn(ex, tmp_path / "tq.drn")
    same_chain(ex, read_model(tmp_path / "tq.drn", exact=True))
    with pytest.raises(ModelFormatError, match=r"unknown model format '\.txt'"):
        (tmp_path / "m.txt").write_text("x")
        read_model(tmp_path / "m.txt")
    with pytest.raises(ModelFormatError, match=r"constants"):
        read_model(tmp_path / "tq.drn", {"N": 3})


def test_prism_errors_are_clear() -> None:
    with pytest.raises(ModelFormatError, match=r"undefined constant\(s\) N; give values with -c N"):
        read_prism(TWOQ)
    with pytest.raises(ModelFormatError, match=r"twoqueues\.prism: unknown constant\(s\) Nope"):
        read_prism(TWOQ, {"Nope": 3})
    with pytest.raises(ModelFormatError, match=r"twoqueues\.prism: stormpy could not build"):
        read_prism(TWOQ, {"N": "x"})


# ------------------------------------------------------------ malformed input


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.tra", "", r"a.tra: empty file"),
        ("a.tra", "2 x\n", r"a.tra, line 1: expected the header"),
        ("a.tra", "2 2\n0 1 1\n",
         r"a.tra, line 1: the header announces 2 transitions, the file has 1"),
        ("a.tra", "2 1\n0 5 1\n", r"a.tra, line 2: state 5 out of range 0..1"),
        ("a.tra", "2 1\n0 1 abc\n", r"a.tra, line 2: bad value 'abc'"),
        ("a.tra", "2 1\n0 0 1 1\n", r"a.tra, line 2: expected 'source target value'.*MDP"),
        ("a.tra", "2 1\n0 1 -1\n",
         r"a.tra, line 2: generator: state 0, column 1: off-diagonal rate"),
        ("a.tra", "2 2\n0 1 1\n0 1 1e999\n", r"a.tra, line 3: bad value '1e999'"),
        ("a.tra", "2 1\n0 1 1" + "0" * 400 + "/1\n",
         r"a.tra, line 2: bad value .* beyond float64's range; read the model with exact=True"),
        ("a.drn", "@type: CTMC\n@nr_states\n2\n@model\nstate 0\n\taction 0\n\t\t1 : -3\n"
                  "state 1\n\taction 0\n\t\t0 : 1\n",
         r"a.drn, line 7: generator: state 0, column 1: off-diagonal rate -3"),
        # (Storm writes every target of a state once; summing a repeated one would read a
        # damaged file as another chain)
        ("a.drn", "@type: CTMC\n@nr_states\n2\n@model\nstate 0\n\taction 0\n\t\t1 : 1\n"
                  "\t\t1 : -3\nstate 1\n\taction 0\n\t\t0 : 1\n",
         r"a.drn, line 8: transition 0 -> 1 is listed twice \(first on line 7\)"),
        ("a.tra", "2 2\n0 1 1\n0 1 2\n",
         r"a.tra, line 3: transition 0 -> 1 is listed twice \(first on line 2\)"),
        # the files' number syntax, not Python's (1_0 read as 10, other scripts' digits)
        ("a.tra", "2 1\n0 1 1_0\n", r"a.tra, line 2: bad value '1_0': .* is not a number"),
        ("a.tra", "2 1\n0 1_0 1\n", r"a.tra, line 2: state indices must be integers"),
        ("a.tra", "2 1\n\u0660 1 1\n", r"a.tra, line 2: state indices must be integers"),
        ("a.tra", "2 1\n+0 1 1\n", r"a.tra, line 2: state indices must be integers"),
        ("a.tra", "\u0662 1\n0 1 1\n", r"a.tra, line 1: expected the header"),
        # a state count no chain can have (its transitions' int64 keys would overflow)
        ("a.tra", "99999999999999999999 1\n0 1 1\n",
         r"a.tra: generator: 99999999999999999999 states; lumpkit holds chains of at most"),
        ("a.drn", "@type: CTMC\n@nr_states\n2\n@nr_choices\n5\n@model\nstate 0\n\taction 0\n"
                  "\t\t1 : 1\nstate 1\n\taction 0\n\t\t0 : 1\n",
         r"a.drn, line 5: @nr_choices says 5; a chain has one choice per state, 2"),
        ("a.drn", "@type: DTMC\n@nr_states\n1\n@model\nstate 0 !7\n\taction 0\n\t\t0 : 1\n",
         r"a.drn, line 5: an exit rate \('!7'\) on a DTMC state"),
        # a state line that lost its '!': '4' and '[2]' are no labels
        ("a.drn", "@type: CTMC\n@reward_models\nr\n@nr_states\n1\n@model\nstate 0 4 [2] mid\n"
                  "\taction 0\n\t\t0 : 1\n",
         r"a.drn, line 7: '4' is no label"),
        ("a.drn", "@type: CTMC\n@nr_states\n2\n@model\nstate 0\n\taction 0\n\t\t1_0 : 1\n"
                  "state 1\n\taction 0\n\t\t0 : 1\n", r"a.drn, line 7: bad transition"),
        ("a.drn", "@type: MDP\n", r"a.drn, line 1: model type 'MDP' is not supported"),
        ("a.drn", "@type: CTMC\n@nr_states\n1\n@model\nstate 0 !1\n\taction 0\n\t\t3 : 1\n",
         r"a.drn, line 7: target state 3 out of range"),
        ("a.drn", "@type: CTMC\n@nr_states\n1\n@model\nstate 0 !1\n\taction a\n\taction b\n",
         r"a.drn, line 7: state 0 has more than one action"),
        ("a.drn", "@type: CTMC\n@nr_states\n2\n@model\nstate 0 !5\n\taction 0\n\t\t1 : 1\n"
                  "state 1\n\taction 0\n\t\t0 : 1\n",
         r"a.drn, line 5: state 0 declares exit rate 5.0, but its rates sum to 1.0"),
    ],
)
def test_malformed_files_name_file_line_reason(tmp_path: Path, name: str, text: str,
                                               message: str) -> None:
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ModelFormatError, match=message):
        read_model(p)


def test_invalid_chain_errors_name_the_lines(tmp_path: Path) -> None:
    """A row that is no distribution, found once the file is read, names its lines."""
    (tmp_path / "d.tra").write_text("3 4\n0 1 0.5\n1 1 1\n0 2 0.4\n2 2 1\n")
    with pytest.raises(ModelFormatError,
                       match=r"d.tra, lines 2, 4: transition matrix: row of state 0 sums to 0.9"):
        read_prism_explicit(tmp_path / "d.tra", model_type="dtmc")
    (tmp_path / "d.drn").write_text(
        "@type: DTMC\n@nr_states\n2\n@model\nstate 0\n\taction 0\n\t\t1 : 0.5\n"
        "\t\t0 : 0.25\nstate 1\n\taction 0\n\t\t1 : 1\n")
    with pytest.raises(ModelFormatError,
                       match=r"d.drn, lines 7-8: transition matrix: row of state 0 sums to 0.75"):
        read_drn(tmp_path / "d.drn")
    # a state without transitions: the DRN names the state's own line
    (tmp_path / "e.drn").write_text(
        "@type: DTMC\n@nr_states\n2\n@model\nstate 0\n\taction 0\n\t\t1 : 1\n"
        "state 1\n\taction 0\n")
    with pytest.raises(ModelFormatError, match=r"e.drn, line 8: transition matrix: row of state 1"):
        read_drn(tmp_path / "e.drn")


def test_empty_init_label_is_the_lab_files_error(tmp_path: Path) -> None:
    (tmp_path / "m.tra").write_text("2 1\n0 1 1\n")
    (tmp_path / "m.lab").write_text('0="init" 1="goal"\n1: 1\n')
    with pytest.raises(ModelFormatError, match=r"m.lab: label 'init' is declared but no state"):
        read_prism_explicit(tmp_path / "m.tra")


def test_storm_rounded_exit_rates_read_exactly(tmp_path: Path) -> None:
    """Storm writes ``!exit`` as a rounded double (here 1/3 + 1/3 + 1/3 + 200 as Storm
    prints it with 17 digits); the exact reader uses the printed rates and checks the exit
    rate to a relative 1e-6, as the float reader does."""
    third = "0.33333333333333331"
    text = ("@type: CTMC\n@nr_states\n5\n@model\nstate 0 !201 init\n\taction 0\n"
            f"\t\t1 : {third}\n\t\t2 : {third}\n\t\t3 : {third}\n\t\t4 : 200\n"
            + "".join(f"state {s} !1\n\taction 0\n\t\t0 : 1\n" for s in range(1, 5)))
    (tmp_path / "s.drn").write_text(text)
    ex = read_drn(tmp_path / "s.drn", exact=True)
    assert ex.exit_rates().tolist() == [200 + 3 * F(third), 1, 1, 1, 1]
    (tmp_path / "t.drn").write_text(text.replace("!201 ", "!202 "))  # a wrong exit rate
    for exact in (True, False):
        with pytest.raises(ModelFormatError, match=r"t.drn, line 5: state 0 declares exit rate"):
            read_drn(tmp_path / "t.drn", exact=exact)
    (tmp_path / "u.drn").write_text(text.replace("!201 ", "!1" + "0" * 400 + "/1 "))
    with pytest.raises(ModelFormatError, match=r"u.drn, line 5: state 0 declares exit rate"):
        read_drn(tmp_path / "u.drn", exact=True)


@pytest.mark.parametrize(("lab", "message"), [
    ('0="init" 1="a"\n0: 0\n1: 1\n1: 0\n',
     r"m.lab, line 4: state 1 is listed a second time \(first on line 3\)"),
    ('0="init" 1="a"\n0: 0 1 1\n', r"m.lab, line 2: a label index is repeated"),
])
def test_a_state_listed_twice_in_a_lab_file_is_refused(tmp_path: Path, lab: str,
                                                       message: str) -> None:
    """As in a .srew file: merging two lines of one state read a damaged file silently."""
    (tmp_path / "m.tra").write_text("2 1\n0 1 1\n")
    (tmp_path / "m.lab").write_text(lab)
    with pytest.raises(ModelFormatError, match=message):
        read_prism_explicit(tmp_path / "m.tra")


def test_malformed_lab_and_srew(tmp_path: Path) -> None:
    (tmp_path / "m.tra").write_text("2 1\n0 1 1\n")
    (tmp_path / "m.lab").write_text('0="init"\n0: 0 7\n')
    with pytest.raises(ModelFormatError, match=r"m.lab, line 2: label index 7 was not declared"):
        read_prism_explicit(tmp_path / "m.tra")
    (tmp_path / "m.lab").write_text('0="init"\n0: 0\n')
    (tmp_path / "m.srew").write_text("3 1\n0 1\n")
    with pytest.raises(ModelFormatError, match=r"m.srew, line 1: reward file is for 3 states"):
        read_prism_explicit(tmp_path / "m.tra")


def test_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.tra"
    target.write_text("old content\n")
    import markov._explicit as explicit

    calls = {"n": 0}

    def exploding(x: object) -> str:
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("disk full")
        return str(x)

    monkeypatch.setattr(explicit, "fmt_number", exploding)
    with pytest.raises(RuntimeError, match="disk full"):
        write_prism_explicit(paper_example_2(), target)
    assert target.read_text() == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tra"]


def test_written_files_get_ordinary_permissions(tmp_path: Path) -> None:
    import os

    umask = os.umask(0o022)
    try:
        write_drn(paper_example_2(), tmp_path / "a.drn")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.drn").stat().st_mode & 0o777 == 0o644


def test_unwritable_annotations_are_refused(tmp_path: Path) -> None:
    c = CTMC([[-1, 1], [1, -1]], labels={"has space": [0]}, initial=[0.25, 0.75])
    with pytest.raises(ModelFormatError, match="not uniform"):
        write_prism_explicit(c, tmp_path / "x.tra")
    c2 = CTMC([[-1, 1], [1, -1]], labels={"has space": [0]})
    with pytest.raises(ModelFormatError, match="'has space'"):
        write_drn(c2, tmp_path / "x.drn")
    assert list(tmp_path.iterdir()) == []


def test_networkx_graph_by_hand() -> None:
    g = nx.DiGraph(kind="dtmc")
    g.add_node("a", labels={"start"}, initial=1.0)
    g.add_node("b", initial=0.0)
    g.add_edge("a", "b", prob=1.0)
    g.add_edge("b", "b", prob=1.0)
    c = from_networkx(g)
    assert isinstance(c, DTMC) and c.labels["start"].tolist() == [0]
    assert c.valuations == (("a",), ("b",))
    with pytest.raises(ModelFormatError, match="prob"):
        from_networkx(nx.DiGraph([("a", "b")]), "dtmc")


def test_public_names() -> None:
    assert markov.__all__ == sorted(markov.__all__)
    for name in markov.__all__:
        assert getattr(markov, name).__doc__


@pytest.mark.parametrize("suffix", [".prism", ".jani"])
def test_model_files_that_are_not_text_are_named_with_the_line(tmp_path: Path,
                                                               suffix: str) -> None:
    src = Path(__file__).parent / "data" / "markov" / f"twoqueues{suffix}"
    lines = src.read_bytes().split(b"\n")
    lines[2] = lines[2] + b" \xf0\x82"  # an invalid UTF-8 sequence on line 3
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(b"\n".join(lines))
    with pytest.raises(ModelFormatError, match=rf"bad\{suffix}, line 3: not UTF-8"):
        markov.read_model(bad, constants={"N": 3})


@pytest.mark.parametrize(("fmt", "reward"), [("drn", "@model"), ("drn", "//c"), ("drn", "a b"),
                                             ("tra", ""), ("tra", 'q"x'), ("tra", "a\nb")])
def test_names_a_format_cannot_read_back_are_refused_before_writing(
        tmp_path: Path, fmt: str, reward: str) -> None:
    """A name that would make the written file unreadable (or lose the reward on reading)
    is refused, and nothing is written."""
    chain = markov.CTMC.from_rates([[0, 1], [2, 0]], rewards={reward: [1.0, 0.0]})
    write = markov.write_drn if fmt == "drn" else markov.write_prism_explicit
    with pytest.raises(ModelFormatError, match="rename it"):
        write(chain, tmp_path / f"m.{fmt}")
    assert list(tmp_path.iterdir()) == []
    fine = markov.CTMC.from_rates([[0, 1], [2, 0]], rewards={"r_1": [1.0, 0.0]})
    write(fine, tmp_path / f"m.{fmt}")
    back = markov.read_drn(tmp_path / "m.drn") if fmt == "drn" else \
        markov.read_prism_explicit(tmp_path / "m.tra")
    assert back.rewards["r_1"].tolist() == [1.0, 0.0]


@pytest.mark.parametrize("name", ["1x", "[a", "!b", "@c", "a//b", "a b"])
def test_drn_names_it_could_not_read_back_are_refused_by_the_writer(tmp_path: Path,
                                                                    name: str) -> None:
    """The writer refuses the label names the reader refuses (a digit, '!' or '[' first
    reads as part of a state line's index, exit rate or rewards), so that every file it
    writes reads back."""
    chain = CTMC.from_rates([[0, 1], [1, 0]], labels={name: [0]})
    with pytest.raises(ModelFormatError, match=r"cannot be written to DRN"):
        write_drn(chain, tmp_path / "m.drn")
    assert not (tmp_path / "m.drn").exists()
