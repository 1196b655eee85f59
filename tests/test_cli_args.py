"""What docs/cli.md promises for bad arguments, checked on every command.

* A usage error is one line on standard error, ``lumpkit: error: ...``, exit
  status 2 (no usage block, no traceback).
* A command that writes files checks the targets before the work (which can
  take minutes), and leaves nothing behind when it fails.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from lumpkit._cli import COMPILE_NOTICE, main
from nnreduce import Activation, Dense, Network, save_network


def _model(tmp_path: Path) -> Path:
    """A 2-3-1 ReLU network whose third hidden neuron is twice the first."""
    w1 = np.array([[1, -1], [Fraction(1, 2), 3], [2, -2]], dtype=object)
    b1 = np.array([Fraction(1, 4), -1, Fraction(1, 2)], dtype=object)
    w2 = np.array([[1, -1, 3]], dtype=object)
    net = Network((Dense(w1, b1), Activation("relu"),
                   Dense(w2, np.array([0], dtype=object))), (2,))
    path = tmp_path / "m.npz"
    save_network(net, path)
    return path


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    # (with numba's cache empty, the run also says it compiles: an intended line)
    lines = [x for x in captured.err.splitlines() if x != COMPILE_NOTICE]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("lumpkit: error: "), lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[0]


@pytest.mark.parametrize(("argv", "named"), [
    ([], "COMMAND"),
    (["frob"], "frob"),
    (["nn"], "SUBCOMMAND"),
    (["ctmc", "lump"], "MODEL"),
    (["ctmc", "lump", "m.tra", "--kind", "weak"], "--kind"),
    (["nn", "reduce", "m.npz", "--dtype", "float16"], "--dtype"),
    (["nn", "verify", "a.npz", "b.npz", "--timeout", "-1"], "--timeout"),
    (["nn", "verify", "a.npz", "b.npz", "--timeout", "soon"], "--timeout"),
    (["nn", "leo", "m.npz", "--milp-time-limit", "0"], "--milp-time-limit"),
    (["nn", "leo", "m.npz", "--time-limit", "nan"], "--time-limit"),
    (["nn", "leo", "m.npz", "--box", "0:1", "--box-file", "b.txt"], "--box"),
])
def test_usage_errors_are_one_line_with_status_2(
        argv: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    line = _one_line_error(capsys)
    assert named in line and "--help" in line


def test_help_still_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["nn", "leo", "--help"])
    assert info.value.code == 0
    assert "--milp-time-limit" in capsys.readouterr().out


def _never(*args: object, **kwargs: object) -> None:
    raise AssertionError("the command started its work before checking its outputs")


@pytest.mark.parametrize("option", ["-o", "--certificate"])
def test_reduce_checks_outputs_before_reducing(
        option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import nnreduce

    model = _model(tmp_path)
    monkeypatch.setattr(nnreduce, "reduce_network", _never)
    target = tmp_path / "no" / ("r.npz" if option == "-o" else "c.json")
    assert main(["nn", "reduce", str(model), option, str(target)]) == 2
    assert "does not exist" in _one_line_error(capsys)
    folder = tmp_path / "d.npz"
    folder.mkdir()
    assert main(["nn", "reduce", str(model), option, str(folder)]) == 2
    assert "is a directory" in _one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz", "m.npz"]
    assert not any(folder.iterdir())


def test_reduce_refuses_a_directory_as_model(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nn", "reduce", str(tmp_path)]) == 2
    assert "is a directory" in _one_line_error(capsys)


def test_reduce_leaves_no_model_without_its_certificate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import nnreduce

    model = _model(tmp_path)

    def fail(*args: object, **kwargs: object) -> None:
        raise PermissionError("certificate: permission denied")

    monkeypatch.setattr(nnreduce, "save_certificate", fail)
    assert main(["nn", "reduce", str(model)]) == 2
    assert "permission denied" in _one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_reduce_writes_model_and_certificate(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # the same command without the failure: both files, and the planted merge
    model = _model(tmp_path)
    assert main(["nn", "reduce", str(model)]) == 0
    assert "hidden neurons: 3 -> 2" in capsys.readouterr().out
    assert {p.name for p in tmp_path.iterdir()} == {
        "m.npz", "m.reduced.npz", "m.reduced.certificate.json"}


@pytest.mark.parametrize(("name", "message"), [
    ("out.txt", "unknown model format"),
    ("no/out.npz", "does not exist"),
])
def test_leo_checks_its_output_before_solving(
        name: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import proofs

    model = _model(tmp_path)
    monkeypatch.setattr(proofs, "leo_reduce", _never)
    assert main(["nn", "leo", str(model), "--box", "0:1", "-o", str(tmp_path / name)]) == 2
    assert message in _one_line_error(capsys)


def test_verify_checks_smtlib_before_solving(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import proofs

    model = _model(tmp_path)
    monkeypatch.setattr(proofs, "check_equivalence", _never)
    argv = ["nn", "verify", str(model), str(model), "--smtlib", str(tmp_path / "no" / "q.smt2")]
    assert main(argv) == 2
    assert "does not exist" in _one_line_error(capsys)


def _float32_planted(tmp_path: Path) -> Path:
    """A float32 ONNX MLP whose hidden neuron 3 is twice neuron 0: the merged
    outgoing weights are sums that float32 cannot hold."""
    pytest.importorskip("onnx")
    rng = np.random.default_rng(3)
    w1 = rng.normal(size=(4, 3)).astype(np.float32)
    b1 = rng.normal(size=4).astype(np.float32)
    w1[3], b1[3] = 2 * w1[0], 2 * b1[0]
    w2 = rng.normal(size=(2, 4)).astype(np.float32)
    net = Network((Dense(w1, b1), Activation("relu"),
                   Dense(w2, rng.normal(size=2).astype(np.float32))), (3,))
    path = tmp_path / "p.onnx"
    save_network(net, path)
    return path


@pytest.mark.parametrize("dtype", ["auto", "float32"])
def test_reduce_dtype_float32_warns_that_the_file_is_not_certified(
        dtype: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nnreduce import load_network
    from proofs import check_certificate

    model = _float32_planted(tmp_path)
    assert main(["nn", "reduce", str(model), "--dtype", dtype]) == 0
    err = capsys.readouterr().err
    reduced = load_network(tmp_path / "p.reduced.onnx")
    assert reduced.layers[0].weight.shape == (3, 3)
    valid = check_certificate(load_network(model), reduced,
                              tmp_path / "p.reduced.certificate.json").valid
    # the warning is there exactly when the written file fails its own certificate
    assert valid == (dtype == "auto")
    assert ("lumpkit: warning:" in err and "rejects it" in err) == (not valid)


@pytest.mark.parametrize("planted", [True, False])
def test_verify_text_reports_the_second_opinion(
        planted: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("cvc5")
    from nnreduce import load_network, reduce_network

    model = _model(tmp_path)
    other = tmp_path / "other.npz"
    net = load_network(model)
    if planted:  # the reduction: equivalent
        save_network(reduce_network(net).network, other)
    else:  # the output negated: a counterexample
        w, b = net.layers[2].weight, net.layers[2].bias
        save_network(Network((*net.layers[:2], Dense(-w, -b)), net.input_shape), other)
    status = main(["nn", "verify", str(model), str(other), "--second-opinion", "cvc5"])
    out = capsys.readouterr().out
    assert status == (0 if planted else 1)
    assert f"cvc5 answered {'unsat' if planted else 'sat'} too" in out.splitlines()[0]
