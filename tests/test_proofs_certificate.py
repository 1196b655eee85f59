"""proofs.check_certificate: accepts nnreduce's certificates, rejects tampered ones.

Oracles: hand-written certificates for hand-built networks, networks whose
redundancy was planted by construction (so the right partition is known),
and the SMT backend / exact evaluation for the claim that a valid exact
certificate means equal functions.
"""

from __future__ import annotations

import copy
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_nn_reduce_fast import ACTS, _planted_mlp

import proofs
from lumpcore import CertificateError
from lumpkit._cli import COMPILE_NOTICE
from nnreduce import (
    Activation,
    Conv2d,
    Dense,
    Flatten,
    MaxPool2d,
    Network,
    evaluate_exact,
    load_network,
    network_sha256,
    reduce_network,
    save_network,
)

DATA = Path(__file__).parent / "data" / "proofs"


def _cert(net: Network, red: Network, layers: list[dict]) -> dict:
    return {"format": "lumpkit-nn-certificate", "version": 1, "mode": "exact",
            "tolerance": "0", "max_weight_deviation": "0",
            "original": {"sha256": network_sha256(net)},
            "reduced": {"sha256": network_sha256(red), "rounded": False},
            "layers": layers}


def erratum_pair() -> tuple[Network, Network, Network]:
    ex = proofs.erratum_example()
    # the sound reduction of THEORY section 3, by hand: o = -ReLU(ReLU(x))
    F = Fraction
    sound = Network((Dense(np.array([[F(1)]], dtype=object), np.array([F(0)], dtype=object)),
                     Activation("relu"),
                     Dense(np.array([[F(1)]], dtype=object), np.array([F(0)], dtype=object)),
                     Activation("relu"),
                     Dense(np.array([[F(-1)]], dtype=object), np.array([F(0)], dtype=object))),
                    (1,))
    return ex.original, sound, ex.reduced


def hand_layers(rho_t: str) -> list[dict]:
    return [
        {"layer": 0, "reduced_layer": 0, "factors": "positive", "neurons_before": 2,
         "neurons_after": 1, "blocks": [[0, 1]], "rho": [["1", "1/2"]], "removed": []},
        {"layer": 2, "reduced_layer": 2, "factors": "positive", "neurons_before": 2,
         "neurons_after": 1, "blocks": [[0, 1]], "rho": [["1", rho_t]], "removed": []},
    ]


def test_hand_written_certificate_of_the_erratum_network_is_valid() -> None:
    net, sound, _ = erratum_pair()
    res = proofs.check_certificate(net, sound, _cert(net, sound, hand_layers("1/2")))
    assert res.valid, res.message


def test_unscaled_definition_6_certificate_is_rejected_with_the_condition_named() -> None:
    # the printed Def. 6 merges v, t with rho 1; Def. 7 gives output weight 0
    net, _, paper = erratum_pair()
    res = proofs.check_certificate(net, paper, _cert(net, paper, hand_layers("1")))
    assert not res.valid
    assert res.condition == "scaled lumping condition rho(v)*c(v) = c(r)"
    assert res.location["layer"] == 2 and res.location["neuron"] == 1
    assert res.location["representative"] == 0
    # c(t) over block {u1, u2}: W(u1,t)/1 + W(u2,t)/(1/2) = 2, c(v) = 1: rho 1 gives 2 != 1
    assert res.values == {"rho(v)*c(v)": "2", "c(r)": "1"}


def test_lumpkit_certificate_valid_and_json_roundtrip(tmp_path: Path) -> None:
    net, _, _ = erratum_pair()
    red = reduce_network(net)
    path = tmp_path / "cert.json"
    path.write_text(json.dumps(red.certificate))
    for cert in (red.certificate, path, str(path), json.dumps(red.certificate)):
        assert proofs.check_certificate(net, red.network, cert).valid


@pytest.mark.parametrize("name", ["twin_ladder-5_inp-2_layers-5_width-1_margin.nnet",
                                  "twin_ladder-5_inp-4_layers-10_width-1_margin.nnet"])
def test_twin_networks_certificate_valid_and_equivalence_proved(name: str) -> None:
    net = load_network(DATA / name)
    red = reduce_network(net)
    assert red.neurons_after * 2 == red.neurons_before  # the README's fact: layers halve
    res = proofs.check_certificate(net, red.network, red.certificate)
    assert res.valid, res.message
    if not red.rounded:
        assert proofs.check_equivalence(net, red.network).equivalent


def planted_mlp(seed: int) -> Network:
    """A float network with exact proportional duplicates (factors powers of 2)."""
    rng = np.random.default_rng(seed)
    W1 = rng.integers(-4, 5, (3, 3)).astype(float) / 4
    W1 = np.vstack([W1, 2 * W1[0], 0.5 * W1[1], W1[0]])
    b1 = rng.integers(-4, 5, 3).astype(float) / 4
    b1 = np.concatenate([b1, [2 * b1[0], 0.5 * b1[1], b1[0]]])
    W2 = rng.integers(-4, 5, (4, 6)).astype(float) / 4
    W2 = np.vstack([W2, 4 * W2[2]])
    b2 = rng.integers(-4, 5, 4).astype(float) / 4
    b2 = np.concatenate([b2, [4 * b2[2]]])
    W3 = rng.integers(-4, 5, (2, 5)).astype(float) / 4
    return Network((Dense(W1, b1), Activation("relu"), Dense(W2, b2), Activation("relu"),
                    Dense(W3, np.zeros(2))), (3,))


TAMPERS = ["rho", "block_move", "block_merge", "removed", "weight", "hash", "bias",
           "neurons_after"]


@pytest.mark.parametrize("tamper", TAMPERS)
def test_tampered_certificate_is_rejected_with_condition_named(tamper: str) -> None:
    net = planted_mlp(3)
    red = reduce_network(net)
    assert proofs.check_certificate(net, red.network, red.certificate).valid
    cert = copy.deepcopy(red.certificate)
    rnet = red.network
    L0 = cert["layers"][0]
    merged = next(k for k, b in enumerate(L0["blocks"]) if len(b) > 1)
    if tamper == "rho":
        L0["rho"][merged][1] = str(Fraction(L0["rho"][merged][1]) * 3)
        want = "scaled lumping condition rho(v)*c(v) = c(r)"
    elif tamper == "block_move":
        v = L0["blocks"][merged].pop()
        L0["rho"][merged].pop()
        L0["blocks"].append([v])
        L0["rho"].append(["1"])
        order = sorted(range(len(L0["blocks"])), key=lambda k: L0["blocks"][k][0])
        L0["blocks"] = [L0["blocks"][k] for k in order]
        L0["rho"] = [L0["rho"][k] for k in order]
        L0["neurons_after"] += 1
        want = "reduced layer shape"  # a finer partition, but not the stored reduced network
    elif tamper == "block_merge":
        single = next(k for k, b in enumerate(L0["blocks"]) if len(b) == 1)
        L0["blocks"][merged] = sorted(L0["blocks"][merged] + L0["blocks"][single])
        L0["rho"][merged] = ["1"] * len(L0["blocks"][merged])
        del L0["blocks"][single], L0["rho"][single]
        L0["neurons_after"] -= 1
        want = None  # several conditions can fail first; any named one is fine
    elif tamper == "removed":
        v = L0["blocks"][merged].pop()
        L0["rho"][merged].pop()
        L0.setdefault("removed", []).append({"neuron": v, "value": "0", "reason": "dead"})
        want = "removed neuron has zero incoming weights"
    elif tamper in ("weight", "bias"):
        lay = list(rnet.layers)
        i = 2
        W = lay[i].weight.copy()
        b = lay[i].bias.copy()
        if tamper == "weight":
            W[0, 0] += 0.25
        else:
            b[0] += 0.25
        lay[i] = Dense(W, b)
        rnet = Network(tuple(lay), rnet.input_shape)
        cert["reduced"]["sha256"] = network_sha256(rnet)
        want = "reduced weight" if tamper == "weight" else "reduced bias"
    elif tamper == "hash":
        cert["original"]["sha256"] = "0" * 64
        want = "original network hash"
    else:
        L0["neurons_after"] += 1
        want = "neurons_after"
    res = proofs.check_certificate(net, rnet, cert)
    assert not res.valid
    assert res.condition
    if want is not None:
        assert res.condition == want, res.message
    assert tamper in ("hash",) or "layer" in res.location or "network" in res.location
    assert "violated" in res.message


def test_reduced_weight_violation_names_layer_neuron_and_values() -> None:
    net = planted_mlp(5)
    red = reduce_network(net)
    lay = list(red.network.layers)
    W = lay[4].weight.copy()
    W[1, 2] = W[1, 2] + 1.0
    lay[4] = Dense(W, lay[4].bias)
    rnet = Network(tuple(lay), red.network.input_shape)
    cert = copy.deepcopy(red.certificate)
    cert["reduced"]["sha256"] = network_sha256(rnet)
    res = proofs.check_certificate(net, rnet, cert)
    assert res.condition == "reduced weight"
    assert res.location["layer"] == 4 and res.location["reduced neuron"] == 1
    assert Fraction(res.values["stored"]) - Fraction(res.values["derived"]) == 1


def conv_net() -> Network:
    rng = np.random.default_rng(7)
    k = rng.integers(-3, 4, (2, 1, 3, 3)).astype(float)
    k = np.concatenate([k, 2 * k[:1]])  # channel 2 = 2 * channel 0
    b = np.array([0.5, -0.25, 1.0])
    W = rng.integers(-3, 4, (3, 3 * 2 * 2)).astype(float)
    return Network((Conv2d(k, b, (1, 1), (0, 0, 0, 0)), Activation("relu"),
                    MaxPool2d((2, 2), (1, 1)), Flatten(), Dense(W, np.zeros(3))), (1, 5, 5))


def test_conv_channels_certificate_valid_and_tamper_rejected() -> None:
    net = conv_net()
    red = reduce_network(net)
    assert red.neurons_after == 2
    assert proofs.check_certificate(net, red.network, red.certificate).valid
    x = np.arange(25).reshape(1, 5, 5) - 12
    assert list(evaluate_exact(net, x)) == list(evaluate_exact(red.network, x))
    cert = copy.deepcopy(red.certificate)
    cert["layers"][0]["rho"][0][1] = "1"
    res = proofs.check_certificate(net, red.network, cert)
    assert res.condition == "scaled lumping condition rho(v)*c(v) = c(r)"


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_valid_exact_certificates_mean_equal_outputs(seed: int) -> None:
    net = planted_mlp(seed)
    red = reduce_network(net)
    res = proofs.check_certificate(net, red.network, red.certificate)
    assert res.valid
    rng = np.random.default_rng(seed)
    if not red.rounded:
        for _ in range(5):
            x = [Fraction(int(v), 4) for v in rng.integers(-20, 21, 3)]
            assert list(evaluate_exact(net, x)) == list(evaluate_exact(red.network, x))


def test_malformed_certificates_raise() -> None:
    net, sound, _ = erratum_pair()
    with pytest.raises(CertificateError):
        proofs.check_certificate(net, sound, {"format": "something else"})
    bad = _cert(net, sound, hand_layers("1/2"))
    bad["layers"][0]["rho"][0][1] = 0.5  # a JSON number, not an exact string
    with pytest.raises(CertificateError, match="p/q"):
        proofs.check_certificate(net, sound, bad)
    with pytest.raises(CertificateError, match="JSON"):
        proofs.check_certificate(net, sound, "{not json")


def _random_planted(seed: int, pow2: bool) -> tuple[Network, list[int]]:
    """A random planted MLP of depth 1 to 3 (``_planted_mlp``) and its layer sizes."""
    rng = np.random.default_rng(seed)
    depth = 1 + seed % 3
    sizes = [int(rng.integers(1, 5))] + [int(rng.integers(1, 6)) for _ in range(depth)] + [2]
    kinds = [ACTS[int(rng.integers(0, len(ACTS)))] for _ in range(depth)]
    net, _ = _planted_mlp(rng, sizes, kinds, 4, pow2)
    return net, sizes


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), pow2=st.booleans(),
       tol=st.sampled_from([1e-9, 1e-6, 1e-3]))
def test_tolerance_mode_certificates_are_valid(seed: int, pow2: bool, tol: float) -> None:
    """Tolerance mode merges in float64 arithmetic: the checker accepts the
    documented rounding (2^-40 of the terms' size) and the ``rounded`` rule."""
    net, _ = _random_planted(seed, pow2)
    red = reduce_network(net, tolerance=tol)
    got = proofs.check_certificate(net, red.network, red.certificate)
    assert got.valid, (got.condition, got.location, got.values)
    merged = any(len(b) > 1 for lr in red.layers for b in lr.blocks)
    assert red.rounded == merged


def test_tolerance_mode_weight_beyond_the_rounding_bound_is_rejected() -> None:
    w1 = np.array([[1.0, 2.0], [3.0, 6.0], [1.0, -1.0]])  # neuron 1 = 3 * neuron 0
    net = Network((Dense(w1, [0.5, 1.5, 0.0]), Activation("relu"),
                   Dense([[0.1, 0.7, 1.0]], [0.0])), (2,))
    red = reduce_network(net, tolerance=1e-6)
    assert red.layers[0].blocks[0] == (0, 1)
    assert proofs.check_certificate(net, red.network, red.certificate).valid
    out = red.network.layers[2]
    w = out.weight.copy()
    w[0, 0] = np.nextafter(np.nextafter(w[0, 0], np.inf), np.inf)  # 2 ulps: within the bound
    near = Network((*red.network.layers[:2], Dense(w, out.bias)), (2,))
    cert = copy.deepcopy(red.certificate)
    cert["reduced"]["sha256"] = network_sha256(near)
    assert proofs.check_certificate(net, near, cert).valid
    w[0, 0] *= 1 + 2.0**-30  # far beyond 2^-40 of the terms
    far = Network((*red.network.layers[:2], Dense(w, out.bias)), (2,))
    cert["reduced"]["sha256"] = network_sha256(far)
    got = proofs.check_certificate(net, far, cert)
    assert not got.valid and got.condition == "reduced weight"


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_linear_dependence_certificates_are_checked(seed: int) -> None:
    """``combined`` blocks (linear layers, ``linear_dependence=True``): the checker
    re-derives c(t) = sum a * c(rep) and the columns they add to the next layer."""
    rng = np.random.default_rng(seed)
    n_in, base = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    w = rng.integers(-4, 5, size=(base, n_in)).astype(np.float64)
    b = rng.integers(-4, 5, size=base).astype(np.float64)
    rows, bias = list(w), list(b)
    for _ in range(int(rng.integers(1, 4))):  # combinations, and a multiple of one of them
        a = rng.integers(-2, 3, size=base).astype(np.float64)
        rows.append(a @ w)
        bias.append(float(a @ b))
        if rng.random() < 0.5:
            rows.append(2.0 * rows[-1])
            bias.append(2.0 * bias[-1])
    w1 = np.array(rows)
    n1 = w1.shape[0]
    net = Network((Dense(w1, bias), Activation("identity"),
                   Dense(rng.integers(-3, 4, size=(2, n1)).astype(np.float64), [0.0, 1.0]),
                   Activation("relu"), Dense([[1.0, -1.0]], [0.0])), (n_in,))
    red = reduce_network(net, linear_dependence=True)
    got = proofs.check_certificate(net, red.network, red.certificate)
    assert got.valid, (got.condition, got.location, got.values)
    x = np.array([Fraction(int(v), 3) for v in rng.integers(-9, 10, size=n_in)], dtype=object)
    got_out, want_out = evaluate_exact(red.network, x), evaluate_exact(net, x)
    if red.rounded:  # coefficients like 4/5: the float64 reduced weights are rounded
        assert np.allclose(got_out.astype(float), want_out.astype(float), rtol=1e-9, atol=1e-9)
    else:
        assert got_out.tolist() == want_out.tolist()
    entries = [e for e in red.certificate["layers"] if e.get("combined")]
    if entries:
        bad = copy.deepcopy(red.certificate)
        co = next(e for e in bad["layers"] if e.get("combined"))["combined"][0]["coefficients"]
        co[0][1] = str(Fraction(co[0][1]) + 1)
        assert not proofs.check_certificate(net, red.network, bad).valid
        gone = copy.deepcopy(red.certificate)
        for e in gone["layers"]:
            e.pop("combined", None)
        res = proofs.check_certificate(net, red.network, gone)
        assert not res.valid and res.condition == "partition"


# --- CheckResult.exact: does the certified reduction preserve the function exactly? ---
#
# Oracle: both networks evaluated in exact rational arithmetic (nnreduce.evaluate_exact)
# on random rational inputs of both signs.


def rational_inputs(seed: int, n_in: int, count: int = 20) -> list[list[Fraction]]:
    """``count`` inputs of ``n_in`` rationals p/q, |p/q| <= 8, both signs."""
    rng = np.random.default_rng(seed)
    return [[Fraction(int(p), int(q)) for p, q in zip(rng.integers(-40, 41, n_in),
                                                     rng.integers(1, 6, n_in), strict=True)]
            for _ in range(count)]


def outputs_equal(a: Network, b: Network, xs: list[list[Fraction]]) -> list[bool]:
    """Per input: whether every output of ``a`` equals that of ``b`` (exact arithmetic)."""
    return [evaluate_exact(a, x).tolist() == evaluate_exact(b, x).tolist() for x in xs]


def unrelated_mlp() -> Network:
    """3 -> 6 -> 4 -> 2 ReLU, generic float weights (no two neurons nearly proportional),
    and neuron 5 of the first hidden layer dead (zero weights, bias -1)."""
    rng = np.random.default_rng(11)
    W1, b1 = rng.standard_normal((6, 3)), rng.standard_normal(6)
    W1[5], b1[5] = 0.0, -1.0
    return Network((Dense(W1, b1), Activation("relu"),
                    Dense(rng.standard_normal((4, 6)), rng.standard_normal(4)),
                    Activation("relu"),
                    Dense(rng.standard_normal((2, 4)), rng.standard_normal(2))), (3,))


def dyadic_planted_mlp(perturb: float = 0.0, part: str = "weights",
                       outgoing: str = "dyadic") -> Network:
    """3 -> 6 -> 2 ReLU with weights k/8; hidden neuron 4 is 2 * neuron 0 and neuron 5 is
    1/4 * neuron 2 (weights and bias: exact in float64). ``perturb``: neuron 4's weights
    (``part="weights"``) or its bias (``"bias"``) times ``1 + perturb``.
    ``outgoing="normal"``: generic float output weights, so that the merged output weights
    are sums that float64 rounds."""
    rng = np.random.default_rng(5)
    W1 = rng.integers(-8, 9, (4, 3)).astype(float) / 8
    b1 = rng.integers(-8, 9, 4).astype(float) / 8
    assert b1[0] != 0 and np.abs(W1[0]).max() > abs(b1[0])  # the bias is no row's maximum
    fw, fb = (1 + perturb, 1.0) if part == "weights" else (1.0, 1 + perturb)
    W1 = np.vstack([W1, 2 * W1[0] * fw, 0.25 * W1[2]])
    b1 = np.concatenate([b1, [2 * b1[0] * fb, 0.25 * b1[2]]])
    W2 = (rng.integers(-8, 9, (2, 6)).astype(float) / 8 if outgoing == "dyadic"
          else rng.standard_normal((2, 6)))
    return Network((Dense(W1, b1), Activation("relu"), Dense(W2, [0.5, -0.25])), (3,))


def test_tolerance_mode_without_merges_is_exact() -> None:
    net = unrelated_mlp()
    red = reduce_network(net, tolerance=1e-6)
    cert = red.certificate
    assert cert["mode"] == "tolerance"
    assert all(len(b) == 1 for lr in red.layers for b in lr.blocks)  # nothing merged
    assert [n for n, _ in red.layers[0].removed] == [5]  # the dead neuron, value 0
    assert cert["reduced"]["rounded"] is False
    res = proofs.check_certificate(net, red.network, cert)
    assert res.valid, res.message
    assert res.exact is True and res.to_json()["exact"] is True
    assert all(outputs_equal(net, red.network, rational_inputs(1, 3)))


def test_tolerance_mode_exactly_proportional_merges_are_exact() -> None:
    """Tolerance mode flags every merge ``rounded`` (it merges in float64 arithmetic); the
    checker finds these float64 merges exact (deviation 0, nothing rounded)."""
    net = dyadic_planted_mlp()
    red = reduce_network(net, tolerance=1e-6)
    cert = red.certificate
    assert cert["mode"] == "tolerance"
    assert cert["layers"][0]["blocks"] == [[0, 4], [1], [2, 5], [3]]
    assert cert["layers"][0]["rho"] == [["1", "1/2"], ["1"], ["1", "4"], ["1"]]
    assert cert["reduced"]["rounded"] is True  # nnreduce's rule, not a rounding
    res = proofs.check_certificate(net, red.network, cert)
    assert res.valid, res.message
    assert res.exact is True
    assert all(outputs_equal(net, red.network, rational_inputs(2, 3)))


@pytest.mark.parametrize("part", ["weights", "bias"])
def test_tolerance_mode_near_proportional_merge_is_not_exact(part: str) -> None:
    net = dyadic_planted_mlp(perturb=1e-9, part=part)
    red = reduce_network(net, tolerance=1e-6)
    layer = red.certificate["layers"][0]
    assert layer["blocks"] == [[0, 4], [1], [2, 5], [3]]  # merged: only nearly proportional
    res = proofs.check_certificate(net, red.network, red.certificate)
    assert res.valid, res.message  # within max_weight_deviation
    assert res.exact is False and res.to_json()["exact"] is False
    # and rightly so: the reduced network computes another function
    assert not all(outputs_equal(net, red.network, rational_inputs(3, 3)))
    if part == "bias":
        # rho 1/2 from the (unperturbed) weights: every reduced weight and bias is exactly
        # the one Def. 7 gives, so only the deviation of the bias condition makes it inexact
        assert layer["rho"] == [["1", "1/2"], ["1"], ["1", "4"], ["1"]]
        W1, b1 = net.layers[0].weight, net.layers[0].bias
        W2, b2 = net.layers[2].weight, net.layers[2].bias
        assert red.network.layers[0].weight.tolist() == W1[[0, 1, 2, 3]].tolist()
        assert red.network.layers[0].bias.tolist() == b1[[0, 1, 2, 3]].tolist()
        F = Fraction
        want = [[F(W2[o, 0]) + 2 * F(W2[o, 4]), F(W2[o, 1]), F(W2[o, 2]) + F(W2[o, 5]) / 4,
                 F(W2[o, 3])] for o in range(2)]
        assert [[F(w) for w in row] for row in red.network.layers[2].weight.tolist()] == want
        assert red.network.layers[2].bias.tolist() == b2.tolist()


def test_exact_mode_exact_field_is_not_rounded() -> None:
    net = dyadic_planted_mlp()
    red = reduce_network(net)
    assert red.certificate["mode"] == "exact" and not red.rounded
    res = proofs.check_certificate(net, red.network, red.certificate)
    assert res.valid and res.exact is True
    assert all(outputs_equal(net, red.network, rational_inputs(4, 3)))
    # generic output weights: the merged ones w(0) + 2 w(4) are rounded to float64
    net = dyadic_planted_mlp(outgoing="normal")
    red = reduce_network(net)
    assert red.certificate["mode"] == "exact" and red.rounded
    res = proofs.check_certificate(net, red.network, red.certificate)
    assert res.valid and res.exact is False
    assert not all(outputs_equal(net, red.network, rational_inputs(5, 3)))
    # a rejected certificate says nothing exact
    bad = copy.deepcopy(red.certificate)
    bad["layers"][0]["rho"][0][1] = "1"
    res = proofs.check_certificate(net, red.network, bad)
    assert not res.valid and res.exact is False


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), pow2=st.booleans(),
       tol=st.sampled_from([0.0, 1e-9, 1e-6, 1e-3]))
def test_exact_field_means_equal_outputs(seed: int, pow2: bool, tol: float) -> None:
    """Whatever the mode: ``exact`` True means equal outputs in exact arithmetic; in exact
    mode it is ``not rounded``."""
    net, sizes = _random_planted(seed, pow2)
    red = reduce_network(net, tolerance=tol)
    got = proofs.check_certificate(net, red.network, red.certificate)
    assert got.valid, got.message
    if tol == 0:
        assert got.exact is (not red.rounded)
    if got.exact:
        assert all(outputs_equal(net, red.network, rational_inputs(seed, sizes[0], 5)))


def test_linear_dependence_with_a_factor_that_is_no_power_of_two() -> None:
    """Regression (hypothesis seed 9414788 above): neurons 1 and 2 merge with rho 4/3 next
    to combined blocks, so the next layer is merged by nnreduce._merge, whose compiled pass
    builds such columns times an integer; they were used undivided (the checker rejected
    the reduced weight, 6 stored for 12 derived, and the outputs differed)."""
    w1 = np.array([[3.0], [4.0], [3.0], [6.0], [12.0], [7.0], [14.0], [11.0], [22.0]])
    b1 = [-2.0, 0.0, 0.0, -4.0, -8.0, -2.0, -4.0, -4.0, -8.0]
    w2 = np.array([[1.0, -2.0, 0.0, -3.0, -3.0, 3.0, 3.0, 0.0, 2.0],
                   [-1.0, 2.0, 3.0, -2.0, -2.0, 1.0, -1.0, -2.0, 2.0]])
    net = Network((Dense(w1, b1), Activation("identity"), Dense(w2, [0.0, 1.0]),
                   Activation("relu"), Dense([[1.0, -1.0]], [0.0])), (1,))
    red = reduce_network(net, linear_dependence=True)
    layer = red.certificate["layers"][0]
    assert layer["blocks"] == [[0, 3, 4], [1, 2]] and layer["rho"][1] == ["1", "4/3"]
    assert [c["block"] for c in layer["combined"]] == [[5, 6], [7, 8]]
    got = proofs.check_certificate(net, red.network, red.certificate)
    assert got.valid, got.message
    # by hand, M[0, 1] = -2 + 0 / (4/3) + 1 * (3 + 3 / (1/2)) + 5/4 * (0 + 2 / (1/2)) = 12
    assert red.network.layers[2].weight[0, 1] == 12.0
    assert all(outputs_equal(net, red.network, rational_inputs(9, 1)))



@pytest.mark.parametrize("bad", [
    b'{"format": ' + b"9" * 5000 + b"}",  # more digits than Python converts
    b"[" * 100000 + b"]" * 100000,  # nested too deeply for the parser
    b'{"format": "lumpkit-nn-certificate", "x": "\xff\xfe"}',  # not UTF-8
])
def test_corrupt_certificate_files_are_one_line_errors(tmp_path: Path, bad: bytes) -> None:
    """Exit 2 with one line, never a traceback: exit 1 means 'counterexample found'."""
    import subprocess
    import sys

    net, _, _ = erratum_pair()
    red = reduce_network(net)
    save_network(net, tmp_path / "o.npz")
    save_network(red.network, tmp_path / "r.npz")
    (tmp_path / "bad.json").write_bytes(bad)
    with pytest.raises(CertificateError, match="certificate is not"):
        proofs.check_certificate(net, red.network, tmp_path / "bad.json")
    r = subprocess.run([sys.executable, "-m", "lumpkit", "nn", "verify", str(tmp_path / "o.npz"),
                        str(tmp_path / "r.npz"), "--certificate", str(tmp_path / "bad.json")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    lines = [x for x in r.stderr.strip().splitlines() if x != COMPILE_NOTICE]
    assert len(lines) == 1 and lines[0].startswith("lumpkit: error: "), r.stderr


def test_ill_typed_or_wrong_informational_fields_are_refused() -> None:
    net, _, _ = erratum_pair()
    red = reduce_network(net)
    good = red.certificate
    assert proofs.check_certificate(net, red.network, good).valid
    float_layer = json.loads(json.dumps(good))
    float_layer["layers"][0]["layer"] = 0.0
    with pytest.raises(CertificateError, match=r"layers\[0\] layer: expected an integer"):
        proofs.check_certificate(net, red.network, float_layer)
    no_dev = json.loads(json.dumps(good))
    del no_dev["max_weight_deviation"]
    with pytest.raises(CertificateError, match="needs 'max_weight_deviation'"):
        proofs.check_certificate(net, red.network, no_dev)
    for key in ("original", "reduced"):
        wrong = json.loads(json.dumps(good))
        wrong[key]["neurons"] = [n + 1 for n in wrong[key]["neurons"]]
        res = proofs.check_certificate(net, red.network, wrong)
        assert not res.valid and res.condition == "neurons per linear layer"
        assert res.location == {"network": key}
        absent = json.loads(json.dumps(good))
        del absent[key]["neurons"]  # optional: checked when given
        assert proofs.check_certificate(net, red.network, absent).valid
