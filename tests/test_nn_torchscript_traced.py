"""TorchScript made by ``torch.jit.trace``: a layer's settings live in the traced graph.

A traced module keeps only parameters and buffers; a convolution's padding, a
softmax's ``dim`` or a LeakyReLU's slope are constants of its recorded
``forward``.  lumpkit reads them from there.  Oracles: PyTorch runs the traced
file (float64 models, to 1e-12) on the original and on the reduced model; a
softmax over the batch axis, a reflect-padded convolution or batch norm with
batch statistics are refused, naming the module.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lumpcore import UnsupportedLayerError
from nnreduce import evaluate, load_network, reduce_network, save_network

torch = pytest.importorskip("torch")
nn = torch.nn


def _traced_file(model: Any, example: Any, path: Path) -> Path:
    model.eval()
    buf = io.BytesIO()
    torch.jit.save(torch.jit.trace(model, example), buf)
    path.write_bytes(buf.getvalue())
    return path


def _torch_out(path: Path, x: np.ndarray) -> np.ndarray:
    mod = torch.jit.load(str(path))
    with torch.no_grad():
        return mod(torch.tensor(x)).numpy()


def test_traced_cnn_with_parametrised_layers_is_read_and_reduced(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.ZeroPad2d((1, 0, 2, 0)), nn.Conv2d(2, 4, 3, stride=(2, 1), bias=False),
        nn.BatchNorm2d(4), nn.LeakyReLU(0.125), nn.MaxPool2d(2, stride=1, padding=1),
        nn.Conv2d(4, 4, 3, padding="same", dilation=2, groups=2), nn.Hardtanh(-0.5, 2.0),
        nn.AvgPool2d(2, count_include_pad=False, padding=1), nn.Flatten(),
        nn.Linear(4 * 3 * 4, 5), nn.ELU(0.5), nn.Linear(5, 5), nn.GELU("tanh"),
        nn.Linear(5, 3, bias=False), nn.Softmax(dim=1)).double()
    with torch.no_grad():  # channel 1 = 2 * channel 0 before the LeakyReLU: merged
        model[1].weight[1] = 2 * model[1].weight[0]
        bn = model[2]
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_mean[1] = 2 * bn.running_mean[0]
        bn.bias[1] = 2 * bn.bias[0]
        bn.weight[1] = bn.weight[0]
        bn.running_var[1] = bn.running_var[0]
    x = np.random.default_rng(0).standard_normal((4, 2, 7, 6))
    path = _traced_file(model, torch.tensor(x[:1]), tmp_path / "m.pt")
    want = _torch_out(path, x)
    net = load_network(path, input_shape=(2, 7, 6))
    np.testing.assert_allclose(evaluate(net, x), want, rtol=1e-12, atol=1e-12)
    red = reduce_network(net)
    assert red.layers[0].neurons_after == 3
    save_network(red.network, tmp_path / "r.pt", torchscript=True, dtype="float64")
    np.testing.assert_allclose(_torch_out(tmp_path / "r.pt", x), want, rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize(("layer", "message"), [
    (nn.Softmax(dim=0), r"module 1 \(Softmax '1'\).*dim=0"),
    (nn.LogSoftmax(dim=0), r"module 1 \(LogSoftmax '1'\).*dim=0"),
    (nn.Softplus(beta=2.0), r"module 1 \(Softplus '1'\).*beta"),
    (nn.Flatten(0), r"module 1 \(Flatten '1'\).*Flatten\(1, -1\)"),
])
def test_traced_settings_that_lumpkit_refuses_are_named(layer: Any, message: str,
                                                        tmp_path: Path) -> None:
    # before: a traced softmax over the batch axis was read as one over the features
    model = nn.Sequential(nn.Linear(3, 2), layer).double()
    path = _traced_file(model, torch.zeros(2, 3, dtype=torch.float64), tmp_path / "m.pt")
    with pytest.raises(UnsupportedLayerError, match=message):
        load_network(path)


def test_traced_reflect_padding_is_refused_with_the_recorded_operators(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
                          nn.Flatten(), nn.Linear(32, 2))
    path = _traced_file(model, torch.zeros(1, 1, 4, 4), tmp_path / "m.pt")
    with pytest.raises(UnsupportedLayerError, match=r"module 0 \(Conv2d '0'\).*aten::pad"):
        load_network(path, input_shape=(1, 4, 4))


@pytest.mark.parametrize("traced", [False, True])
def test_batch_norm_with_batch_statistics_is_refused(traced: bool, tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2, track_running_stats=False))
    path = tmp_path / "m.pt"
    if traced:
        buf = io.BytesIO()
        torch.jit.save(torch.jit.trace(model, torch.randn(4, 3)), buf)
        path.write_bytes(buf.getvalue())
    else:
        torch.save(model, path)
    with pytest.raises(UnsupportedLayerError, match=r"module 1 \(BatchNorm1d '1'\).*own "
                                                    r"statistics"):
        load_network(path)
