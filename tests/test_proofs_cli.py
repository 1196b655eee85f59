"""``lumpkit nn verify`` and ``lumpkit nn leo``: exit statuses, JSON, files."""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import proofs
from lumpcore import LumpkitError
from nnreduce import load_network, reduce_network, save_network


def run(argv: list[str]) -> int:
    """The ``nn`` group as lumpkit/_cli.py wires it (same error handling)."""
    from lumpkit import _cmd_nn

    parser = argparse.ArgumentParser(prog="lumpkit")
    sub = parser.add_subparsers(dest="command", required=True)
    _cmd_nn.register(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (LumpkitError, FileNotFoundError) as exc:
        print(f"lumpkit: error: {exc}", file=sys.stderr)
        return 2


@pytest.fixture
def models(tmp_path: Path) -> dict[str, str]:
    ex = proofs.erratum_example()
    red = reduce_network(ex.original)
    paths = {name: str(tmp_path / f"{name}.npz") for name in ("orig", "paper", "lumpkit")}
    save_network(ex.original, paths["orig"])
    save_network(ex.reduced, paths["paper"])
    save_network(red.network, paths["lumpkit"])
    cert = tmp_path / "cert.json"
    cert.write_text(json.dumps(red.certificate))
    paths["cert"] = str(cert)
    return paths


def test_verify_equivalent_exit_0_json(models: dict, capsys: pytest.CaptureFixture) -> None:
    assert run(["nn", "verify", models["orig"], models["lumpkit"], "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "equivalent" and out["method"].startswith("z3")
    assert out["seconds"] >= 0


def test_verify_counterexample_exit_1_with_validated_outputs(
        models: dict, capsys: pytest.CaptureFixture) -> None:
    assert run(["nn", "verify", models["orig"], models["paper"], "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "counterexample"
    (x,) = (Fraction(v) for v in out["input"])
    # by hand: original -ReLU(x), the unsound reduction 0
    assert out["outputs"]["original"] == [str(-x if x > 0 else 0)]
    assert out["outputs"]["reduced"] == ["0"]


def test_verify_with_certificate(models: dict, capsys: pytest.CaptureFixture) -> None:
    assert run(["nn", "verify", models["orig"], models["lumpkit"],
                "--certificate", models["cert"], "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "equivalent" and out["method"] == "certificate"
    assert out["certificate"]["verdict"] == "valid"
    # a certificate for another network is rejected, with the condition named: exit 2
    assert run(["nn", "verify", models["orig"], models["paper"],
                "--certificate", models["cert"], "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "unknown"
    assert out["certificate"]["condition"] == "reduced network hash"


def test_tampered_certificate_rejected_on_the_command_line(
        models: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cert = json.loads(Path(models["cert"]).read_text())
    layer = next(entry for entry in cert["layers"] if any(len(b) > 1 for b in entry["blocks"]))
    block = next(k for k, b in enumerate(layer["blocks"]) if len(b) > 1)
    layer["rho"][block][1] = "7"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(cert))
    assert run(["nn", "verify", models["orig"], models["lumpkit"], "--certificate",
                str(bad)]) == 2
    assert "scaled lumping condition" in capsys.readouterr().out


def test_verify_box_smtlib_and_bad_input(models: dict, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    smt = tmp_path / "q.smt2"
    # on x <= 0 both networks output 0: the unsound reduction is exact there
    assert run(["nn", "verify", models["orig"], models["paper"], "--box=-5:0",
                "--smtlib", str(smt)]) == 0
    assert "(check-sat)" in smt.read_text()
    # the usual spelling, a negative lower bound after a space, through lumpkit's main
    from lumpkit._cli import main

    assert main(["nn", "verify", models["orig"], models["paper"], "--box", "-5:0"]) == 0
    assert main(["nn", "verify", models["orig"], models["paper"], "--box", "-1/2:3"]) == 1
    boxfile = tmp_path / "box.txt"
    boxfile.write_text("# lo hi\n1/2 3\n")
    assert run(["nn", "verify", models["orig"], models["paper"], "--box-file",
                str(boxfile)]) == 1
    capsys.readouterr()
    assert run(["nn", "verify", models["orig"], models["paper"], "--box", "0:1,0:1"]) == 2
    assert "intervals" in capsys.readouterr().err
    assert run(["nn", "verify", models["orig"], str(tmp_path / "missing.npz")]) == 2


def test_verify_unknown_exit_2(models: dict, capsys: pytest.CaptureFixture) -> None:
    assert run(["nn", "verify", models["orig"], models["paper"], "--timeout", "1e-9",
                "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["verdict"] == "unknown"


# (builder, nn reduce --tolerance, exit status and verdict of nn verify --certificate)
CERT_CASES = {
    "tolerance, nothing merged": ("unrelated", "1e-6", 0),
    "tolerance, exactly proportional": ("planted", "1e-6", 0),
    "tolerance, nearly proportional (weights)": ("near_weights", "1e-6", 2),
    "tolerance, nearly proportional (bias)": ("near_bias", "1e-6", 2),
    "exact": ("planted", "0", 0),
    "exact, rounded weights": ("rounded", "0", 2),
}


def _cert_case_net(name: str) -> Any:
    from test_proofs_certificate import dyadic_planted_mlp, unrelated_mlp

    return {"unrelated": unrelated_mlp, "planted": dyadic_planted_mlp,
            "near_weights": lambda: dyadic_planted_mlp(perturb=1e-9),
            "near_bias": lambda: dyadic_planted_mlp(perturb=1e-9, part="bias"),
            "rounded": lambda: dyadic_planted_mlp(outgoing="normal")}[name]()


@pytest.mark.parametrize("case", list(CERT_CASES))
def test_verify_certificate_says_equivalent_exactly_when_the_check_is_exact(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A valid certificate gives "equivalent" when the checker finds the reduction exact,
    whatever the certificate's mode; else "unknown" (exit 2). Oracle for "equivalent":
    exact evaluation of both networks on 20 random rational inputs."""
    from test_proofs_certificate import outputs_equal, rational_inputs

    builder, tol, status = CERT_CASES[case]
    net = _cert_case_net(builder)
    orig, red, cert = (str(tmp_path / f) for f in ("net.npz", "red.npz", "cert.json"))
    save_network(net, orig)
    assert run(["nn", "reduce", orig, "-o", red, "--certificate", cert,
                "--tolerance", tol]) == 0
    mode = json.loads(Path(cert).read_text())["mode"]
    assert mode == ("exact" if tol == "0" else "tolerance")
    capsys.readouterr()
    assert run(["nn", "verify", orig, red, "--certificate", cert]) == status
    text = capsys.readouterr().out
    assert run(["nn", "verify", orig, red, "--certificate", cert, "--json"]) == status
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "certificate" and out["certificate"]["verdict"] == "valid"
    assert out["certificate"]["exact"] is (status == 0)
    same = outputs_equal(net, load_network(red), rational_inputs(7, 3))
    if status == 0:
        assert text.startswith("equivalent (certificate): valid")
        assert out["verdict"] == "equivalent"
        assert all(same)
    else:
        assert text.startswith("unknown: the certificate is valid but the reduction is only "
                               "approximate") and "use --smt" in text
        assert out["verdict"] == "unknown" and "use --smt" in out["reason"]
        assert not all(same)  # these reductions do change the function


def test_leo_writes_model_and_json(models: dict, tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "leo.npz"
    assert run(["nn", "leo", models["orig"], "--box", "0:2", "-o", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["neurons_before"] == 4 and info["neurons_after"] == 0
    reduced = load_network(out)
    v = proofs.check_equivalence(load_network(models["orig"]), reduced, box="0:2")
    assert v.equivalent
    assert run(["nn", "leo", models["orig"], "--box=-1:1", "--lump"]) == 0
    assert "lumping" in capsys.readouterr().out


def test_leo_onnx_output_keeps_the_models_interface(tmp_path: Path) -> None:
    """The network LEO writes takes the original's input name and type (float32 here), so
    that it replaces it on the box."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    w1 = np.array([[1, 1], [-1, -1], [1, -1]], np.float32)  # neuron 1 dead on [0, 1]^2
    b1 = np.array([0, -0.5, 0], np.float32)
    w2 = np.array([[1, 2, -1]], np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["obs", "w1", "b1"], ["h"], transB=1),
         helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Gemm", ["r", "w2"], ["logits"], transB=1)], "g",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["n", 2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 1])],
        [numpy_helper.from_array(a, k) for k, a in (("w1", w1), ("b1", b1), ("w2", w2))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    src, out = tmp_path / "m.onnx", tmp_path / "leo.onnx"
    onnx.save(model, str(src))
    assert run(["nn", "leo", str(src), "--box", "0:1", "-o", str(out)]) == 0
    written = onnx.load(str(out))
    assert [i.name for i in written.graph.input] == ["obs"]
    assert [o.name for o in written.graph.output] == ["logits"]
    assert written.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    x = (np.random.default_rng(0).integers(0, 9, size=(20, 2)) / 8.0).astype(np.float32)
    want = ort.InferenceSession(str(src)).run(["logits"], {"obs": x})[0]
    assert np.array_equal(ort.InferenceSession(str(out)).run(["logits"], {"obs": x})[0], want)
