"""z3 on convolutional networks with pooling, batch norm and clips: their exact ReLU form.

Oracles: nnreduce's exact evaluator (the ReLU form must compute the same
outputs on random rational inputs, pooling windows with padding included),
the reduction of planted networks (z3 must prove it), and changed networks
(z3 must find an input where they differ, re-checked by exact evaluation).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnreduce import (
    Activation,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dense,
    Flatten,
    MaxPool2d,
    Network,
    Permute,
    evaluate_exact,
    reduce_network,
)
from proofs import check_equivalence
from proofs._mlp import as_mlp
from proofs._mlp import evaluate_exact as mlp_exact


def _q(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return np.array([Fraction(int(rng.integers(-4, 5)), int(rng.integers(1, 3)))
                     for _ in range(int(np.prod(shape)))], dtype=object).reshape(shape)


@st.composite
def _cnns(draw: st.DrawFn) -> Network:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c = draw(st.integers(1, 2))
    k = draw(st.integers(1, 3))
    pad = draw(st.integers(0, 1))
    layers: list[object] = [Conv2d(_q(rng, k, c, 2, 2), _q(rng, k), (1, 1), (pad,) * 4)]
    act = draw(st.sampled_from(["relu", "leaky", "clip", "identity"]))
    layers.append({"relu": Activation("relu"), "identity": Activation("identity"),
                   "leaky": Activation("leaky_relu", alpha=Fraction(1, 4)),
                   "clip": Activation("clip", bounds=(Fraction(-1), Fraction(2)))}[act])
    if draw(st.booleans()):
        layers.append(BatchNorm(_q(rng, k), _q(rng, k)))
    pool = draw(st.sampled_from(["max", "avg", "avg-count", "max-3"]))
    if pool == "max":
        layers.append(MaxPool2d((2, 2), (2, 2), (0, 0, 1, 1)))
    elif pool == "max-3":
        layers.append(MaxPool2d((3, 1), (1, 1), (1, 0, 1, 0)))  # windows of 2 and 3
    else:
        layers.append(AvgPool2d((2, 2), (1, 1), (1, 1, 0, 0), pool == "avg-count"))
    if draw(st.booleans()):
        layers.append(Permute((1, 2, 0)))
    layers.append(Flatten())
    net = Network(tuple(layers), (c, 4, 4))  # type: ignore[arg-type]
    n = int(np.prod(net.output_shape))
    return Network((*net.layers, Dense(_q(rng, 2, n), _q(rng, 2))), (c, 4, 4))


@settings(max_examples=40, deadline=None)
@given(_cnns(), st.integers(0, 2**32 - 1))
def test_relu_form_computes_the_network_exactly(net: Network, seed: int) -> None:
    mlp = as_mlp(net, relu_form=True)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        x = _q(rng, *net.input_shape)
        assert list(mlp_exact(mlp, list(x.reshape(-1)))) == evaluate_exact(net, x).tolist()


def _planted_cnn() -> Network:
    rng = np.random.default_rng(21)
    f = _q(rng, 2, 1, 2, 2)
    b = _q(rng, 2)
    w1 = np.concatenate([f, f[:1] * 2])  # channel 2 = 2 * channel 0
    b1 = np.concatenate([b, b[:1] * 2])
    return Network((Conv2d(w1, b1), Activation("relu"), MaxPool2d((2, 2), (2, 2)), Flatten(),
                    Dense(_q(rng, 2, 3 * 2 * 2), _q(rng, 2))), (1, 5, 5))


def test_z3_proves_a_reduced_max_pooling_cnn_and_refutes_a_changed_one() -> None:
    net = _planted_cnn()
    red = reduce_network(net)
    assert red.layers[0].neurons_after == 2
    v = check_equivalence(net, red.network, box="-1:1")
    assert v.equivalent
    out = red.network.layers[-1]
    assert isinstance(out, Dense)
    changed = Network((*red.network.layers[:-1], Dense(out.weight, out.bias + Fraction(1, 8))),
                      net.input_shape)
    for falsify in (True, False):
        v = check_equivalence(net, changed, box="-1:1", falsify=falsify)
        assert not v.equivalent and v.input is not None and v.outputs is not None
        x = np.array(v.input, dtype=object).reshape(net.input_shape)
        assert tuple(evaluate_exact(net, x).tolist()) == tuple(v.outputs[0])
        assert tuple(evaluate_exact(changed, x).tolist()) == tuple(v.outputs[1])
        assert v.outputs[0] != v.outputs[1]


def test_unsupported_activation_is_still_named() -> None:
    from lumpcore import UnsupportedLayerError

    net = Network((Conv2d(np.ones((1, 1, 2, 2)), [0.0]), Activation("tanh"),
                   MaxPool2d((2, 2), (2, 2)), Flatten(), Dense(np.ones((1, 4)), [0.0])),
                  (1, 5, 5))
    with pytest.raises(UnsupportedLayerError, match="'tanh' is not supported"):
        check_equivalence(net, net)
