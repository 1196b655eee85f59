"""A reduced float32 model stays a drop-in replacement: float32 in, float32 out.

Merged weights are sums that float32 often cannot hold, so ``lumpkit nn reduce``
writes them as float64 to stay exact; the model's input and output keep the
original's float32 type (Casts around the layers in ONNX, lumpkit's cast
modules in PyTorch).  Oracles: onnxruntime and torch run the original and
the reduced files on the same float32 data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lumpcore import UnsupportedLayerError
from lumpkit._cli import main
from nnreduce import Activation, Dense, Network, load_network, reduce_network, save_network

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from nn_helpers import save_onnx_graph  # noqa: E402


def _planted_float32() -> Network:
    """5 -> 8 -> 8 -> 3 ReLU, float32; hidden neuron 7 = 2 x neuron 2 in both layers, so
    the next layer's merged columns are float32 sums (not float32 values in general)."""
    rng = np.random.default_rng(21)
    layers: list[Any] = []
    n_in = 5
    for _ in range(2):
        w = rng.standard_normal((8, n_in)).astype(np.float32)
        b = rng.standard_normal(8).astype(np.float32)
        w[7], b[7] = 2 * w[2], 2 * b[2]
        layers += [Dense(w, b), Activation("relu")]
        n_in = 8
    layers.append(Dense(rng.standard_normal((3, 8)).astype(np.float32),
                        rng.standard_normal(3).astype(np.float32)))
    return Network(tuple(layers), (5,))


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(float)"
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert y.dtype == np.float32
    return np.asarray(y)


@pytest.mark.parametrize("suffix", [".onnx", ".pt", ".pt-script"])
def test_reduced_float32_model_takes_and_gives_float32(tmp_path: Path, suffix: str,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    net = _planted_float32()
    script = suffix == ".pt-script"
    ext = ".pt" if script else suffix
    src, dst = tmp_path / f"m{ext}", tmp_path / f"m.small{ext}"
    save_network(net, src, dtype="float32", torchscript=script)
    assert main(["nn", "reduce", str(src), "-o", str(dst), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["neurons_after"] == 14 and out["rounded"] is False
    x = np.random.default_rng(3).standard_normal((16, 5)).astype(np.float32)
    if ext == ".onnx":
        want, got = _run_onnx(src, x), _run_onnx(dst, x)
        kinds = [n.op_type for n in onnx.load(str(dst)).graph.node]
        assert kinds[0] == "Cast" and kinds[-1] == "Cast"  # float64 weights inside
    else:
        def load(p: Path) -> Any:
            return torch.jit.load(str(p)) if script else torch.load(str(p), weights_only=False)

        small = load(dst)
        assert {p.dtype for p in small.parameters()} == {torch.float64}  # float64 weights inside
        with torch.no_grad():
            want = load(src)(torch.tensor(x)).numpy()
            got_t = small(torch.tensor(x))
        assert got_t.dtype == torch.float32
        got = got_t.numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # read back, the reduced model holds the exact float64 weights of the reduction
    back = load_network(dst)
    red = reduce_network(net).network
    for a, b in zip(back.layers, red.layers, strict=True):
        if isinstance(a, Dense):
            assert isinstance(b, Dense)
            assert np.array_equal(np.asarray(a.weight, dtype=np.float64),
                                  np.asarray(b.weight, dtype=np.float64))


def test_casts_that_round_inside_the_network_are_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.eye(3, dtype=np.float64), "w")

    def model(casts: list[int], name: str) -> Path:
        nodes, cur = [], "x"
        for k, to in enumerate(casts):
            nodes.append(helper.make_node("Cast", [cur], [f"c{k}"], to=to))
            cur = f"c{k}"
        nodes.append(helper.make_node("MatMul", [cur, "w"], ["y"]))
        return save_onnx_graph(tmp_path / name, nodes, [None, 3], [None, 3], [w], double=True)

    # double -> float -> double inside: a rounding of the data, refused by name
    with pytest.raises(UnsupportedLayerError, match=r"node 0 \(Cast.*narrower"):
        load_network(model([TensorProto.FLOAT, TensorProto.DOUBLE], "round.onnx"))
    # a cast to the type the data already has is nothing
    net = load_network(model([TensorProto.DOUBLE], "same.onnx"))
    assert isinstance(net.layers[0], Dense)
