"""``lumpkit ctmc lump`` end to end (expected numbers from Storm or by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lumpkit._cli import main
from markov import paper_example_2, read_prism_explicit, stationary, write_drn, write_prism_explicit

pytest.importorskip("stormpy")
DATA = Path(__file__).parent / "data"
POLLING5 = DATA / "qvbench" / "polling" / "polling.5.prism"


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["ctmc", "lump", *argv, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # exactly one JSON object, nothing else on stdout
    return json.loads(out)


def storm_bisim_blocks(path: Path, preserve_rewards: bool) -> int:
    """Storm's strong bisimulation (all labels, rewards as asked) on the same model."""
    import stormpy
    import stormpy.transformations as tr

    prog = stormpy.parse_prism_program(str(path), prism_compatibility=True)
    model = stormpy.build_model(prog)
    opts = tr.BisimulationOptions()
    opts.bisimulation_type = tr.BisimulationType.STRONG
    opts.state_label_preservation = tr.StateLabelPreservation.ALL
    opts.preserve_all_rewards = preserve_rewards
    return int(tr.perform_bisimulation(model, [], options=opts).nr_states)


def test_json_bisim_on_polling5_matches_storm(capsys: pytest.CaptureFixture[str]) -> None:
    info = run_json(capsys, str(POLLING5), "--kind", "bisim")
    assert info["states"] == 240
    assert info["blocks"] == storm_bisim_blocks(POLLING5, preserve_rewards=True)
    for key in ("transitions", "quotient_transitions", "seconds"):
        assert key in info
    # without rewards: THEORY section 2 measured 48 blocks of 240 with stormpy 2.0.0
    info = run_json(capsys, str(POLLING5), "--kind", "bisim", "--rewards", "")
    assert info["blocks"] == storm_bisim_blocks(POLLING5, preserve_rewards=False) == 48
    assert 0 < info["quotient_transitions"] < info["transitions"]  # type: ignore[operator]


def test_human_output_and_quotient_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "ex2.tra"
    write_prism_explicit(paper_example_2(), src)
    out = tmp_path / "q.tra"
    assert main(["ctmc", "lump", str(src), "--kind", "proportional-exact", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "8 states, 17 transitions" in text and "4 blocks" in text
    assert "preserves    steady state only" in text
    q = read_prism_explicit(out, exact=True)
    # the quotient's stationary distribution = block masses of the original (by THEORY);
    # Example 2's stationary distribution, solved independently in the chain tests
    pi = stationary(paper_example_2())
    blocks = [[0], [1, 2, 3], [4, 5, 6], [7]]
    assert stationary(q) == pytest.approx([sum(pi[b]) for b in blocks], abs=1e-12)


def test_drn_input_and_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_drn(paper_example_2(), tmp_path / "ex2.drn")
    info = run_json(capsys, str(src), "--kind", "exact", "--exact", "-o", str(tmp_path / "q.drn"))
    assert info["blocks"] == 7 and info["exact_model"] is True  # {2, 3} merge (rho = 1)
    assert (tmp_path / "q.drn").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([str(DATA / "markov" / "twoqueues.prism")], "undefined constant(s) N"),
        ([str(DATA / "markov" / "twoqueues.prism"), "-c", "N"], "-c expects NAME=VALUE"),
        (["missing.tra"], "no such model file"),
        ([str(POLLING5), "-o", "out.txt"], "-o must name a .tra or .drn file"),
        ([str(POLLING5), "--tolerance", "0.1"], "--tolerance needs --arithmetic float"),
    ],
)
def test_errors_exit_2_with_message(argv: list[str], message: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ctmc", "lump", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lumpkit: error:") and message in err
    assert "Traceback" not in err


def test_output_naming_the_input_is_refused(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "ex2.tra"
    write_prism_explicit(paper_example_2(), src)
    before = src.read_text(encoding="utf-8")
    assert main(["ctmc", "lump", str(src), "-o", str(src)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lumpkit: error:") and "would overwrite the input model" in err
    assert src.read_text(encoding="utf-8") == before


def test_write_failure_is_one_line_and_leaves_the_old_quotient(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "ex2.tra"
    write_prism_explicit(paper_example_2(), src)
    out = tmp_path / "q.tra"
    out.write_text("old\n", encoding="utf-8")
    (tmp_path / "q.lab").mkdir()  # where the quotient's labels would go
    assert main(["ctmc", "lump", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"lumpkit: error: {tmp_path / 'q.lab'}: Is a directory\n"
    assert out.read_text(encoding="utf-8") == "old\n"  # nothing of the set was replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ex2.lab", "ex2.tra", "q.lab",
                                                          "q.tra"]


_DIE = """dtmc
module die
  s : [0..3] init 0;
  [] s=0 -> 0.5 : (s'=1) + 0.5 : (s'=2);
  [] s=1 -> (s'=3);
  [] s=2 -> (s'=3);
  [] s=3 -> (s'=3);
endmodule
rewards "flips"
  [] s<3 : 1;
endrewards
rewards "steps"
  s<3 : 1;
endrewards
"""


def test_transition_rewards_folded_are_named(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("stormpy")
    import markov
    from lumpcore import LumpkitWarning

    src = tmp_path / "die.pm"
    src.write_text(_DIE)
    with pytest.warns(LumpkitWarning, match="'flips': transition/action rewards are folded"):
        chain = markov.read_model(src)
    assert sorted(chain.rewards) == ["flips", "steps"]
    assert main(["ctmc", "lump", str(src), "--dtmc"]) == 0
    err = capsys.readouterr().err
    assert "lumpkit: warning: reward structure(s) 'flips'" in err


def test_folding_warning_only_for_the_rewards_the_lumping_respects(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Action rewards are folded into state rewards with a warning; --rewards that leaves
    the structure out of the lumping also leaves out the warning about it."""
    src = tmp_path / "a.drn"
    src.write_text("@type: CTMC\n@reward_models\nserved\n@nr_states\n2\n@model\n"
                   "state 0 !2 init\n\taction 0 [1]\n\t\t1 : 2\n"
                   "state 1 !1\n\taction 0 [0]\n\t\t0 : 1\n")
    for rewards, warned in ((None, True), ("served", True), ("", False)):
        argv = ["ctmc", "lump", str(src)] + ([] if rewards is None else ["--rewards", rewards])
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert ("reward structure(s) 'served'" in err) == warned, (rewards, err)


def test_dtmc_flag_on_a_ctmc_file_is_refused(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "ex2.drn"
    write_drn(paper_example_2(), src)  # a CTMC, and the .drn says so
    assert main(["ctmc", "lump", str(src), "--dtmc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lumpkit: error: --dtmc is for .tra files") and "CTMC" in err


def test_a_label_declared_twice_is_refused(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "m.tra"
    src.write_text("2 2\n0 1 1\n1 0 1\n", encoding="utf-8")
    (tmp_path / "m.lab").write_text('0="init" 1="goal" 2="goal"\n0: 0\n1: 1\n1: 2\n',
                                    encoding="utf-8")
    assert main(["ctmc", "lump", str(src)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lumpkit: error:") and "m.lab, line 1" in err
    assert "label 'goal' is declared twice (indices 1 and 2)" in err
