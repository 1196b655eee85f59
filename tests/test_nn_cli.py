"""``lumpkit nn reduce``: files written, summary printed, exports run by their frameworks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lumpkit._cli import main
from nnreduce import Activation, Dense, Network, evaluate, load_network, save_network

ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

DATA = Path(__file__).parent / "data" / "nn"


def _run(argv: list[str]) -> int:
    """Run ``lumpkit nn ARGV`` in-process through the real entry point."""
    return main(["nn", *argv])


def test_reduce_shipped_acasxu_onnx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "acas.onnx"
    shutil.copy(DATA / "acasxu/ACASXU_experimental_v2a_1_1.onnx", model)
    assert _run(["reduce", str(model), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("neurons_before", "neurons_after", "params_before", "params_after", "layers",
                "seconds"):
        assert key in out
    assert out["neurons_before"] == out["neurons_after"] == 300  # trained: nothing merges
    assert all({"before", "after"} <= set(lr) for lr in out["layers"])
    reduced = tmp_path / "acas.reduced.onnx"
    cert = json.loads((tmp_path / "acas.reduced.certificate.json").read_text())
    assert cert["format"] == "lumpkit-nn-certificate"
    sess = ort.InferenceSession(str(reduced), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, size=(1, 1, 1, 5)).astype(np.float32)
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(y.reshape(-1), evaluate(load_network(model), x)[0], rtol=1e-5)


def _twin(tmp_path: Path) -> tuple[Network, Path]:
    # with its NNet normalisation (written to .pt as lumpkit's normalisation module)
    return load_network(DATA / "twin/twin_ladder-5_inp-4_layers-10_width-1_margin.nnet"), tmp_path


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("script", [False, True])
def test_reduce_pytorch_model(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              script: bool) -> None:
    net, _ = _twin(tmp_path)
    model = tmp_path / "twin.pt"
    save_network(net, model, torchscript=script, dtype="float64")
    out_path = tmp_path / "small.pt"
    cert_path = tmp_path / "c.json"
    assert _run(["reduce", str(model), "-o", str(out_path), "--certificate", str(cert_path)]) == 0
    text = capsys.readouterr().out
    assert "hidden neurons: 60 -> 30" in text and "parameters:" in text
    assert cert_path.exists()
    module = (torch.jit.load(str(out_path)) if script
              else torch.load(str(out_path), weights_only=False))
    assert isinstance(module, torch.jit.ScriptModule) == script
    x = np.random.default_rng(1).uniform(-3, 3, size=(8, 5))
    with torch.no_grad():
        y = module(torch.tensor(x)).numpy()
    np.testing.assert_allclose(y, evaluate(net, x), rtol=1e-10, atol=1e-12)


def test_reduce_planted_npz_with_tolerance(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 4))
    w = np.vstack([w, 3.0 * w[1] * (1 + 1e-10)])
    b = np.append(rng.normal(size=3), 0.0)
    b[1] = 0.0
    net = Network((Dense(w, b), Activation("relu"), Dense(rng.normal(size=(2, 4)), [0.0, 1.0])),
                  (4,))
    model = tmp_path / "p.npz"
    save_network(net, model)
    assert _run(["reduce", str(model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["neurons_after"] == 4
    assert _run(["reduce", str(model), "--json", "--tolerance", "1e-6"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["neurons_after"] == 3 and 0 < out["max_weight_deviation"] < 1e-6
    red = load_network(tmp_path / "p.reduced.npz")
    x = rng.normal(size=(20, 4))
    np.testing.assert_allclose(evaluate(red, x), evaluate(net, x), atol=1e-7)


def test_errors_are_reported_not_raised(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "m.h5"
    bad.write_text("x")
    assert _run(["reduce", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lumpkit: error:") and "unknown model format" in err
    model = tmp_path / "a.nnet"
    shutil.copy(DATA / "twin/twin_ladder-5_inp-2_layers-5_width-1_margin.nnet", model)
    assert _run(["reduce", str(model), "-o", str(tmp_path / "a.onnx")]) == 2
    assert "same format" in capsys.readouterr().err
    assert not (tmp_path / "a.onnx").exists()


def test_linear_dependence_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = np.array([[1.0, 2.0], [0.0, 1.0], [1.0, 4.0]])  # row 2 = row 0 + 2 * row 1
    net = Network((Dense(w, [1.0, 0.5, 2.0]), Activation("identity"),
                   Dense(np.ones((1, 3)), [0.0])), (2,))
    save_network(net, tmp_path / "lin.npz")
    assert _run(["reduce", str(tmp_path / "lin.npz"), "--json", "--no-linear-dependence"]) == 0
    assert json.loads(capsys.readouterr().out)["neurons_after"] == 3
    for flag in ([], ["--linear-dependence"]):  # the default searches small linear layers
        assert _run(["reduce", str(tmp_path / "lin.npz"), "--json", *flag]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["neurons_after"] == 2 and out["layers"][0]["combined"] == 1
    assert _run(["reduce", str(tmp_path / "lin.npz")]) == 0
    assert "0; 1 combined" in capsys.readouterr().out
    x = np.random.default_rng(3).normal(size=(5, 2))
    np.testing.assert_allclose(evaluate(load_network(tmp_path / "lin.reduced.npz"), x),
                               evaluate(net, x), rtol=1e-12)


def test_other_warnings_are_shown_once_and_the_command_ends(tmp_path: Path) -> None:
    """A warning that is not lumpkit's, raised during a command, is shown as Python shows it
    after the command; showing it inside the recording used to record it again, forever."""
    import subprocess
    import sys

    net = Network((Dense(np.array([[1.0, 2.0], [2.0, 4.0]]), np.zeros(2)), Activation("relu"),
                   Dense(np.ones((1, 2)), np.zeros(1))), (2,))
    save_network(net, tmp_path / "m.npz")
    script = (
        "import warnings, nnreduce\n"
        "from lumpkit._cli import main\n"
        "orig = nnreduce.save_certificate\n"
        "def noisy(*a, **k):\n"
        "    warnings.warn('a third-party warning', UserWarning)\n"
        "    return orig(*a, **k)\n"
        "nnreduce.save_certificate = noisy\n"
        f"raise SystemExit(main(['nn', 'reduce', {str(tmp_path / 'm.npz')!r}]))\n")
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("a third-party warning") == 1
    assert (tmp_path / "m.reduced.npz").exists()


def test_a_layer_of_constant_neurons_keeps_one(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """All neurons of a hidden layer dead: one stays as a placeholder (a layer of width 0 is
    no model the formats hold); the reduced ONNX reads back and its certificate is valid."""
    from proofs import check_certificate

    net = Network((Dense(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), np.zeros(2, np.float32)),
                   Activation("relu"),
                   Dense(np.zeros((2, 2), np.float32), np.array([-1.0, 0.0], np.float32)),
                   Activation("relu"),
                   Dense(np.ones((1, 2), np.float32), np.zeros(1, np.float32))), (2,))
    src, dst = tmp_path / "m.onnx", tmp_path / "r.onnx"
    save_network(net, src)
    assert main(["nn", "reduce", str(src), "-o", str(dst)]) == 0
    out = capsys.readouterr().out
    assert "2 (all constant: one placeholder kept)" in out
    # the first layer feeds only zero weights: nothing reads it, so it keeps one as well
    assert "0 (all removed: one placeholder kept); 2 unused" in out
    back = load_network(dst)
    assert [lyr.weight.shape[0] for lyr in back.layers if isinstance(lyr, Dense)] == [1, 1, 1]
    cert = json.loads((tmp_path / "r.certificate.json").read_text())
    assert check_certificate(load_network(src), back, cert).valid
    x = np.array([[0.5, -1.0], [2.0, 3.0]])
    np.testing.assert_array_equal(evaluate(back, x), evaluate(net, x))
