"""Regressions found by the adversarial campaign on the proofs package.

Every assertion is decided by an oracle independent of the code under test:
nnreduce's exact evaluator (a different implementation from the one inside
proofs), a brute-force check of THEORY's definitions, or a hand computation.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import proofs
from lumpcore import LumpkitError
from nnreduce import Dense, Network, Normalization, evaluate_exact

F = Fraction


def _dense(rows: list[list[object]], bias: list[object]) -> Dense:
    return Dense(np.array([[F(x) for x in r] for r in rows], dtype=object),
                 np.array([F(x) for x in bias], dtype=object))


def _relu_net(rows: list[list[object]], bias: list[object], out: list[list[object]],
              out_b: list[object], nrm: Normalization | None) -> Network:
    from nnreduce import Activation

    return Network((_dense(rows, bias), Activation("relu"), _dense(out, out_b)),
                   (len(rows[0]),), nrm)


def _clip_nrm(lo: int, hi: int, mean: int = 0, rng: int = 1) -> Normalization:
    return Normalization([F(mean)], [F(rng)], [F(0)], [F(1)], [F(lo)], [F(hi)])


def _value(net: Network, x: object) -> list[Fraction]:
    return list(evaluate_exact(net, [F(x)]))  # type: ignore[arg-type]


# ------------------------------------------- NNet input clipping and normalisation
def test_shared_clip_is_respected_without_a_box() -> None:
    # cores relu(x - 2) and 0 differ only for x > 2, which the clip [-1, 1] never lets in
    nrm = _clip_nrm(-1, 1)
    a = _relu_net([[1]], [-2], [[1]], [0], nrm)
    b = _relu_net([[1]], [-2], [[0]], [0], nrm)
    grid = [F(k, 4) for k in range(-400, 401)]
    assert all(_value(a, x) == _value(b, x) for x in grid)  # the oracle: equal functions
    v = proofs.check_equivalence(a, b)
    assert v.equivalent


def test_one_network_clipping_and_the_other_not_is_a_counterexample() -> None:
    # both compute x on [-1, 1]; only one clips, so they differ at x = 5 (oracle)
    clipped = Network((_dense([[1]], [0]),), (1,), _clip_nrm(-1, 1))
    plain = Network((_dense([[1]], [0]),), (1,),
                    Normalization([F(0)], [F(2)], [F(0)], [F(2)]))
    assert _value(clipped, 5) != _value(plain, 5)
    for falsify in (True, False):
        v = proofs.check_equivalence(clipped, plain, falsify=falsify)
        assert v.verdict == "counterexample" and v.input is not None and v.outputs is not None
        assert _value(clipped, v.input[0]) == list(v.outputs[0])
        assert _value(plain, v.input[0]) == list(v.outputs[1])
        assert v.outputs[0] != v.outputs[1]


def test_shared_normalisation_counterexample_is_in_the_networks_units() -> None:
    # mean 1/2, range 2, output * 3 + 1; the cores differ by relu(x) (raw x > 1/2)
    nrm = Normalization([F(1, 2)], [F(2)], [F(1)], [F(3)], [F(-5)], [F(5)])
    a = _relu_net([[1]], [0], [[1]], [0], nrm)
    b = _relu_net([[1]], [0], [[0]], [0], nrm)
    box = [(F(1), F(3))]
    for falsify in (True, False):
        v = proofs.check_equivalence(a, b, box=box, falsify=falsify)
        assert v.verdict == "counterexample" and v.input is not None and v.outputs is not None
        (x,) = v.input
        assert 1 <= x <= 3 and v.box == tuple(box)
        assert _value(a, x) == list(v.outputs[0]) == [3 * (x - F(1, 2)) / 2 + 1]
        assert _value(b, x) == list(v.outputs[1]) == [1]


@pytest.mark.parametrize("falsify", [True, False])
def test_box_outside_the_clip_interval(falsify: bool) -> None:
    # on the box [5, 6] a network clipping to [-1, 1] always sees x = 1
    nrm = _clip_nrm(-1, 1)
    a = _relu_net([[1]], [-1], [[1]], [0], nrm)  # relu(x - 1): 0 at the clip end
    same = Network((_dense([[0]], [0]),), (1,), nrm)
    moved = _relu_net([[1]], [-F(1, 2)], [[1]], [0], nrm)  # relu(x - 1/2): 1/2 there
    box = [(F(5), F(6))]
    assert all(_value(a, x) == _value(same, x) == [0] for x in (5, F(11, 2), 6))
    assert proofs.check_equivalence(a, same, box=box, falsify=falsify).equivalent
    v = proofs.check_equivalence(a, moved, box=box, falsify=falsify)
    assert v.verdict == "counterexample" and v.input is not None and v.outputs is not None
    assert 5 <= v.input[0] <= 6
    assert _value(a, v.input[0]) == list(v.outputs[0]) == [0]
    assert _value(moved, v.input[0]) == list(v.outputs[1]) == [F(1, 2)]


def test_leo_box_outside_the_clip_interval() -> None:
    nrm = _clip_nrm(-1, 1)
    net = _relu_net([[1], [-1]], [-F(1, 2), 0], [[1, 1]], [0], nrm)
    res = proofs.leo_reduce(net, [(5, 6)])
    assert res.box == ((F(5), F(6)),)
    for x in (5, F(21, 4), 6, 1, F(3, 4)):  # the box, and the clip image it comes from
        assert _value(res.network, x) == _value(net, x)


# ------------------------------------------------------- bad input: clear errors
@pytest.mark.parametrize("timeout", [float("nan"), "soon", None])
def test_check_equivalence_refuses_a_timeout_that_is_not_a_number(timeout: object) -> None:
    net = [([[1]], [0], "relu"), ([[1]], [0], "identity")]
    with pytest.raises(LumpkitError, match="timeout must be a number of seconds"):
        proofs.check_equivalence(net, net, timeout=timeout)  # type: ignore[arg-type]


def test_check_equivalence_accepts_an_infinite_timeout() -> None:
    net = [([[1]], [0], "relu"), ([[1]], [0], "identity")]
    doubled = [([[1], [1]], [0, 0], "relu"), ([["1/2", "1/2"]], [0], "identity")]
    # by hand: relu(x) = (relu(x) + relu(x)) / 2 everywhere
    assert proofs.check_equivalence(net, doubled, timeout=float("inf")).equivalent


def test_leo_refuses_a_negative_margin_that_would_accept_a_wrong_float_bound() -> None:
    # n = relu(relu(x1 - x2) - 1999/1000) is positive (1/1000) only near (1, -1)
    net = [([[1, -1]], [0], "relu"), ([[1]], [F(-1999, 1000)], "relu"),
           ([[1]], [0], "identity")]
    for margin in (-1, float("nan"), float("inf"), "x"):
        with pytest.raises(LumpkitError, match="margin must be a finite number >= 0"):
            proofs.leo_reduce(net, "-1:1", margin=margin, confirm="none")  # type: ignore[arg-type]
    for name in ("milp_time_limit", "time_limit"):
        with pytest.raises(LumpkitError, match=f"{name} must be a number of seconds"):
            proofs.leo_reduce(net, "-1:1", **{name: float("nan")})  # type: ignore[arg-type]
    res = proofs.leo_reduce(net, "-1:1", confirm="none")
    # the oracle, by hand: at (1, -1) the network outputs 2 - 1999/1000 = 1/1000
    x = [F(1), F(-1)]
    assert list(evaluate_exact(res.network, x)) == [F(1, 1000)]  # type: ignore[arg-type]


@pytest.mark.parametrize(("spec", "needle"), [
    ([0, 1], "box entry 0 must be a pair"),
    (None, "a box must be"),
    (5, "a box must be"),
    ("nan:1", "box entry 0: 'nan'"),
    ([(0, 1), (float("nan"), 1)], "box entry 1: expected a finite number"),
    ("0:1e10000", "box entry 0: a bound with about 10000 digits"),
])
def test_parse_box_errors_name_the_entry(spec: object, needle: str) -> None:
    with pytest.raises(LumpkitError, match=needle) as info:
        proofs.parse_box(spec, 2)
    assert isinstance(info.value, ValueError)


_Q = [[-2, 1, 1], [1, -2, 1], [1, 1, -2]]


@pytest.mark.parametrize(("partition", "notion", "needle"), [
    ([[0], [], [1, 2]], "ordinary", "block 1 is empty"),
    ([[0], [1.5, 2]], "ordinary", "state 1.5 is not an integer"),
    ([[0], [True, 2]], "ordinary", "is a boolean"),
    (None, "ordinary", "the partition must be"),
    (np.array([[0], [1], [1]]), "ordinary", "must be 1-D"),
    ([{"a": 1}, {"a": 1}, {"b": 2}], "ordinary", "cannot be a block label"),
    ([[0], [1, 2]], 3, "notion must be a string"),
])
def test_markov_check_refuses_malformed_partitions(partition: object, notion: object,
                                                   needle: str) -> None:
    with pytest.raises(LumpkitError, match=needle) as info:
        proofs.check_markov_lumping(_Q, partition, notion)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


def test_markov_check_reads_numpy_blocks() -> None:
    # by hand: states 1 and 2 both send 2 to {0} and -2 to {1, 2}: {0} | {1, 2} is
    # ordinarily lumpable; {0, 1} | {2} is not (states 0 and 1 send 1 and 0 to {2})
    Q = [[-2, 1, 1], [2, -2, 0], [2, 0, -2]]
    blocks_ok = [np.array([0]), np.array([1, 2])]
    blocks_bad = [np.array([0, 1]), np.array([2])]
    assert proofs.check_markov_lumping(Q, blocks_ok, "ordinary").valid
    assert not proofs.check_markov_lumping(Q, blocks_bad, "ordinary").valid


def test_cli_box_file_that_is_not_text_is_a_clear_error(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    from lumpkit._cli import main
    from nnreduce import save_network

    net = _relu_net([[1, 0]], [0], [[1]], [0], None)
    save_network(net, tmp_path / "a.npz")
    (tmp_path / "box.bin").write_bytes(b"\xff\xfe\x00\x81")
    (tmp_path / "bom.txt").write_text("\ufeff0 1\n0 1\n", encoding="utf-8")
    a = str(tmp_path / "a.npz")
    assert main(["nn", "verify", a, a, "--box-file", str(tmp_path / "box.bin")]) == 2
    assert "not a text file" in capsys.readouterr().err
    assert main(["nn", "leo", a, "--box-file", str(tmp_path / "box.bin")]) == 2
    assert "not a text file" in capsys.readouterr().err
    assert main(["nn", "verify", a, a, "--box-file", str(tmp_path / "bom.txt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["box"] == [["0", "1"], ["0", "1"]]
    with pytest.raises(SystemExit) as info:  # a usage error, as argparse reports them
        main(["nn", "verify", a, a, "--timeout", "nan"])
    assert info.value.code == 2
    assert "time limit must be > 0 seconds, got 'nan'" in capsys.readouterr().err
