"""Half-precision (float16, bfloat16) models: read exactly, reduced, and written back with
the same input and output type, so that the reduced model is a drop-in replacement.

Oracles: onnxruntime and PyTorch run the original and the reduced model on the
same half-precision inputs; lumpkit's exact evaluation of the original network
(its weights are float16 values, exactly float32 ones); the certificate checker.
The planted duplicate neuron (twice another one) fixes the expected counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lumpcore import ModelFormatError
from lumpkit._cli import main
from nnreduce import Activation, Dense, Network, evaluate_exact, load_network, save_network

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _weights(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """A 3-5-2 ReLU network, neuron 4 twice neuron 0 (exact in every float type: k / 8)."""
    w1 = rng.integers(-8, 9, size=(5, 3)) / 8.0
    b1 = rng.integers(-8, 9, size=5) / 8.0
    w1[4], b1[4] = 2 * w1[0], 2 * b1[0]
    w2 = rng.integers(-8, 9, size=(2, 5)) / 8.0
    b2 = rng.integers(-8, 9, size=2) / 8.0
    return w1, b1, w2, b2


def _onnx_model(path: Path, code: int, rng: np.random.Generator) -> None:
    from onnx import helper, numpy_helper

    w1, b1, w2, b2 = _weights(rng)
    np_dt = {onnx.TensorProto.FLOAT16: np.float16, onnx.TensorProto.BFLOAT16: None}[code]

    def init(a: np.ndarray, name: str) -> Any:
        if np_dt is not None:
            return numpy_helper.from_array(a.astype(np_dt), name)
        # bfloat16: the upper 16 bits of the float32 pattern (exact for k / 8)
        bits = (a.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
        return helper.make_tensor(name, code, a.shape, bits.tobytes(), raw=True)

    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "half", [helper.make_tensor_value_info("x", code, ["N", 3])],
        [helper.make_tensor_value_info("y", code, ["N", 2])],
        [init(w1, "w1"), init(b1, "b1"), init(w2, "w2"), init(b2, "b2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _io_types(path: Path) -> tuple[int, int]:
    g = onnx.load(str(path)).graph
    return g.input[0].type.tensor_type.elem_type, g.output[0].type.tensor_type.elem_type


def _reduced(tmp_path: Path, code: int, rng: np.random.Generator) -> tuple[Any, Path, Path]:
    """Write a half-precision model, reduce it with the CLI, check both interfaces; the
    original network and both paths."""
    dtype = "float16" if code == onnx.TensorProto.FLOAT16 else "bfloat16"
    src, out = tmp_path / "h.onnx", tmp_path / "h.reduced.onnx"
    _onnx_model(src, code, rng)
    net = load_network(src)
    assert net.data_dtype == dtype
    assert main(["nn", "reduce", str(src)]) == 0
    assert _io_types(out) == (code, code)
    red = load_network(out)
    assert red.data_dtype == dtype and red.layers[0].weight.shape == (4, 3)
    return net, src, out


def test_float16_onnx_model_reduced_with_its_interface(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    net, src, out = _reduced(tmp_path, onnx.TensorProto.FLOAT16, rng)
    x = (rng.integers(-16, 17, size=(32, 3)) / 8.0).astype(np.float16)
    before = ort.InferenceSession(str(src)).run(None, {"x": x})[0]
    after = ort.InferenceSession(str(out)).run(["y"], {"x": x})[0]  # the same names
    assert before.dtype == after.dtype == np.float16
    # every value here is a short dyadic: float16 arithmetic is exact, and so is the oracle
    exact = np.array(evaluate_exact(net, x.astype(np.float64)), dtype=np.float64)
    assert np.array_equal(before.astype(np.float64), exact)
    assert np.array_equal(after.astype(np.float64), exact)
    cert = tmp_path / "h.reduced.certificate.json"
    assert main(["nn", "verify", str(src), str(out), "--certificate", str(cert)]) == 0


def test_bfloat16_onnx_model_keeps_its_interface(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    net, _, out = _reduced(tmp_path, onnx.TensorProto.BFLOAT16, rng)
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops[0] == ops[-1] == "Cast"  # bfloat16 -> float32 layers -> bfloat16
    red = load_network(out)
    x = rng.integers(-16, 17, size=(16, 3)) / 8.0
    assert np.array_equal(evaluate_exact(red, x), evaluate_exact(net, x))


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("script", [False, True])
def test_half_pytorch_model_reduced_with_its_interface(tmp_path: Path, dtype: str,
                                                       script: bool) -> None:
    tdt = getattr(torch, dtype)
    w1, b1, w2, b2 = _weights(np.random.default_rng(5))
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    with torch.no_grad():
        for p, v in zip(model.parameters(), (w1, b1, w2, b2), strict=True):
            p.copy_(torch.tensor(v))
    model = model.to(tdt).eval()
    src = tmp_path / "m.pt"
    if script:
        torch.jit.save(torch.jit.script(model), str(src))
    else:
        torch.save(model, str(src))
    assert load_network(src).data_dtype == dtype
    assert main(["nn", "reduce", str(src)]) == 0
    out = tmp_path / "m.reduced.pt"
    red = torch.jit.load(str(out)) if script else torch.load(str(out), weights_only=False)
    x = torch.tensor(np.random.default_rng(6).integers(-16, 17, size=(32, 3)) / 8.0).to(tdt)
    with torch.no_grad():
        before, after = model(x), red(x)
    assert after.dtype == tdt
    assert torch.equal(before, after)  # short dyadics: both arithmetics exact
    again = load_network(out)
    assert again.data_dtype == dtype and again.layers[0].weight.shape == (4, 3)
    # reducing the reduced model (read back through lumpkit's cast modules) changes nothing
    assert main(["nn", "reduce", str(out), "-o", str(tmp_path / "again.pt")]) == 0
    twice = (torch.jit.load if script else lambda p: torch.load(p, weights_only=False))(
        str(tmp_path / "again.pt"))
    with torch.no_grad():
        assert torch.equal(twice(x), before)


def test_io_dtype_is_checked() -> None:
    net = Network((Dense(np.eye(2), np.zeros(2)), Activation("relu")), (2,))
    with pytest.raises(ModelFormatError, match="io_dtype must be one of 'float16'"):
        save_network(net, "never-written.onnx", io_dtype="int8")
    with pytest.raises(ModelFormatError, match="data_dtype must be one of"):
        Network(net.layers, (2,), None, "float8")
