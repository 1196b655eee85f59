"""Soundness regressions of ``proofs.check_certificate`` (the certificate-fuzzing campaign).

Each tampered triple here was accepted by an earlier checker although the reduced
network computes another function.  Whether two networks differ is decided by the
small exact evaluator below (``fractions.Fraction``, written from the layer
definitions of docs/certificate-format.md), never by nnreduce's evaluators or by
output of the code under test.
"""

from __future__ import annotations

import copy
import json
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from lumpcore import CertificateError
from nnreduce import (
    Activation,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dense,
    Flatten,
    Network,
    network_sha256,
    reduce_network,
)
from proofs import check_certificate

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


# ----------------------------------------------------------------- the oracle
def _q(x: Any) -> Fraction:
    return x if isinstance(x, Fraction) else Fraction(float(x)) if isinstance(
        x, float | np.floating) else Fraction(x)


def _act(layer: Activation, v: Fraction, c: int) -> Fraction:
    if layer.kind == "identity":
        return v
    if layer.kind == "relu":
        return max(v, Fraction(0))
    if layer.kind == "prelu":
        assert layer.slopes is not None
        s = layer.slopes[c] if layer.slopes.shape[0] > 1 else layer.slopes[0]
        return v if v > 0 else _q(s) * v
    raise NotImplementedError(layer.kind)


def _oracle(net: Network, x: list[Any]) -> list[Fraction]:
    """Exact output of ``net`` at the flat input ``x`` (dense, conv, flatten, batch norm,
    relu, prelu, identity); channels are axis 0."""
    a = np.empty(len(x), dtype=object)
    a[:] = [_q(v) for v in x]
    a = a.reshape(net.input_shape)
    for layer in net.layers:
        if isinstance(layer, Dense):
            w, b = layer.weight, layer.bias
            out = np.empty(w.shape[0], dtype=object)
            for o in range(w.shape[0]):
                out[o] = sum((_q(w[o, j]) * a[j] for j in range(w.shape[1])), _q(b[o]))
            a = out
        elif isinstance(layer, Conv2d):
            w, (sh, sw) = layer.weight, layer.stride
            top, left, bottom, right = layer.padding
            n_o, n_c, kh, kw = w.shape
            _, h, wd = a.shape
            ho, wo = (h + top + bottom - kh) // sh + 1, (wd + left + right - kw) // sw + 1
            out = np.empty((n_o, ho, wo), dtype=object)
            for o, i, j in np.ndindex(n_o, ho, wo):
                s = _q(layer.bias[o])
                for c, di, dj in np.ndindex(n_c, kh, kw):
                    y, z = i * sh + di - top, j * sw + dj - left
                    if 0 <= y < h and 0 <= z < wd:
                        s += _q(w[o, c, di, dj]) * a[c, y, z]
                out[o, i, j] = s
            a = out
        elif isinstance(layer, AvgPool2d):
            (kh, kw), (sh, sw) = layer.kernel, layer.stride
            top, left, bottom, right = layer.padding
            n_c, h, wd = a.shape
            ho, wo = (h + top + bottom - kh) // sh + 1, (wd + left + right - kw) // sw + 1
            out = np.empty((n_c, ho, wo), dtype=object)
            for c, i, j in np.ndindex(n_c, ho, wo):
                vals = [a[c, i * sh + di - top, j * sw + dj - left]
                        for di, dj in np.ndindex(kh, kw)
                        if 0 <= i * sh + di - top < h and 0 <= j * sw + dj - left < wd]
                out[c, i, j] = sum(vals, Fraction(0)) / (
                    kh * kw if layer.count_include_pad else len(vals))
            a = out
        elif isinstance(layer, Flatten):
            a = a.reshape(-1)
        elif isinstance(layer, BatchNorm):
            out = np.empty(a.shape, dtype=object)
            for idx in np.ndindex(*a.shape):
                out[idx] = _q(layer.scale[idx[0]]) * a[idx] + _q(layer.shift[idx[0]])
            a = out
        elif isinstance(layer, Activation):
            out = np.empty(a.shape, dtype=object)
            for idx in np.ndindex(*a.shape):
                out[idx] = _act(layer, a[idx], idx[0])
            a = out
        else:
            raise NotImplementedError(type(layer).__name__)
    return list(a.reshape(-1))


_INPUTS = [[Fraction(s * (k + 1), 3 + (k * j) % 5) for j in range(9)]
           for k in range(4) for s in (1, -1)]


def _same_function(a: Network, b: Network) -> bool:
    """False when the oracle finds an input where the outputs (or the shapes) differ."""
    if a.input_shape != b.input_shape or a.output_shape != b.output_shape:
        return False
    n = int(np.prod(a.input_shape))
    return all(_oracle(a, x[:n]) == _oracle(b, x[:n]) for x in _INPUTS)


def _forged(orig: Network, red: Network, cert: dict[str, Any]) -> dict[str, Any]:
    """``cert`` with the hashes of the tampered networks (what a forger would write)."""
    c = copy.deepcopy(cert)
    c["original"]["sha256"] = network_sha256(orig)
    c["reduced"]["sha256"] = network_sha256(red)
    return c


def _with_layer(net: Network, pos: int, layer: Any) -> Network:
    layers = list(net.layers)
    layers[pos] = layer
    return Network(tuple(layers), net.input_shape, net.normalization)


def _cert(orig: Network, red: Network, layers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"format": "lumpkit-nn-certificate", "version": 1, "mode": "exact",
            "tolerance": "0", "max_weight_deviation": "0",
            "original": {"sha256": network_sha256(orig)},
            "reduced": {"sha256": network_sha256(red), "number_type": "float64",
                        "rounded": False},
            "layers": layers}


def _entry(n: int, blocks: list[list[int]], rho: list[list[str]], factors: str,
           removed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"layer": 0, "reduced_layer": 0, "factors": factors, "neurons_before": n,
            "neurons_after": len(blocks), "blocks": blocks, "rho": rho,
            "removed": removed or []}


# --------------------------------------------- parameters of non-linear layers
def _prelu_bn_net() -> Network:
    """shared PReLU before the first layer, a PReLU layer with two proportional neurons
    (1 and 2 * neuron 0), batch norm and a shared PReLU after the output layer."""
    return Network((Activation("prelu", slopes=[0.5]),
                    Dense([[1.0, -1.0], [2.0, -2.0], [1.0, 1.0]], [0.0, 0.0, 1.0]),
                    Activation("prelu", slopes=[0.25]),
                    Dense([[1.0, 1.0, -1.0], [0.5, 2.0, 1.0]], [0.0, 1.0]),
                    BatchNorm([2.0, 3.0], [1.0, -1.0]), Activation("prelu", slopes=[0.125])),
                   (2,))


@pytest.mark.parametrize("pos, layer", [
    (0, Activation("prelu", slopes=[0.75])),                  # before the first linear layer
    (2, Activation("prelu", slopes=[0.5])),                   # shared slope, hidden post-op
    (4, BatchNorm([2.0, 3.0], [1.0, -2.0])),                  # after the output layer
    (4, BatchNorm([2.0, 4.0], [1.0, -1.0])),
    (5, Activation("prelu", slopes=[0.25])),
])
def test_changed_layer_parameters_are_rejected(pos: int, layer: Any) -> None:
    net = _prelu_bn_net()
    red = reduce_network(net)
    assert red.layers[0].neurons_after == 2
    assert check_certificate(net, red.network, red.certificate).valid
    assert _same_function(net, red.network)
    bad = _with_layer(red.network, pos, layer)
    assert not _same_function(net, bad)
    res = check_certificate(net, bad, _forged(net, bad, red.certificate))
    assert not res.valid
    assert res.location == {"layer": pos}
    # the same change made to the original instead
    bad_orig = _with_layer(net, pos, layer)
    assert not _same_function(bad_orig, red.network)
    assert not check_certificate(bad_orig, red.network,
                                 _forged(bad_orig, red.network, red.certificate)).valid


def test_batch_norm_of_hidden_layer_restricted_and_equal_in_blocks() -> None:
    # neurons 0 and 1 have equal rows and equal batch-norm parameters, neuron 2 does not
    net = Network((Dense([[1.0], [1.0], [1.0]], [0.0, 0.0, 0.0]),
                   BatchNorm([1.0, 1.0, 3.0], [0.5, 0.5, 0.5]), Activation("relu"),
                   Dense([[1.0, 2.0, -1.0]], [0.0])), (1,))
    red = reduce_network(net)
    assert red.layers[0].blocks == ((0, 1), (2,))
    assert check_certificate(net, red.network, red.certificate).valid
    assert _same_function(net, red.network)
    # the reduced batch norm must hold the representatives' parameters
    bad = _with_layer(red.network, 1, BatchNorm([1.0, 1.0], [0.5, 0.5]))
    assert not _same_function(net, bad)
    res = check_certificate(net, bad, _forged(net, bad, red.certificate))
    assert not res.valid and res.condition == "batchnorm scale restricted to representatives"
    # merging neuron 2 (equal incoming row, other batch norm) is wrong
    merged = Network((Dense([[1.0]], [0.0]), BatchNorm([1.0], [0.5]), Activation("relu"),
                      Dense([[2.0]], [0.0])), (1,))
    assert not _same_function(net, merged)
    cert = _cert(net, merged, [_entry(3, [[0, 1, 2]], [["1", "1", "1"]], "one")])
    res = check_certificate(net, merged, cert)
    assert not res.valid and res.condition == "equal batchnorm scale in a block"


def test_per_channel_layer_after_flatten_cannot_hide_a_merge() -> None:
    # conv channels 0 and 1 are equal; after the flatten the PReLU has one slope per
    # feature (0.5 for channel 0's features, 0.125 for channel 1's): merging is wrong
    net = Network((Conv2d(np.ones((2, 1, 1, 1)), [0.0, 0.0]), Flatten(),
                   Activation("prelu", slopes=[0.5, 0.5, 0.125, 0.125]),
                   Dense(np.ones((1, 4)), [0.0])), (1, 2, 1))
    bad = Network((Conv2d(np.ones((1, 1, 1, 1)), [0.0]), Flatten(),
                   Activation("prelu", slopes=[0.5]), Dense(np.full((1, 2), 2.0), [0.0])),
                  (1, 2, 1))
    assert not _same_function(net, bad)
    res = check_certificate(net, bad, _cert(net, bad, [_entry(2, [[0, 1]], [["1", "1"]],
                                                              "positive")]))
    assert not res.valid
    assert res.condition == "channel axis of a per-channel layer is the neuron axis"


def test_per_feature_prelu_after_the_output_layer_is_kept() -> None:
    # after the output layer nothing is restricted: a per-feature PReLU stays as it is
    net = Network((Conv2d(np.array([1.0, 2.0]).reshape(2, 1, 1, 1), [0.0, 0.0]),
                   Activation("relu"),
                   Conv2d(np.array([1.0, -1.0, 0.5, 2.0]).reshape(2, 2, 1, 1), [0.0, 1.0]),
                   Flatten(), Activation("prelu", slopes=np.linspace(0.125, 1.0, 8))),
                  (1, 2, 2))
    red = reduce_network(net)
    assert red.layers[0].neurons_after == 1
    assert _same_function(net, red.network)
    assert check_certificate(net, red.network, red.certificate).valid


# ------------------------------------------------------- shapes of the network
def test_transposed_convolution_kernel_is_rejected() -> None:
    # a 1x3 kernel stored as 3x1: same numbers in the same order, another function
    net = Network((Conv2d(np.arange(6.0).reshape(2, 1, 1, 3), [0.0, 1.0]),
                   Activation("relu"), Flatten(), Dense(np.ones((1, 6)), [0.0])), (1, 3, 3))
    red = reduce_network(net)
    w = red.network.layers[0].weight
    bad = _with_layer(red.network, 0, Conv2d(np.ascontiguousarray(w.reshape(2, 1, 3, 1)),
                                             red.network.layers[0].bias))
    assert not _same_function(net, bad)
    res = check_certificate(net, bad, _forged(net, bad, red.certificate))
    assert not res.valid and res.condition == "unchanged convolution geometry"


def test_changed_input_shape_is_rejected() -> None:
    net = Network((Conv2d(np.ones((2, 1, 2, 2)), [0.0, 0.0]), Activation("relu"),
                   Conv2d(np.ones((1, 2, 1, 1)), [0.0])), (1, 3, 3))
    red = reduce_network(net)
    bad = Network(red.network.layers, (1, 4, 4))
    assert not _same_function(net, bad)
    res = check_certificate(net, bad, _forged(net, bad, red.certificate))
    assert not res.valid and res.condition == "unchanged input shape"


# ------------------------------------------------------- malformed certificates
def _rounded_pair() -> tuple[Network, Any]:
    """A float reduction whose merged weight 1 + 3 * 0.1 is rounded (rounded: true)."""
    net = Network((Dense([[1.0], [3.0]], [0.0, 0.0]), Activation("relu"),
                   Dense([[1.0, 0.1]], [0.0])), (1,))
    return net, reduce_network(net)


@pytest.mark.parametrize("flag", [None, "missing", "false", 0])
def test_rounded_flag_must_be_a_boolean(flag: Any, tmp_path: Any) -> None:
    net, red = _rounded_pair()
    # the stored weight is not the exact derived value: not the same function
    assert Fraction(0.1) * 3 + 1 != Fraction(float(red.network.layers[2].weight[0, 0]))
    assert not _same_function(net, red.network)
    assert red.certificate["reduced"]["rounded"] is True
    cert = copy.deepcopy(red.certificate)
    if flag == "missing":
        del cert["reduced"]["rounded"]
    else:
        cert["reduced"]["rounded"] = flag
    with pytest.raises(CertificateError, match=r"reduced\.rounded"):
        check_certificate(net, red.network, cert)
    # lumpkit nn verify read a null flag as "not rounded" and printed "equivalent"
    from lumpkit._cli import main
    from nnreduce import save_network
    save_network(net, tmp_path / "o.npz")
    save_network(red.network, tmp_path / "r.npz")
    (tmp_path / "c.json").write_text(json.dumps(cert))
    assert main(["nn", "verify", str(tmp_path / "o.npz"), str(tmp_path / "r.npz"),
                 "--certificate", str(tmp_path / "c.json")]) == 2


@pytest.mark.parametrize("text", ["1e999999999", "0.5", "2/4", "3/1", "-0", " 1/2", "1_0/2_0",
                                  "1/" + "3" * 5000, "1/0"])
def test_numbers_outside_the_format_are_refused(text: str) -> None:
    net = Network((Dense([[1.0], [2.0]], [0.0, 0.0]), Activation("relu"),
                   Dense([[1.0, 1.0]], [0.0])), (1,))
    red = reduce_network(net)
    cert = copy.deepcopy(red.certificate)
    cert["layers"][0]["rho"][0][1] = text
    with pytest.raises(CertificateError, match="rho of block 0"):
        check_certificate(net, red.network, cert)


def test_removed_twice_and_negative_counts_are_refused() -> None:
    net = Network((Dense([[1.0], [0.0]], [0.0, -1.0]), Activation("relu"),
                   Dense([[1.0, 1.0]], [0.0])), (1,))
    red = reduce_network(net)
    assert red.certificate["layers"][0]["removed"][0]["neuron"] == 1
    cert = copy.deepcopy(red.certificate)
    cert["layers"][0]["removed"].append({"neuron": 1, "value": "5", "reason": "constant"})
    with pytest.raises(CertificateError, match="removed twice"):
        check_certificate(net, red.network, cert)
    cert = copy.deepcopy(red.certificate)
    cert["layers"][0].update(blocks=[], rho=[], removed=[], neurons_before=-1, neurons_after=0)
    with pytest.raises(CertificateError, match="neurons_before"):
        check_certificate(net, red.network, cert)
    cert = copy.deepcopy(red.certificate)
    cert["version"] = 1.0
    with pytest.raises(CertificateError, match="version"):
        check_certificate(net, red.network, cert)


def test_derived_weight_beyond_float64_is_a_violation() -> None:
    # rho = 2^-1000 makes the merged weight 1 + 2^1100: no finite float64 stores it
    net = Network((Dense([[1.0], [2.0**1000]], [0.0, 0.0]), Activation("relu"),
                   Dense([[1.0, 2.0**100]], [0.0])), (1,))
    red = Network((Dense([[1.0]], [0.0]), Activation("relu"), Dense([[1.0]], [0.0])), (1,))
    assert _oracle(net, [1]) == [1 + Fraction(2) ** 1100] != _oracle(red, [1])
    cert = _cert(net, red, [_entry(2, [[0, 1]], [["1", "1/" + str(2**1000)]], "positive")])
    res = check_certificate(net, red, cert)
    assert not res.valid and res.condition == "reduced weight"


@pytest.mark.parametrize("placeholder", [False, True])
def test_constant_through_padded_average_pool_is_not_removable(placeholder: bool) -> None:
    """A constant channel (zero filter, bias 1) through an average pool whose padding counts
    is 1 inside but 1/2 at the border; a batch norm shift -1 makes the inside 0.  Removing
    it "with value 0" (alone, or with the layer's other channel as a placeholder) is
    forged: the checker must see that the channel is not constant after the pool."""
    def o(a: Any) -> np.ndarray:
        return np.array(a, dtype=object)

    w = o([[[[0, 0], [0, 0]]], [[[1, -1], [2, 1]]]])
    if placeholder:
        w[1] = 0
    pool = AvgPool2d((2, 2), (1, 1), (1, 1, 0, 0), True)
    bn = BatchNorm(o([1, 1]), o([-1, -1 if placeholder else 0]))
    dense_w = o([[k + 1 for k in range(8)]])
    net = Network((Conv2d(w, o([1, 1])), Activation("relu"), pool, bn, Flatten(),
                   Dense(dense_w, o([0]))), (1, 3, 3))
    honest = reduce_network(net)
    assert honest.layers[0].removed == () and honest.layers[0].neurons_after == 2 - placeholder
    assert check_certificate(net, honest.network, honest.certificate).valid
    assert _same_function(net, honest.network)

    keep = [0] if placeholder else [1]
    forged = Network((Conv2d(w[keep], o([1])), Activation("relu"), pool,
                      BatchNorm(bn.scale[keep], bn.shift[keep]), Flatten(),
                      Dense(o([[0] * 4]) if placeholder else dense_w[:, 4:], o([0]))), (1, 3, 3))
    assert not _same_function(net, forged)
    entry = _entry(2, [] if placeholder else [[1]], [] if placeholder else [["1"]],
                   "one", [{"neuron": 0, "value": "0"}]
                   + ([{"neuron": 1, "value": "0"}] if placeholder else []))
    cert = _cert(net, forged, [entry])
    cert["reduced"]["number_type"] = "rational"
    cert["version"] = 3 if placeholder else 2  # removals under factors "one"
    if placeholder:
        entry.update(placeholder=0, neurons_after=1)
    res = check_certificate(net, forged, cert)
    assert not res.valid and res.condition == "removed neuron value", res


@pytest.mark.parametrize("bad", [1.0, True, "1"])
def test_neurons_after_must_be_an_integer(bad: Any) -> None:
    net = Network((Dense([[1.0], [2.0]], [0.0, 0.0]), Activation("relu"),
                   Dense([[1.0, 1.0]], [0.0])), (1,))
    red = reduce_network(net)
    cert = copy.deepcopy(red.certificate)
    assert cert["layers"][0]["neurons_after"] == 1
    cert["layers"][0]["neurons_after"] = bad
    with pytest.raises(CertificateError, match="neurons_after"):
        check_certificate(net, red.network, cert)


def test_a_violation_of_the_whole_network_names_no_empty_place() -> None:
    # an exact reduction (factor 2) whose certificate claims it was rounded
    net = Network((Dense([[1.0], [2.0]], [0.0, 0.0]), Activation("relu"),
                   Dense([[1.0, 1.0]], [0.0])), (1,))
    red = reduce_network(net)
    cert = copy.deepcopy(red.certificate)
    assert cert["reduced"]["rounded"] is False
    cert["reduced"]["rounded"] = True
    res = check_certificate(net, red.network, _forged(net, red.network, cert))
    assert not res.valid and res.condition == "reduced.rounded flag"
    assert res.message.startswith("violated: reduced.rounded flag: ")
    assert " at " not in res.message
