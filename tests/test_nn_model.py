"""Network model and evaluation: checked against PyTorch (an independent implementation)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from lumpcore import ModelFormatError, UnsupportedLayerError
from nnreduce import (
    Activation,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dense,
    Flatten,
    MaxPool2d,
    Network,
    Normalization,
    Permute,
    as_exact,
    dense_layers,
    evaluate,
    evaluate_exact,
)

torch = pytest.importorskip("torch")


def _conv_net(rng: np.random.Generator) -> Network:
    return Network(
        (
            Conv2d(rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4), (1, 1), (1, 1, 1, 1)),
            Activation("relu"),
            MaxPool2d((2, 2), (2, 2)),
            Conv2d(rng.normal(size=(3, 4, 2, 2)), rng.normal(size=3), (1, 1), (0, 0, 0, 0)),
            Activation("leaky_relu", alpha=0.125),
            AvgPool2d((2, 2), (1, 1), (1, 1, 1, 1), count_include_pad=True),
            BatchNorm(rng.normal(size=3), rng.normal(size=3)),
            Activation("prelu", slopes=rng.normal(size=3)),
            Flatten(),
            Dense(rng.normal(size=(5, 27)), rng.normal(size=5)),
            Activation("tanh"),
            Dense(rng.normal(size=(2, 5)), rng.normal(size=2)),
            Activation("sigmoid"),
        ),
        (2, 6, 6),
    )


def _torch_conv_net(net: Network) -> torch.nn.Module:
    L = net.layers
    t = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2, 2),
        torch.nn.Conv2d(4, 3, 2), torch.nn.LeakyReLU(0.125),
        torch.nn.AvgPool2d(2, 1, padding=1, count_include_pad=True),
        torch.nn.BatchNorm2d(3), torch.nn.PReLU(3), torch.nn.Flatten(),
        torch.nn.Linear(27, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2), torch.nn.Sigmoid(),
    ).double().eval()
    with torch.no_grad():
        t[0].weight[:] = torch.tensor(L[0].weight)
        t[0].bias[:] = torch.tensor(L[0].bias)
        t[3].weight[:] = torch.tensor(L[3].weight)
        t[3].bias[:] = torch.tensor(L[3].bias)
        bn = t[6]
        bn.running_mean[:] = 0.0
        bn.running_var[:] = 1.0 - bn.eps
        bn.weight[:] = torch.tensor(L[6].scale)
        bn.bias[:] = torch.tensor(L[6].shift)
        t[7].weight[:] = torch.tensor(np.asarray(L[7].slopes, dtype=float))
        t[9].weight[:] = torch.tensor(L[9].weight)
        t[9].bias[:] = torch.tensor(L[9].bias)
        t[11].weight[:] = torch.tensor(L[11].weight)
        t[11].bias[:] = torch.tensor(L[11].bias)
    return t


def test_float_evaluation_matches_torch() -> None:
    rng = np.random.default_rng(1)
    net = _conv_net(rng)
    x = rng.normal(size=(7, 2, 6, 6))
    with torch.no_grad():
        expected = _torch_conv_net(net)(torch.tensor(x)).numpy()
    np.testing.assert_allclose(evaluate(net, x), expected, rtol=1e-6, atol=1e-9)
    # single input: no batch dimension in the result
    np.testing.assert_allclose(evaluate(net, x[0]), expected[0], rtol=1e-6, atol=1e-9)


def test_exact_evaluation_agrees_with_float() -> None:
    rng = np.random.default_rng(2)
    net = _conv_net(rng)
    x = rng.normal(size=(2, 2, 6, 6))
    ex = evaluate_exact(net, x)
    assert ex.dtype == object and isinstance(ex[0, 0], Fraction)
    np.testing.assert_allclose(ex.astype(float), evaluate(net, x), rtol=1e-9, atol=1e-12)


def test_exact_evaluation_is_exact_by_hand() -> None:
    # y = relu(x1/3 - x2) ; out = 2y - 1/7 ; computed by hand for x = (1, 1/6)
    net = Network((Dense([[Fraction(1, 3), -1]], [0]), Activation("relu"),
                   Dense([[2]], [Fraction(-1, 7)])), (2,))
    assert evaluate_exact(net, ["1", "1/6"])[0] == Fraction(2, 6) - Fraction(1, 7)
    assert evaluate_exact(net, [0, 1])[0] == Fraction(-1, 7)


def test_normalization_applied_like_nnet() -> None:
    nrm = Normalization(input_mean=[1], input_range=[2], output_mean=[10], output_range=[3],
                        input_min=[-5], input_max=[5])
    net = Network((Dense([[1.0]], [0.0]),), (1,), nrm)
    # clip(9) = 5 ; (5-1)/2 = 2 ; 2*3+10 = 16
    assert evaluate_exact(net, [9])[0] == 16
    assert evaluate(net, [[-9.0]])[0, 0] == pytest.approx(((-5 - 1) / 2) * 3 + 10)
    assert evaluate(net, [9.0], normalize=False)[0] == 9.0


def test_dense_view_reproduces_conv_network() -> None:
    rng = np.random.default_rng(3)
    net = Network(
        (Permute((2, 0, 1)),
         Conv2d(rng.normal(size=(3, 2, 2, 2)), rng.normal(size=3), (1, 1), (1, 0, 0, 1)),
         Activation("relu"), Permute((1, 2, 0)), Flatten(),
         Dense(rng.normal(size=(4, 3 * 4 * 4)), rng.normal(size=4)), Activation("relu"),
         Dense(rng.normal(size=(2, 4)), rng.normal(size=2))),
        (4, 4, 2),
    )
    layers = dense_layers(net)
    x = rng.normal(size=(5, 4, 4, 2))
    h = x.reshape(5, -1)
    for w, b, act in layers:
        h = h @ w.T + b
        if act.kind == "relu":
            h = np.maximum(h, 0)
    np.testing.assert_allclose(h, evaluate(net, x), rtol=1e-9, atol=1e-12)
    # exact weights stay exact in the view
    assert dense_layers(as_exact(net))[0][0].dtype == object


def test_dense_view_rejects_pooling_naming_position() -> None:
    net = Network((MaxPool2d((2, 2), (2, 2)), Flatten(), Dense(np.ones((1, 4)), [0.0])),
                  (1, 4, 4))
    with pytest.raises(UnsupportedLayerError, match="layer 0"):
        dense_layers(net)


def test_bad_shapes_are_named() -> None:
    with pytest.raises(ModelFormatError, match="layer 1"):
        Network((Dense(np.ones((3, 2)), np.zeros(3)), Dense(np.ones((1, 2)), [0.0])), (2,))
    with pytest.raises(ModelFormatError, match="NaN"):
        Dense([[float("nan")]], [0.0])
    with pytest.raises(UnsupportedLayerError, match="'thresholded_relu' is not supported"):
        Activation("thresholded_relu")
    with pytest.raises(ModelFormatError, match="expected"):
        evaluate(Network((Dense([[1.0]], [0.0]),), (1,)), [[1.0, 2.0]])


@pytest.mark.parametrize("cls", [MaxPool2d, AvgPool2d])
@pytest.mark.parametrize("padding", [(2, 0, 0, 0), (0, 0, 0, 3), (0, 3, 0, 0), (0, 0, 2, 0)])
def test_pooling_padding_not_below_the_kernel_is_refused(cls: type, padding: tuple) -> None:
    """A window of padding alone has no maximum (it read as -inf) and no mean (0/0 without
    counted padding); ONNX, onnxruntime and PyTorch refuse such pools, and so does the
    layer itself, whatever file it comes from (a hand-written .npz did)."""
    with pytest.raises(ModelFormatError, match=r"not smaller than the kernel"):
        cls((2, 3), (1, 1), padding)
    cls((2, 3), (1, 1), (1, 2, 1, 2))  # just below: fine


@pytest.mark.parametrize("flag", ["false", "true", 2, None, [True]])
def test_count_include_pad_must_be_a_boolean(flag: object) -> None:
    """A string "false" was read as True (any non-empty string is truthy)."""
    with pytest.raises(ModelFormatError, match=r"count_include_pad: expected true or false"):
        AvgPool2d((2, 2), (1, 1), (0, 0, 0, 0), flag)  # type: ignore[arg-type]
    for ok in (True, False, np.True_, 0, 1):
        assert AvgPool2d((2, 2), (1, 1), (0, 0, 0, 0), ok).count_include_pad is bool(ok)
