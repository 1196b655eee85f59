"""The value a constant neuron takes after its post-ops, as nnreduce folds it and as the
certificate checker re-derives it, against the network itself evaluated at every
position (``evaluate_exact`` of a convolution whose filter is zero).

A value is claimed only when every position of the channel holds it: pooling with
padding that counts its zeros makes the border differ unless the value is 0.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nnreduce import (
    Activation,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Flatten,
    MaxPool2d,
    Network,
    evaluate_exact,
)
from nnreduce._reduce import _post_value as reducer_value
from proofs._nncert import _post_value as checker_value

_F = st.builds(Fraction, st.integers(-6, 6), st.integers(1, 4))


@st.composite
def _post_op(draw: st.DrawFn, channels: int) -> Any:
    kind = draw(st.sampled_from(["relu", "leaky_relu", "prelu", "identity", "clip",
                                 "hard_sigmoid", "hard_swish", "tanh", "sigmoid", "elu",
                                 "batchnorm", "maxpool", "avgpool"]))
    if kind == "leaky_relu":
        return Activation(kind, alpha=draw(_F.filter(lambda a: a > 0)))
    if kind == "prelu":
        n = draw(st.sampled_from([1, channels]))
        return Activation(kind, slopes=np.array([draw(_F) for _ in range(n)], dtype=object))
    if kind == "clip":
        lo = draw(st.none() | _F)
        hi = draw((_F if lo is None else st.none() | _F).filter(
            lambda h: h is None or lo is None or h > lo))
        return Activation(kind, bounds=(lo, hi))
    if kind in ("hard_sigmoid", "hard_swish"):
        return Activation(kind, alpha=draw(_F.filter(lambda a: a != 0)), beta=draw(_F))
    if kind == "elu":
        return Activation(kind, alpha=Fraction(1))
    if kind == "batchnorm":
        return BatchNorm(np.array([draw(_F) for _ in range(channels)], dtype=object),
                         np.array([draw(_F) for _ in range(channels)], dtype=object))
    if kind in ("maxpool", "avgpool"):
        pad = tuple(draw(st.integers(0, 1)) for _ in range(4))
        if kind == "maxpool":
            return MaxPool2d((2, 2), (1, 1), pad)  # type: ignore[arg-type]
        return AvgPool2d((2, 2), (1, 1), pad, draw(st.booleans()))  # type: ignore[arg-type]
    return Activation(kind)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[Network, list[Any], list[Fraction]]:
    channels = draw(st.integers(1, 2))
    ops = draw(st.lists(_post_op(channels), min_size=1, max_size=4))
    biases = [draw(_F) for _ in range(channels)]
    conv = Conv2d(np.zeros((channels, 1, 2, 2), dtype=object) * Fraction(0),
                  np.array(biases, dtype=object))
    return Network((conv, *ops, Flatten()), (1, 6, 6)), ops, biases


@settings(max_examples=400, deadline=None)
@given(_cases())
def test_claimed_constant_values_hold_at_every_position(case: Any) -> None:
    net, ops, biases = case
    x = np.array([Fraction(k - 17, 3) for k in range(36)], dtype=object).reshape(1, 6, 6)
    try:
        out = evaluate_exact(net, x).reshape(len(biases), -1)
    except (ValueError, TypeError):  # a smooth activation off 0: no exact evaluation
        out = None
    for c, b in enumerate(biases):
        for name, value in (("nnreduce", reducer_value(ops, b, c)),
                            ("checker", checker_value(ops, b, c))):
            if value is None:
                continue
            assert out is not None, f"{name} claims {value} where no exact value exists"
            assert all(v == value for v in out[c].tolist()), (name, value, out[c].tolist())
