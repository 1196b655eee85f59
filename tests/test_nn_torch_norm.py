"""Input normalisation in PyTorch models: ``(x - mean) / std`` modules, read exactly.

Verification and vision models put a small custom module first (ERAN, VNN-COMP,
torchvision-style ``Normalization``), as a parameter, a buffer or a plain tensor
attribute.  lumpkit traces it (torch.fx) and folds the arithmetic into its
input normalisation, and writes that back to ``.pt`` as a module of its own.

Oracles: PyTorch runs the same modules (float64, to 1e-12); the exact values
expected in the normalisation are taken from the torch tensors here.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lumpcore import UnsupportedLayerError
from nnreduce import (
    evaluate,
    evaluate_exact,
    from_torch,
    load_network,
    reduce_network,
    save_network,
)

torch = pytest.importorskip("torch")
nn = torch.nn

MEAN = [0.4914, 0.4822, 0.4465]
STD = [0.2470, 0.2435, 0.2616]


class NormParam(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.tensor(MEAN).view(1, 3, 1, 1), requires_grad=False)
        self.sigma = nn.Parameter(torch.tensor(STD).view(1, 3, 1, 1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.sigma


class NormBuffer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sub(self.mean).div(self.std)


class NormPlainTensor(nn.Module):
    """ERAN style: plain tensor attributes, and scalars."""

    def __init__(self) -> None:
        super().__init__()
        self.mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(STD).view(1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / 255
        x = 2.0 * x - 1
        return torch.div(torch.sub(x, self.mean), self.std)


def _body() -> list[Any]:
    return [nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 5),
            nn.ReLU(), nn.Linear(5, 3)]


class WholeModel(nn.Module):
    """The normalisation written inside a custom model's forward."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mu", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("sd", torch.tensor(STD).view(1, 3, 1, 1))
        self.body = nn.Sequential(*_body())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mu) / self.sd)


def _exact_norm(mod: nn.Module) -> tuple[list[Fraction], list[Fraction]]:
    """Per input value (C order, 3 x 9 x 9), the exact mean and range that ``mod`` applies,
    from its own tensors: (x - m) / s."""
    def per_pixel(vals: list[float]) -> list[Fraction]:
        return [Fraction(float(v)) for v in vals for _ in range(81)]

    f32 = [float(torch.tensor(v, dtype=torch.float32)) for v in MEAN]
    s32 = [float(torch.tensor(v, dtype=torch.float32)) for v in STD]
    if isinstance(mod, NormPlainTensor):
        # ((2 x / 255 - 1) - m) / s = (x - 255 (1 + m) / 2) / (255 s / 2)
        return ([Fraction(255) * (1 + Fraction(m)) / 2 for m in f32 for _ in range(81)],
                [Fraction(255) * Fraction(s) / 2 for s in s32 for _ in range(81)])
    return per_pixel(f32), per_pixel(s32)


@pytest.mark.parametrize("norm_cls", [NormParam, NormBuffer, NormPlainTensor])
def test_normalisation_module_in_a_sequential_is_read_exactly(norm_cls: type) -> None:
    torch.manual_seed(0)
    norm = norm_cls()
    model = nn.Sequential(norm, *_body()).double().eval()
    net = from_torch(model, input_shape=(3, 9, 9))
    assert net.normalization is not None
    mean, rng = _exact_norm(norm)
    assert list(net.normalization.input_mean) == mean
    assert list(net.normalization.input_range) == rng
    x = np.random.default_rng(1).uniform(0, 255 if norm_cls is NormPlainTensor else 1,
                                         size=(4, 3, 9, 9))
    want = model(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(evaluate(net, x), want, rtol=1e-10, atol=1e-10)


def test_normalisation_inside_a_custom_forward() -> None:
    torch.manual_seed(2)
    model = WholeModel().double().eval()
    net = from_torch(model, input_shape=(3, 9, 9))
    assert net.normalization is not None
    x = np.random.default_rng(3).uniform(0, 1, size=(3, 3, 9, 9))
    np.testing.assert_allclose(evaluate(net, x), model(torch.tensor(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-10)


def test_reduced_model_with_normalisation_written_to_pt_runs_in_torch(tmp_path: Path) -> None:
    """The user's flow: import, reduce, save as .pt (pickle and TorchScript), run in torch."""
    torch.manual_seed(4)
    body = _body()
    with torch.no_grad():  # neuron 4 of the first dense layer is 2 x neuron 1
        body[3].weight[4] = 2 * body[3].weight[1]
        body[3].bias[4] = 2 * body[3].bias[1]
    model = nn.Sequential(NormBuffer(), *body).double().eval()
    net = from_torch(model, input_shape=(3, 9, 9))
    red = reduce_network(net)
    assert red.layers[1].neurons_after == 4
    x = np.random.default_rng(5).uniform(0, 1, size=(4, 3, 9, 9))
    want = model(torch.tensor(x)).detach().numpy()
    for script in (False, True):
        path = tmp_path / f"red{script}.pt"
        save_network(red.network, path, torchscript=script, dtype="float64")
        mod = torch.jit.load(str(path)) if script else torch.load(str(path), weights_only=False)
        np.testing.assert_allclose(mod(torch.tensor(x)).detach().numpy(), want, rtol=1e-10,
                                   atol=1e-10)
        back = load_network(path)
        assert back.normalization is not None
        assert list(back.normalization.input_mean) == list(net.normalization.input_mean)
        assert list(back.normalization.input_range) == list(net.normalization.input_range)
        xr = [[[Fraction(int(v), 7) for v in row] for row in ch]
              for ch in np.random.default_rng(6).integers(0, 8, size=(3, 9, 9))]
        assert evaluate_exact(back, xr).tolist() == evaluate_exact(net, xr).tolist()


def test_nnet_normalisation_exported_to_pt(tmp_path: Path) -> None:
    """ACAS Xu keeps its input clipping, mean/range and output scaling in a .pt."""
    net = load_network(Path(__file__).parent / "data/nn/acasxu/ACASXU_experimental_v2a_1_1.nnet")
    nrm = net.normalization
    assert nrm is not None and nrm.input_min is not None
    x = np.random.default_rng(7).uniform(-2, 2, size=(5, 5)) * np.array(
        [60000, 3.2, 3.2, 1200, 1200]) + np.array([30000, 0, 0, 600, 600])
    want = evaluate(net, x)
    for script in (False, True):
        path = tmp_path / f"acas{script}.pt"
        save_network(net, path, torchscript=script, dtype="float64")
        mod = torch.jit.load(str(path)) if script else torch.load(str(path), weights_only=False)
        np.testing.assert_allclose(mod(torch.tensor(x)).detach().numpy(), want, rtol=1e-12,
                                   atol=1e-9)
        back = load_network(path)
        assert back.normalization is not None
        for name in ("input_mean", "input_range", "output_mean", "output_range", "input_min",
                     "input_max"):
            assert list(getattr(back.normalization, name)) == \
                list(np.broadcast_to(getattr(nrm, name), (5,)))


class AfterLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * 2.0


class ConstantMinusX(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 - x


class BadShape(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("m", torch.ones(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.m


class ZeroStd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("s", torch.tensor([1.0, 0.0, 1.0, 1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.s


@pytest.mark.parametrize(("model", "match"), [
    (AfterLayer(), "after the first layer"),
    (nn.Sequential(ConstantMinusX(), nn.Linear(4, 2)), "constant sub data"),
    (nn.Sequential(BadShape(), nn.Linear(4, 2)), "does not broadcast"),
    (nn.Sequential(ZeroStd(), nn.Linear(4, 2)), "by zero"),
])
def test_arithmetic_lumpkit_cannot_hold_is_refused_by_name(model: Any, match: str) -> None:
    with pytest.raises(UnsupportedLayerError, match=match):
        from_torch(model.eval(), input_shape=(4,))
