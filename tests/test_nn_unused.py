"""Neurons that nothing reads are removed (certificate version 4, field ``unused``).

A neuron is unread when every weight from it to a read neuron of the next linear
layer is zero (every output neuron is read); structured pruning leaves such neurons.
Oracles, independent of nnreduce's reduction:
* the unread neurons found here by brute force on the original weights;
* exact rational evaluation of the original and the reduced network;
* the reduced network's own weights (no unread neuron kept beside others);
* the certificate checker of ``proofs``, and tampered certificates it must refuse.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_nn_placeholder import _all_refused, _audit, _q, _same_function, _tampered

from lumpcore import UnsupportedLayerError
from nnreduce import (
    Activation,
    Conv2d,
    Dense,
    Flatten,
    MaxPool2d,
    Network,
    Permute,
    Reduction,
    network_sha256,
    reduce_network,
)
from proofs import check_certificate


def _unread(net: Network) -> list[set[int]]:
    """Per hidden linear layer, its unread neurons: from the output backwards, a neuron
    whose weights to every read neuron of the next linear layer are all zero."""
    lin = [lyr for lyr in net.layers if isinstance(lyr, Dense | Conv2d)]
    out: list[set[int]] = []
    read_rows = set(range(lin[-1].weight.shape[0]))
    for k in range(len(lin) - 1, 0, -1):
        w = lin[k].weight
        n_prev = lin[k - 1].weight.shape[0]
        per = w.shape[1] // n_prev if isinstance(lin[k], Dense) else 1
        unread = set()
        for u in range(n_prev):
            cols = [u] if isinstance(lin[k], Conv2d) else range(u * per, (u + 1) * per)
            if not any(np.any(np.asarray(w[o, c]) != 0) for o in read_rows for c in cols):
                unread.add(u)
        out.insert(0, unread)
        read_rows = set(range(n_prev)) - unread
    return out


def _read(red: Network, kept: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Per hidden layer of ``red``, which neurons some read neuron of the next linear layer
    gives a non-zero weight (from the output backwards; every output is read).  With
    ``kept`` (per hidden layer), those neurons count as read when the layer before is
    looked at, whatever reads them."""
    lin = [i for i, lyr in enumerate(red.layers) if isinstance(lyr, Dense | Conv2d)]
    out: list[np.ndarray] = []
    rows: np.ndarray | None = None
    for k in range(len(lin) - 1, 0, -1):
        w = np.asarray(red.layers[lin[k]].weight)
        w = w.reshape(w.shape[0], w.shape[1], -1) if w.ndim == 4 else w
        sel = w if rows is None else w[rows]
        nonzero = np.array(sel != 0, dtype=bool)
        n_prev = int(red.layers[lin[k - 1]].weight.shape[0])
        cols = nonzero.any(axis=0).reshape(-1)
        # a dense layer after a flatten: its inputs are the channels' positions, in order
        read = cols.reshape(n_prev, -1).any(axis=1)
        out.insert(0, read)
        rows = read if kept is None else read | kept[k - 1]
    return out


def _audit_read(red: Reduction) -> None:
    """No neuron of the reduced network that nothing reads, but a layer's lone placeholder
    and a merged block whose merged outgoing weights cancel (their sum is zero while the
    members' weights are not: not removed, see docs/theory.md), and the neurons that only
    such blocks read (kept, as the blocks are, so counted as read here)."""
    kept = [np.ones(lr.neurons_after, dtype=bool) if lr.placeholder is not None or lr.combined
            else np.array([len(b) > 1 for b in lr.blocks], dtype=bool) for lr in red.layers]
    for k, is_read in enumerate(_read(red.network, kept)):
        lr = red.layers[k]
        for j in np.flatnonzero(~is_read).tolist():
            assert is_read.shape[0] == 1 or len(lr.blocks[j]) > 1 or lr.combined, \
                f"layer {lr.layer}: unread neuron {j} kept beside others"


def _cascade(dtype: Any = object) -> Network:
    """3 -> 5 relu -> 4 relu -> 2: neuron 1 of the first hidden layer has zero outgoing
    weights; neuron 3 is read only by neuron 2 of the second, which the output ignores."""
    rng = np.random.default_rng(0)
    w1, b1 = _q(rng, 5, 3), _q(rng, 5)
    w2 = np.array([[Fraction(int(x)) for x in row] for row in
                   [[1, 0, -2, 0, 3], [2, 0, 1, 0, -1], [1, 0, 1, 5, 1], [-1, 0, 2, 0, 1]]],
                  dtype=object)
    b2 = _q(rng, 4)
    w3 = np.array([[Fraction(1), Fraction(-1), Fraction(0), Fraction(2)],
                   [Fraction(1, 2), Fraction(1), Fraction(0), Fraction(1)]], dtype=object)
    layers = (Dense(w1, b1), Activation("relu"), Dense(w2, b2), Activation("relu"),
              Dense(w3, _q(rng, 2)))
    if dtype is not object:
        layers = tuple(Dense(np.asarray(lyr.weight, dtype=np.float64).astype(dtype),
                             np.asarray(lyr.bias, dtype=np.float64).astype(dtype))
                       if isinstance(lyr, Dense) else lyr for lyr in layers)
    return Network(layers, (3,))


@pytest.mark.parametrize("dtype", [object, np.float64])
@pytest.mark.parametrize("tolerance", [0.0, 1e-6])
def test_unread_neurons_are_removed_through_a_cascade(dtype: Any, tolerance: float) -> None:
    net = _cascade(dtype)
    assert _unread(net) == [{1, 3}, {2}]
    red = reduce_network(net, tolerance=tolerance)
    assert [lr.unused for lr in red.layers] == [(1, 3), (2,)]
    assert [lr.neurons_after for lr in red.layers] == [3, 3]
    assert red.summary()["layers"][0]["unused"] == 2
    cert = red.certificate
    assert cert is not None and cert["version"] == 4
    assert [e.get("unused") for e in cert["layers"]] == [[1, 3], [2]]
    res = check_certificate(net, red.network, cert)
    assert res.valid and res.exact, res
    _same_function(net, red.network, np.random.default_rng(1))
    _audit(red.network)
    _audit_read(red)


def test_a_network_without_unread_neurons_keeps_its_certificate_version() -> None:
    rng = np.random.default_rng(2)
    net = Network((Dense(_q(rng, 3, 2), _q(rng, 3)), Activation("relu"),
                   Dense(np.ones((2, 3), dtype=np.float64), np.zeros(2))), (2,))
    red = reduce_network(net)
    assert red.layers[0].unused == ()
    assert red.certificate is not None and red.certificate["version"] == 1
    assert all("unused" not in e for e in red.certificate["layers"])


def test_unread_conv_channels_through_a_conv_and_a_flatten() -> None:
    rng = np.random.default_rng(3)
    w2 = _q(rng, 3, 4, 2, 2)
    w2[:, 1] = Fraction(0)  # channel 1 of the first conv: zero filters in the second
    w3 = _q(rng, 2, 3 * 2 * 2)
    w3[:, 2 * 4: 3 * 4] = Fraction(0)  # channel 2 of the second conv: zero after flatten
    net = Network((Conv2d(_q(rng, 4, 1, 2, 2), _q(rng, 4)), Activation("relu"),
                   Conv2d(w2, _q(rng, 3)), Activation("relu"),
                   MaxPool2d((2, 2), (2, 2)), Flatten(),
                   Dense(w3, _q(rng, 2))), (1, 6, 6))
    assert _unread(net) == [{1}, {2}]
    red = reduce_network(net)
    assert [lr.unused for lr in red.layers] == [(1,), (2,)]
    res = check_certificate(net, red.network, red.certificate)
    assert res.valid and res.exact, res
    _same_function(net, red.network, rng, 3)
    _audit(red.network)
    _audit_read(red)


def test_checker_refuses_false_or_malformed_unused_claims() -> None:
    net = _cascade()
    red = reduce_network(net)
    cert = red.certificate
    assert cert is not None

    def read_neuron_called_unused(c: dict[str, Any]) -> None:
        # neuron 0 of the first layer is read: claim it unused (drop it from its block)
        layer = c["layers"][0]
        k = next(i for i, b in enumerate(layer["blocks"]) if b[0] == 0)
        layer["blocks"].pop(k)
        layer["rho"].pop(k)
        layer["unused"] = [0, *layer["unused"]]
        layer["neurons_after"] -= 1

    edits = {
        "version 3 cannot say it": lambda c: c.__setitem__("version", 3),
        "unused also in a block": lambda c: c["layers"][0]["unused"].append(0),
        "unused repeated": lambda c: c["layers"][1]["unused"].append(2),
        "unused out of range": lambda c: c["layers"][1].__setitem__("unused", [9]),
        "not a list": lambda c: c["layers"][1].__setitem__("unused", 2),
        "an unused neuron missing": lambda c: c["layers"][1].__setitem__("unused", []),
        "a read neuron called unused": read_neuron_called_unused,
    }
    _all_refused(net, red.network, cert, edits)
    # the same false claim with a reduced network that matches it (neuron 0's row and its
    # column in the next layer dropped, the hash updated): refused by the unused rule
    k = next(i for i, b in enumerate(red.layers[0].blocks) if b[0] == 0)
    layers = list(red.network.layers)
    first, second = layers[0], layers[2]
    assert isinstance(first, Dense) and isinstance(second, Dense)
    layers[0] = Dense(np.delete(first.weight, k, axis=0), np.delete(first.bias, k))
    layers[2] = Dense(np.delete(second.weight, k, axis=1), second.bias)
    forged = Network(tuple(layers), red.network.input_shape)
    forged_cert = _tampered(cert, read_neuron_called_unused)
    forged_cert["reduced"]["sha256"] = network_sha256(forged)
    forged_cert["reduced"]["neurons"][0] -= 1
    forged_cert["reduced"]["num_params"] = forged.num_params
    res = check_certificate(net, forged, forged_cert)
    assert not res.valid and "unused" in (res.condition or ""), res
    assert res.location.get("unused neuron") == 0, res


# ------------------------------------------------------------------ property
@st.composite
def _pruned_nets(draw: st.DrawFn) -> tuple[Network, int]:
    """Random dense networks in which some columns (outgoing weights of a neuron) and some
    rows (a neuron's incoming weights) were zeroed, as a structured pruning does."""
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    as_float = draw(st.booleans())  # float64 weights: dyadic values, so every fold is exact
    n_hidden = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, 3))] + [draw(st.integers(1, 5)) for _ in range(n_hidden)]
    sizes.append(draw(st.integers(1, 2)))
    layers: list[Any] = []
    for k in range(len(sizes) - 1):
        w = _q(rng, sizes[k + 1], sizes[k], dyadic=as_float)
        if k > 0:
            w[:, rng.random(sizes[k]) < 0.3] = Fraction(0)  # pruned outgoing weights
        w[rng.random(sizes[k + 1]) < 0.15] = Fraction(0)  # pruned incoming weights
        b = _q(rng, sizes[k + 1], dyadic=as_float)
        if draw(st.booleans()):
            b[rng.random(sizes[k + 1]) < 0.5] = Fraction(0)
        if draw(st.booleans()):  # duplicates, so that lumping has something to merge
            j = int(rng.integers(0, sizes[k + 1]))
            w[-1], b[-1] = w[j] * 2, b[j] * 2
        layers.append(Dense(w, b))
        if k < n_hidden:
            kind = draw(st.sampled_from(["relu", "leaky_relu", "identity", "tanh"]))
            layers.append(Activation(kind, alpha=Fraction(1, 4)) if kind == "leaky_relu"
                          else Activation(kind))
    net = Network(tuple(layers), (sizes[0],))
    if as_float:
        net = Network(tuple(Dense(np.asarray(lyr.weight, dtype=np.float64),
                                  np.asarray(lyr.bias, dtype=np.float64))
                            if isinstance(lyr, Dense) else lyr for lyr in layers),
                      (sizes[0],))
    return net, seed


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_pruned_nets())
def test_property_unread_neurons_are_exactly_the_removed_ones(case: tuple[Network, int]
                                                               ) -> None:
    net, seed = case
    want = _unread(net)
    for tolerance in (0.0, 1e-9):
        red = reduce_network(net, tolerance=tolerance)
        assert [set(lr.unused) for lr in red.layers] == want
        assert red.certificate is not None
        res = check_certificate(net, red.network, red.certificate)
        assert res.valid, res
        if res.exact:  # (else merged float sums were rounded, or tolerance mode deviated)
            _same_function(net, red.network, np.random.default_rng(seed), 3)
            _audit(red.network)
            _audit_read(red)


@pytest.mark.parametrize("channels, next_in", [(2, 1), (3, 4)])
def test_a_permute_that_moves_the_channels_before_a_conv_is_refused_by_name(
        channels: int, next_in: int) -> None:
    """The search for unread neurons looks at a convolution's input channels before the
    main loop checks them: a permute that moves the channel axis must still get the
    main loop's error, not a numpy one (a reshape, a broadcast)."""
    rng = np.random.default_rng(4)
    side = 1 if channels == 2 else 4
    net = Network((Conv2d(rng.standard_normal((channels, 1, 1, 1)), np.zeros(channels)),
                   Activation("relu"), Permute((1, 2, 0)),
                   Conv2d(rng.standard_normal((2, next_in, 1, 1)), np.zeros(2)), Flatten(),
                   Dense(rng.standard_normal((1, 2 * side * channels)), np.zeros(1))),
                  (1, side, side))
    with pytest.raises(UnsupportedLayerError, match=r"layer 3 .*move the channel axis"):
        reduce_network(net)
