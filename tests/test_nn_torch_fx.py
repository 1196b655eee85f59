"""Custom PyTorch modules (not nn.Sequential) read through their forward, traced by torch.fx.

Oracle: PyTorch runs the same module; planted redundancy gives the known
neuron count; every refusal names the traced node.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from lumpcore import ModelFormatError, UnsupportedLayerError
from nnreduce import Activation, Flatten, evaluate, evaluate_exact, from_torch, reduce_network

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


class LeNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 30)
        self.fc2 = nn.Linear(30, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), (2, 2))
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        return F.log_softmax(self.fc2(x), dim=1)


class BatchNormMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, 12)
        self.bn = nn.BatchNorm1d(12)
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        x = self.drop(F.relu(self.bn(self.fc1(x))))
        x = F.dropout(x, 0.3, training=self.training)
        return self.fc2(x)


class Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4 * 3 * 3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(x)).relu()


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.AvgPool2d(2))
        self.head = Head()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).reshape(x.shape[0], -1))


@pytest.mark.parametrize(("cls", "shape"), [(LeNet, (1, 28, 28)), (BatchNormMLP, (1, 4, 4)),
                                            (Nested, (2, 8, 8))])
def test_custom_modules_match_torch(cls: type, shape: tuple[int, ...]) -> None:
    torch.manual_seed(1)
    m = cls().eval()
    if cls is BatchNormMLP:
        m.bn.running_mean.normal_()
        m.bn.running_var.uniform_(0.5, 2.0)
    net = from_torch(m, input_shape=shape)
    assert sum(isinstance(lyr, Flatten) for lyr in net.layers) == 1
    x = torch.randn(4, *shape)
    np.testing.assert_allclose(evaluate(net, x.double().numpy()),
                               m(x).detach().double().numpy(), rtol=1e-5, atol=1e-5)
    if cls is LeNet:
        assert isinstance(net.layers[-1], Activation) and net.layers[-1].kind == "log_softmax"


def test_planted_custom_module_reduces_to_its_original_count() -> None:
    class Planted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 6)
            self.b = nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(F.leaky_relu(self.a(x), 0.125))

    torch.manual_seed(2)
    m = Planted().eval()
    with torch.no_grad():  # neurons 4, 5 = 2 * neuron 0, neuron 1 / 4
        m.a.weight[4] = 2 * m.a.weight[0]
        m.a.bias[4] = 2 * m.a.bias[0]
        m.a.weight[5] = m.a.weight[1] / 4
        m.a.bias[5] = m.a.bias[1] / 4
    net = from_torch(m)
    red = reduce_network(net)
    assert [lr.neurons_after for lr in red.layers] == [4]
    rng = np.random.default_rng(3)
    for _ in range(4):
        x = [Fraction(int(v), int(d)) for v, d in zip(rng.integers(-9, 10, size=3),
                                                     rng.integers(1, 5, size=3), strict=True)]
        assert evaluate_exact(net, x).tolist() == evaluate_exact(red.network, x).tolist()


def _refused(forward: object, match: str, shape: tuple[int, ...] = (4,)) -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4)

    M.forward = forward  # type: ignore[method-assign, assignment]
    with pytest.raises(UnsupportedLayerError, match=match):
        from_torch(M().eval(), input_shape=shape)


def test_what_is_not_a_chain_is_refused_with_the_node_named() -> None:
    _refused(lambda self, x: x + self.a(x), r"traced node 'add'.*not a single chain")
    _refused(lambda self, x: self.a(x.view(-1, 2)), r"asks for \(batch, 2\)")
    _refused(lambda self, x: self.a(x).view(x.shape[1], -1), r"'getitem'.*only the batch size")
    _refused(lambda self, x: self.a(x).view(x.size(1), -1), r"'size'.*only the batch size")
    _refused(lambda self, x: self.a(x).view(x.size(0), 2, 2), r"reshape to \['batch', 2, 2\]")
    _refused(lambda self, x: F.dropout(self.a(x), 0.5), r"dropout that is active")
    _refused(lambda self, x: self.a(x) * 2, r"arithmetic 'mul'.*after the first layer")
    _refused(lambda self, x: self.a(x) if x.sum() > 0 else x, r"cannot be traced by torch.fx")


def test_torchs_own_layers_are_not_traced() -> None:
    lin = nn.Linear(3, 2)
    net = from_torch(lin)
    x = torch.randn(2, 3)
    np.testing.assert_allclose(evaluate(net, x.double().numpy()), lin(x).detach().numpy(),
                               rtol=1e-6, atol=1e-6)


class GlobalPool(nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.c = nn.Conv2d(3, 8, 3)
        self.pool = nn.AdaptiveAvgPool2d((2, 2)) if mode == "adaptive-2x2" else \
            nn.AdaptiveMaxPool2d(1)
        self.f = nn.Linear(8 * (4 if mode == "adaptive-2x2" else 1), 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.c(x))
        if self.mode == "mean":  # exports as ReduceMean over axes (2, 3)
            x = x.mean(dim=(2, 3))
        elif self.mode == "functional":  # exports as GlobalAveragePool
            x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        else:
            x = torch.flatten(self.pool(x), 1)
        return self.f(x)


@pytest.mark.parametrize("mode", ["mean", "functional", "adaptive-2x2", "adaptive-max"])
def test_global_and_adaptive_pooling_from_torch_and_onnx(tmp_path: object, mode: str) -> None:
    """Global/adaptive pooling (sizes dividing the map) is a fixed pooling; through torch.fx
    and through ONNX (GlobalAveragePool, ReduceMean, AveragePool, MaxPool).  Oracles: torch,
    onnxruntime on the export and on the reduced model lumpkit writes."""
    import warnings
    from pathlib import Path

    ort = pytest.importorskip("onnxruntime")
    from nnreduce import load_network, save_network

    torch.manual_seed(6)
    m = GlobalPool(mode).eval()
    x = torch.randn(3, 3, 10, 10)
    want = m(x).detach().double().numpy()
    net = from_torch(m, input_shape=(3, 10, 10))
    np.testing.assert_allclose(evaluate(net, x.double().numpy()), want, rtol=1e-5, atol=1e-6)
    path = Path(str(tmp_path)) / "g.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x,), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}})
    onet = load_network(path)
    np.testing.assert_allclose(evaluate(onet, x.double().numpy()), want, rtol=1e-5, atol=1e-6)
    out = Path(str(tmp_path)) / "r.onnx"
    save_network(reduce_network(onet).network, out)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_adaptive_pooling_with_uneven_windows_is_refused() -> None:
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(18, 2))
    with pytest.raises(UnsupportedLayerError, match="output 3x3 of a 8x8 map"):
        from_torch(m, input_shape=(1, 10, 10))
    with pytest.raises(ModelFormatError, match="needs the input shape"):
        from_torch(nn.Sequential(nn.AdaptiveAvgPool2d(1)))
