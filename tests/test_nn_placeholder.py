"""A hidden layer whose neurons are all constant: one placeholder neuron stays, feeding
nothing, and the layers after it are reduced as constant too (certificate version 3).
The layers before it then feed only zero weights: nothing reads them, so they keep one
placeholder each as well (unused neurons, certificate version 4).

Oracles, independent of nnreduce's reduction:
* exact rational evaluation of the original network;
* a brute-force look at the reduced network's own weights: which kept neurons are
  constant (all incoming weights zero) and which pairs are proportional;
* the certificate checker of ``proofs`` (and tampered certificates it must refuse);
* the exported models run by onnxruntime and torch.
"""

from __future__ import annotations

import copy
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nn_helpers import exports_run_by_their_frameworks

from nnreduce import (
    Activation,
    Conv2d,
    Dense,
    Flatten,
    MaxPool2d,
    Network,
    evaluate,
    evaluate_exact,
    reduce_network,
)
from proofs import check_certificate


def _q(rng: np.random.Generator, *shape: int, zero: bool = False,
       dyadic: bool = False) -> np.ndarray:
    """Random rationals (``dyadic``: with denominators 1, 2, 4, exact as float32)."""
    n = int(np.prod(shape))
    den = (1, 2, 4) if dyadic else (1, 2, 3)
    vals = [Fraction(0) if zero else Fraction(int(rng.integers(-4, 5)), den[rng.integers(0, 3)])
            for _ in range(n)]
    return np.array(vals, dtype=object).reshape(shape)


def _fr(x: Any) -> Fraction:
    return x if isinstance(x, Fraction) else Fraction(float(x))


def _same_function(a: Network, b: Network, rng: np.random.Generator, n: int = 5) -> None:
    size = int(np.prod(a.input_shape))
    for _ in range(n):
        x = np.array([Fraction(int(rng.integers(-30, 31)), int(rng.integers(1, 6)))
                      for _ in range(size)], dtype=object).reshape(a.input_shape)
        assert list(evaluate_exact(a, x).reshape(-1)) == list(evaluate_exact(b, x).reshape(-1))


def _hidden(net: Network) -> list[int]:
    return [i for i, lyr in enumerate(net.layers) if isinstance(lyr, Dense | Conv2d)][:-1]


def _kinds_after(net: Network, idx: int) -> set[str]:
    out = set()
    for op in net.layers[idx + 1:]:
        if isinstance(op, Dense | Conv2d):
            break
        out.add(getattr(op, "kind", type(op).__name__))
    return out


def _constant_value_known(kinds: set[str], bias: Fraction) -> bool:
    """Whether a neuron with zero weights and this bias has a rational output after these
    post-ops (what an exact fold needs): piecewise-linear ones always, tanh only at 0."""
    return "tanh" not in kinds or bias == 0


def _audit(red: Network) -> None:
    """Brute force on the reduced network: a kept neuron with zero incoming weights and a
    rational value is the lone placeholder of its layer and feeds nothing; no two kept
    neurons are proportional with a factor the post-ops allow."""
    hidden = _hidden(red)
    lin = [i for i, lyr in enumerate(red.layers) if isinstance(lyr, Dense | Conv2d)]
    for k, idx in enumerate(hidden):
        layer = red.layers[idx]
        kinds = _kinds_after(red, idx)
        w = layer.weight.reshape(layer.weight.shape[0], -1)
        rows = [[_fr(layer.bias[i])] + [_fr(x) for x in w[i]]
                for i in range(w.shape[0])]
        for i, row in enumerate(rows):
            if all(x == 0 for x in row[1:]) and _constant_value_known(kinds, row[0]):
                assert len(rows) == 1, f"layer {idx}: constant neuron {i} kept beside others"
                nxt = red.layers[lin[k + 1]]
                assert not np.any(np.asarray(nxt.weight) != 0), \
                    f"layer {idx}: the placeholder feeds layer {lin[k + 1]}"
        for v in range(len(rows)):
            for t in range(v + 1, len(rows)):
                ratios = {b / a for a, b in zip(rows[v], rows[t], strict=True) if a and b}
                if len(ratios) != 1 or any((a == 0) != (b == 0)
                                           for a, b in zip(rows[v], rows[t], strict=True)):
                    continue
                (r,) = ratios
                if kinds <= {"identity", "Flatten"}:
                    allowed = r != 0
                elif kinds <= {"relu", "leaky_relu", "identity", "MaxPool2d", "Flatten"}:
                    allowed = r > 0
                else:
                    allowed = r == 1
                assert not allowed, f"layer {idx}: neurons {v} and {t} are mergeable ({r})"


def _dead_middle(dtype: Any = object) -> Network:
    """2 -> 3 relu -> 3 relu (all dead or constant) -> 4 relu -> 5 leaky -> 2, with dyadic
    weights (so that the float copies are exact and every fold is exact in float)."""
    rng = np.random.default_rng(3)

    def q(*shape: int) -> np.ndarray:
        return _q(rng, *shape, dyadic=True)

    layers = (Dense(q(3, 2), q(3)), Activation("relu"),
              Dense(_q(rng, 3, 3, zero=True), np.array([Fraction(-1), Fraction(0), Fraction(2)],
                                                       dtype=object)), Activation("relu"),
              Dense(q(4, 3), q(4)), Activation("relu"),
              Dense(q(5, 4), q(5)), Activation("leaky_relu", alpha=Fraction(1, 8)),
              Dense(q(2, 5), q(2)))
    if dtype is not object:
        layers = tuple(Dense(np.asarray(lyr.weight, dtype=np.float64).astype(dtype),
                             np.asarray(lyr.bias, dtype=np.float64).astype(dtype))
                       if isinstance(lyr, Dense) else lyr for lyr in layers)
    return Network(layers, (2,))


@pytest.mark.parametrize("dtype", [object, np.float64, np.float32])
@pytest.mark.parametrize("tolerance", [0.0, 1e-6])
def test_layers_after_an_all_constant_layer_are_constant_too(dtype: Any,
                                                             tolerance: float) -> None:
    net = _dead_middle(dtype)
    red = reduce_network(net, tolerance=tolerance)
    assert [lr.neurons_after for lr in red.layers] == [1, 1, 1, 1]
    assert [lr.placeholder for lr in red.layers] == [0, 0, 0, 0]
    assert [len(lr.removed) for lr in red.layers] == [0, 3, 4, 5]
    assert red.layers[0].unused == (0, 1, 2)  # they feed the constant layer's zero weights
    assert all(lr.blocks == () for lr in red.layers)
    cert = red.certificate
    assert cert is not None and cert["version"] == 4
    assert [e.get("placeholder") for e in cert["layers"]] == [0, 0, 0, 0]
    res = check_certificate(net, red.network, cert)
    assert res.valid and res.exact, res
    _same_function(net, red.network, np.random.default_rng(0))
    _audit(red.network)


def test_certificate_without_a_placeholder_keeps_its_version() -> None:
    rng = np.random.default_rng(1)
    net = Network((Dense(_q(rng, 3, 2), _q(rng, 3)), Activation("relu"),
                   Dense(_q(rng, 2, 3), _q(rng, 2))), (2,))
    red = reduce_network(net)
    assert red.certificate is not None and red.certificate["version"] == 1
    assert all("placeholder" not in e for e in red.certificate["layers"])


def _tampered(cert: dict[str, Any], edit: Any) -> dict[str, Any]:
    out = copy.deepcopy(cert)
    edit(out)
    return out


def _all_refused(net: Network, red: Network, cert: dict[str, Any],
                 edits: dict[str, Any]) -> None:
    """Every edited copy of ``cert`` is refused: malformed (``ValueError``) or invalid."""
    for what, edit in edits.items():
        try:
            res = check_certificate(net, red, _tampered(cert, edit))
        except ValueError:
            continue  # refused as malformed
        assert not res.valid, what


def test_checker_refuses_bad_placeholders() -> None:
    net = _dead_middle()
    red = reduce_network(net)
    cert = red.certificate
    assert cert is not None
    edits = {
        "version 2 cannot say it": lambda c: c.__setitem__("version", 2),
        "version 3 cannot say unused": lambda c: c.__setitem__("version", 3),
        "placeholder not removed": lambda c: c["layers"][1].__setitem__(
            "removed", c["layers"][1]["removed"][1:]),
        "placeholder not unused": lambda c: c["layers"][0].__setitem__("unused", [1, 2]),
        "a placeholder beside blocks": lambda c: (
            c["layers"][0].__setitem__("unused", [1, 2]),
            c["layers"][0].__setitem__("blocks", [[0]]),
            c["layers"][0].__setitem__("rho", [["1"]])),
        "wrong neurons_after": lambda c: c["layers"][2].__setitem__("neurons_after", 0),
        "placeholder missing": lambda c: c["layers"][2].pop("placeholder"),
        "another placeholder": lambda c: c["layers"][3].__setitem__("placeholder", 4),
        "not an integer": lambda c: c["layers"][3].__setitem__("placeholder", "0"),
    }
    _all_refused(net, red.network, cert, edits)


def test_checker_refuses_a_placeholder_that_feeds_the_next_layer() -> None:
    net = _dead_middle()
    red = reduce_network(net)
    layers = list(red.network.layers)
    w = layers[4].weight.copy()
    w[0, 0] = Fraction(1, 3)  # the placeholder of layer 2 now feeds layer 4's one neuron
    layers[4] = Dense(w, layers[4].bias)
    forged = Network(tuple(layers), red.network.input_shape)
    cert = _tampered(red.certificate or {}, lambda c: None)
    from nnreduce import network_sha256
    cert["reduced"]["sha256"] = network_sha256(forged)
    res = check_certificate(net, forged, cert)
    assert not res.valid and "placeholder" in (res.condition or ""), res


def test_conv_layer_of_dead_channels_before_flatten() -> None:
    rng = np.random.default_rng(4)
    net = Network((
        Conv2d(_q(rng, 3, 1, 2, 2), _q(rng, 3)), Activation("relu"),
        Conv2d(_q(rng, 2, 3, 2, 2, zero=True), np.array([Fraction(-1), Fraction(1, 2)],
                                                        dtype=object)), Activation("relu"),
        MaxPool2d((2, 2), (2, 2)), Flatten(),
        Dense(_q(rng, 4, 2 * 2 * 2), _q(rng, 4)), Activation("relu"),
        Dense(_q(rng, 2, 4), _q(rng, 2))), (1, 6, 6))
    red = reduce_network(net)
    assert [lr.neurons_after for lr in red.layers] == [1, 1, 1]
    assert red.layers[0].unused == (0, 1, 2)  # they feed only zero filters
    assert red.layers[1].placeholder == 0 and red.layers[2].placeholder == 0
    assert dict(red.layers[1].removed) == {0: 0, 1: Fraction(1, 2)}
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid and res.exact, res
    _same_function(net, red.network, rng, 3)
    _audit(red.network)


def test_placeholder_networks_export_and_run_in_their_frameworks(tmp_path: Path) -> None:
    net = _dead_middle(np.float64)
    red = reduce_network(net)
    x = np.random.default_rng(2).normal(size=(4, 2))
    np.testing.assert_array_equal(evaluate(red.network, x), evaluate(net, x))
    back = exports_run_by_their_frameworks(red.network, x, tmp_path)
    for fmt, b in back.items():
        assert [int(lyr.weight.shape[0]) for lyr in b.layers if isinstance(lyr, Dense)] == \
            [1, 1, 1, 1, 2], fmt


def test_a_tanh_constant_that_cannot_be_folded_stays_ordinary() -> None:
    """tanh(1/2) is irrational: those neurons stay (no exact fold) and identical ones merge,
    so that layer has no placeholder (the layer before, read only through zero weights,
    has one)."""
    rng = np.random.default_rng(6)
    net = Network((Dense(_q(rng, 3, 2), _q(rng, 3)), Activation("relu"),
                   Dense(_q(rng, 3, 3, zero=True),
                         np.array([Fraction(1, 2), Fraction(1, 2), Fraction(1)], dtype=object)),
                   Activation("tanh"),
                   Dense(_q(rng, 2, 3), _q(rng, 2))), (2,))
    red = reduce_network(net)
    assert red.layers[1].placeholder is None and red.layers[1].neurons_after == 2
    assert red.layers[0].unused == (0, 1, 2) and red.layers[0].placeholder == 0
    assert red.certificate is not None and red.certificate["version"] == 4
    assert check_certificate(net, red.network, red.certificate).valid
    _same_function(net, red.network, rng, 3)


# ------------------------------------------------------------------ property
@st.composite
def _nets_with_constant_layers(draw: st.DrawFn) -> tuple[Network, int]:
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    n_hidden = draw(st.integers(1, 4))
    sizes = [draw(st.integers(1, 3))] + [draw(st.integers(1, 4)) for _ in range(n_hidden)]
    sizes.append(draw(st.integers(1, 2)))
    layers: list[Any] = []
    for k in range(len(sizes) - 1):
        zero = k > 0 and draw(st.booleans())  # a layer whose weights are all zero
        w = _q(rng, sizes[k + 1], sizes[k], zero=zero)
        if not zero and draw(st.booleans()):  # some zero rows
            w[rng.random(sizes[k + 1]) < 0.5] = Fraction(0)
        b = np.array([Fraction(int(rng.integers(-3, 4)), 2) for _ in range(sizes[k + 1])],
                     dtype=object)
        if draw(st.booleans()):
            b[rng.random(sizes[k + 1]) < 0.5] = Fraction(0)
        layers.append(Dense(w, b))
        if k < n_hidden:
            kind = draw(st.sampled_from(["relu", "leaky_relu", "identity", "tanh"]))
            layers.append(Activation(kind, alpha=Fraction(1, 4)) if kind == "leaky_relu"
                          else Activation(kind))
    return Network(tuple(layers), (sizes[0],)), seed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_nets_with_constant_layers())
def test_property_constant_layers_reduce_maximally_and_check(case: tuple[Network, int]) -> None:
    net, seed = case
    for tolerance in (0.0, 1e-9):
        red = reduce_network(net, tolerance=tolerance)
        assert red.certificate is not None
        res = check_certificate(net, red.network, red.certificate)
        assert res.valid, res
        _same_function(net, red.network, np.random.default_rng(seed), 3)
        _audit(red.network)
        for lr in red.layers:
            if lr.placeholder is not None:
                assert lr.neurons_after == 1
                assert len(lr.removed) + len(lr.unused) == lr.neurons_before
