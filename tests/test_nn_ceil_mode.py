"""Pooling with ``ceil_mode``: read where the windows fit exactly (it changes nothing),
refused with the layer named where it would add a partial window.

Oracles: PyTorch and onnxruntime run the same model (dyadic weights and inputs:
the float computations are exact, so the outputs must agree exactly).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lumpcore import UnsupportedLayerError
from nnreduce import evaluate, from_torch, load_network, reduce_network

torch = pytest.importorskip("torch")
nn = torch.nn


def _dyadic(module: Any, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.tensor(rng.integers(-8, 9, size=tuple(p.shape)) / 8.0))
    return module.double().eval()


def _cnn(pool: Any, side: int) -> Any:
    """conv (4 channels, channel 3 = 2 x channel 0) -> relu -> pool -> flatten -> linear."""
    conv = nn.Conv2d(1, 4, 3, padding=1)
    out = side // 2 + (side % 2 and getattr(pool, "ceil_mode", False))
    model = _dyadic(nn.Sequential(conv, nn.ReLU(), pool, nn.Flatten(),
                                  nn.Linear(4 * out * out, 2)), 1)
    with torch.no_grad():
        conv.weight[3] = 2 * conv.weight[0]
        conv.bias[3] = 2 * conv.bias[0]
    return model


def _x(side: int) -> Any:
    return torch.tensor(np.random.default_rng(2).integers(-8, 9, size=(5, 1, side, side)) / 4.0)


@pytest.mark.parametrize("pool", [nn.MaxPool2d(2, ceil_mode=True),
                                  nn.AvgPool2d(2, ceil_mode=True)])
def test_pytorch_ceil_mode_where_windows_fit(pool: Any) -> None:
    model = _cnn(pool, 8)
    net = from_torch(model, (1, 8, 8))
    x = _x(8)
    with torch.no_grad():
        want = model(x).numpy()
    assert np.array_equal(evaluate(net, x.numpy()), want)
    red = reduce_network(net)
    assert red.layers[0].neurons_after == 3
    assert np.array_equal(evaluate(red.network, x.numpy()), want)


def test_pytorch_ceil_mode_with_a_partial_window_is_refused() -> None:
    model = _cnn(nn.MaxPool2d(2, ceil_mode=True), 7)
    with torch.no_grad():
        model(_x(7))  # torch runs it: a 4x4 output from 7x7
    with pytest.raises(UnsupportedLayerError, match=r"module 2 .*ceil_mode adds a partial window "
                                                    r"on the 7x7 input"):
        from_torch(model, (1, 7, 7))


def test_functional_ceil_mode_through_fx() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.fc = nn.Linear(2 * 4 * 4, 2)

        def forward(self, x: Any) -> Any:
            x = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2, ceil_mode=True)
            return self.fc(torch.flatten(x, 1))

    model = _dyadic(Net(), 3)
    net = from_torch(model, (1, 8, 8))
    x = _x(8)
    with torch.no_grad():
        assert np.array_equal(evaluate(net, x.numpy()), model(x).numpy())


@pytest.mark.parametrize(("side", "ok"), [(8, True), (7, False)])
def test_onnx_ceil_mode(tmp_path: Path, side: int, ok: bool) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    w = (rng.integers(-8, 9, size=(2, 1, 3, 3)) / 8.0).astype(np.float32)
    out = side // 2 + side % 2
    fc = (rng.integers(-8, 9, size=(2, 2 * out * out)) / 8.0).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2],
                              ceil_mode=1),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, side, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(fc, "fc")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "p.onnx"
    onnx.save(model, str(path))
    x = _x(side).numpy().astype(np.float32)[:1]
    want = ort.InferenceSession(str(path)).run(None, {"x": x})[0]  # onnxruntime runs both
    if not ok:
        with pytest.raises(UnsupportedLayerError,
                           match=r"node 2 \(MaxPool ''\): ceil_mode adds a partial window"):
            load_network(path)
        return
    assert np.array_equal(evaluate(load_network(path), x.astype(np.float64)), want)


def test_partial_window_is_named_before_an_adaptive_pooling_needs_the_shapes() -> None:
    # the adaptive pooling's window follows from the shapes before it, which the partial
    # window changes: the ceil_mode pooling is named, not the 3x3 convolution that would
    # no longer fit the (floor-mode) 2x2 map
    m = nn.Sequential(nn.Conv2d(1, 2, 1, stride=2), nn.ReLU(), nn.MaxPool2d(2, 2, ceil_mode=True),
                      nn.Conv2d(2, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                      nn.Linear(2, 2)).double().eval()
    assert tuple(m(torch.zeros(1, 1, 9, 9, dtype=torch.float64)).shape) == (1, 2)  # torch runs it
    with pytest.raises(UnsupportedLayerError,
                       match=r"module 2 \(MaxPool2d '2'\): ceil_mode adds a partial window"):
        from_torch(m, (1, 9, 9))
