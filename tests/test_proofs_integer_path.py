"""proofs.check_certificate's exact float path for factors such as 3 or 5/7.

The checker proves ``rho(v) * c(v) = c(r)`` and the stored merged weights in
float64 where every product (a weight times an integer below ``2**53``) and
every sum is exact, and falls back to Fractions elsewhere.  Oracles: exact
Fractions for the product helper, and the checker's own Fraction path
(forced by counting every float product as inexact) for whole certificates:
both paths must give the same verdict on genuine, tampered and forged inputs.
"""

from __future__ import annotations

import copy
import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import proofs
import proofs._nncert as nncert
from nnreduce import Activation, Dense, Network, network_sha256, reduce_network

F = Fraction
#: factors whose products with the planted integer weights stay integers (210 = 2 * 3 * 5 * 7)
FACTORS = [F(3), F(1, 3), F(5, 7), F(7, 5), F(6), F(2), F(1, 2)]
UNIT = 210


@settings(max_examples=400, deadline=None)
@given(x=st.floats(allow_nan=False, allow_infinity=False),
       k=st.integers(-(2**53) + 1, 2**53 - 1))
def test_a_product_counted_exact_is_exact(x: float, k: int) -> None:
    y, exact = nncert._int_products(np.array([x]), k)
    if exact[0]:
        assert F(float(y[0])) == F(x) * k


@settings(max_examples=200, deadline=None)
@given(m=st.integers(-(2**20), 2**20), e=st.integers(-900, 900),
       k=st.integers(-(2**30), 2**30))
def test_short_significands_times_small_integers_count_as_exact(m: int, e: int,
                                                                k: int) -> None:
    # at most 21 + 31 significant bits and no over- or underflow: always exact, so the
    # fast path applies to the weights that planted factors such as 3 or 5/7 produce
    x = math.ldexp(m, e)
    y, exact = nncert._int_products(np.array([x]), k)
    assert exact[0]
    assert F(float(y[0])) == F(x) * k


@pytest.mark.parametrize("x, k", [
    (1 + 2.0**-52, 3),    # 54 significant bits: rounded
    (2.0**1000, 2**30),   # overflows
    (2.0**-1060, -(2**13 + 1)),  # 14 bits at 2^-1060: below the normal range, rounded
    (2.0**-1070, 3),      # subnormal (exact here, but the subnormal range is left to Fractions)
])
def test_products_float64_may_not_hold_do_not_count_as_exact(x: float, k: int) -> None:
    _, exact = nncert._int_products(np.array([x]), k)
    assert not exact[0]


def test_products_at_the_bottom_of_the_normal_range_count_as_exact() -> None:
    y, exact = nncert._int_products(np.array([2.0**-1074]), 2**53 - 1)
    assert exact[0] and F(float(y[0])) == F(2.0**-1074) * (2**53 - 1)


def _planted(rng: np.random.Generator) -> Network:
    """A ReLU / identity MLP whose hidden neurons include exact multiples (FACTORS, negative
    ones for identity layers) of other neurons; the next layer's weights on a copy are, at
    random, ``rho`` times an integer (exact merged weights) or any integer (rounded)."""
    n_in = int(rng.integers(1, 4))
    prev_rho: list[Fraction] = [F(1)] * n_in
    layers: list[Any] = []
    depth = int(rng.integers(1, 4))
    for k in range(depth + 1):
        hidden = k < depth
        act = str(rng.choice(["relu", "identity"])) if hidden else ""
        n_base = int(rng.integers(1, 4)) if hidden else 2
        exact_cols = bool(rng.random() < 0.5)
        base = []
        for _ in range(n_base):
            row = []
            for r in prev_rho:
                c = int(rng.integers(-3, 4))
                row.append(F(c * UNIT) * (r if exact_cols else 1))
            row.append(F(int(rng.integers(-3, 4)) * UNIT))  # bias
            base.append(row)
        rows = list(base)
        rho = [F(1)] * n_base
        if hidden:
            for _ in range(int(rng.integers(0, 4))):
                i = int(rng.integers(0, n_base))
                f = FACTORS[int(rng.integers(0, len(FACTORS)))]
                if act == "identity" and rng.random() < 0.3:
                    f = -f
                rows.append([f * x for x in base[i]])
                rho.append(1 / f)  # the copy's factor relative to its original
        scale = F(1, 2 ** int(rng.integers(0, 6)))
        w = np.array([[float(x * scale) for x in row[:-1]] for row in rows], dtype=np.float64)
        b = np.array([float(row[-1] * scale) for row in rows], dtype=np.float64)
        layers.append(Dense(w, b))
        if hidden:
            layers.append(Activation(act))
        prev_rho = rho
    return Network(tuple(layers), (n_in,))


def _verdicts(orig: Network, red: Network, cert: dict[str, Any]) -> tuple[Any, Any]:
    """(fast paths, Fraction path) verdicts as (valid, condition, location, exact)."""
    fast = proofs.check_certificate(orig, red, cert)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nncert, "_FAST", False)
        slow = proofs.check_certificate(orig, red, cert)
    return ((fast.valid, fast.condition, fast.location, fast.exact),
            (slow.valid, slow.condition, slow.location, slow.exact))


def _forged(orig: Network, red: Network, cert: dict[str, Any]) -> dict[str, Any]:
    c = copy.deepcopy(cert)
    c["original"]["sha256"] = network_sha256(orig)
    c["reduced"]["sha256"] = network_sha256(red)
    return c


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1),
       tamper=st.sampled_from(["none", "weight", "factor", "member"]))
def test_fast_and_fraction_paths_agree(seed: int, tamper: str) -> None:
    rng = np.random.default_rng(seed)
    net = _planted(rng)
    red = reduce_network(net)
    cert = red.certificate
    rnet = red.network
    tampered = tamper != "none"
    if tamper == "member":
        # one incoming weight (or the bias) of a merged neuron that is not its block's
        # representative, one ulp off: only the lumping conditions can see it
        spots = [(k, blk[m]) for k, lyr in enumerate(cert["layers"])
                 for blk in lyr["blocks"] for m in range(1, len(blk))]
        tampered = bool(spots)
        if spots:
            k, v = spots[int(rng.integers(0, len(spots)))]
            i = cert["layers"][k]["layer"]
            lyr = net.layers[i]
            w, b = np.array(lyr.weight, dtype=np.float64), np.array(lyr.bias, dtype=np.float64)
            # the bias, or an input that is merged (kept) in the previous layer: an input
            # the previous layer removed as the constant 0 (or dropped as unused) feeds
            # nothing, so its weight may change without changing the network's function
            live = (list(range(w.shape[1])) if k == 0 else
                    [u for blk in red.layers[k - 1].blocks for u in blk])
            pick = int(rng.integers(0, len(live) + 1))
            j = w.shape[1] if pick == len(live) else live[pick]
            if j == w.shape[1]:
                b[v] = np.nextafter(b[v], np.inf)
            else:
                w[v, j] = np.nextafter(w[v, j], np.inf)
            layers = list(net.layers)
            layers[i] = Dense(w, b)
            net = Network(tuple(layers), net.input_shape)
            cert = _forged(net, rnet, cert)
    elif tamper == "weight":
        dense = [i for i, lyr in enumerate(rnet.layers) if isinstance(lyr, Dense)]
        i = dense[int(rng.integers(0, len(dense)))]
        lyr = rnet.layers[i]
        w = np.array(lyr.weight, dtype=np.float64)
        idx = tuple(int(rng.integers(0, n)) for n in w.shape)
        w[idx] = np.nextafter(w[idx], np.inf)
        layers = list(rnet.layers)
        layers[i] = Dense(w, lyr.bias)
        rnet = Network(tuple(layers), rnet.input_shape)
        cert = _forged(net, rnet, cert)
    elif tamper == "factor":
        spots = [(k, b, m) for k, lyr in enumerate(cert["layers"])
                 for b, blk in enumerate(lyr["blocks"]) for m in range(1, len(blk))]
        tampered = bool(spots)
        if spots:
            k, b, m = spots[int(rng.integers(0, len(spots)))]
            cert = copy.deepcopy(cert)
            old = F(cert["layers"][k]["rho"][b][m])
            new = old * F(2**30 + 1, 2**30)
            cert["layers"][k]["rho"][b][m] = f"{new.numerator}/{new.denominator}"
    fast, slow = _verdicts(net, rnet, cert)
    assert fast == slow
    # every condition and every reduced weight is exact: anything one ulp off is refused
    assert fast[0] == (not tampered), fast


def test_factors_three_and_five_sevenths_take_the_float_path() -> None:
    # hidden neurons 1 = 3 * neuron 0 and 2 = (5/7) * neuron 0; the next layer merges them
    # with weights w(o, u) * 3 and w(o, u) * 5 / 7: integers, so every merged weight is exact
    w1 = np.array([[210.0, -420.0], [630.0, -1260.0], [150.0, -300.0]])
    b1 = np.array([210.0, 630.0, 150.0])
    w2 = np.array([[1.0, 12.0, 7.0], [2.0, 3.0, 14.0]])
    net = Network((Dense(w1, b1), Activation("relu"), Dense(w2, np.zeros(2))), (2,))
    red = reduce_network(net)
    assert [lr.neurons_after for lr in red.layers] == [1]
    calls: list[bool] = []
    real = nncert._rows_ratio_equal

    def spy(*args: Any) -> np.ndarray:
        out = real(*args)
        calls.append(bool(out.all()))
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nncert, "_rows_ratio_equal", spy)
        res = proofs.check_certificate(net, red.network, red.certificate)
    assert res.valid and res.exact
    assert calls and all(calls)  # proved in float64, not by the Fraction fallback


def _near(rng: np.random.Generator) -> Network:
    """A ReLU MLP whose hidden layers hold copies of neurons times float factors, with a
    relative perturbation of about 1e-12 (tolerance mode merges them)."""
    sizes = [int(rng.integers(1, 4))] + [int(rng.integers(1, 4)) for _ in range(2)]
    layers: list[Any] = []
    prev = sizes[0]
    for width in sizes[1:]:
        base = rng.standard_normal((width, prev + 1))
        rows = [base[i] for i in range(width)]
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(0, width))
            f = float(rng.uniform(0.2, 5.0))
            rows.append(base[i] * f * (1 + 1e-12 * rng.standard_normal(prev + 1)))
        m = np.array(rows)
        layers += [Dense(m[:, :-1], m[:, -1]), Activation("relu")]
        prev = m.shape[0]
    layers.append(Dense(rng.standard_normal((2, prev)), rng.standard_normal(2)))
    return Network(tuple(layers), (sizes[0],))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1),
       tamper=st.sampled_from(["none", "member-ulp", "member-far", "weight-ulp",
                               "weight-far"]))
def test_tolerance_certificates_get_the_same_verdict_on_every_path(seed: int,
                                                                   tamper: str) -> None:
    rng = np.random.default_rng(seed)
    net = _near(rng)
    red = reduce_network(net, tolerance=1e-6)
    cert, rnet = red.certificate, red.network
    far = tamper.endswith("far")
    if tamper.startswith("member"):
        spots = [(lyr["layer"], blk[m]) for lyr in cert["layers"]
                 for blk in lyr["blocks"] for m in range(1, len(blk))]
        if spots:
            i, v = spots[int(rng.integers(0, len(spots)))]
            lyr = net.layers[i]
            w = np.array(lyr.weight, dtype=np.float64)
            j = int(rng.integers(0, w.shape[1]))
            w[v, j] = w[v, j] * (1 + 1e-3) + 1e-3 if far else np.nextafter(w[v, j], np.inf)
            layers = list(net.layers)
            layers[i] = Dense(w, lyr.bias)
            net = Network(tuple(layers), net.input_shape)
            cert = _forged(net, rnet, cert)
    elif tamper.startswith("weight"):
        i = [k for k, lyr in enumerate(rnet.layers) if isinstance(lyr, Dense)][-1]
        lyr = rnet.layers[i]
        w = np.array(lyr.weight, dtype=np.float64)
        idx = tuple(int(rng.integers(0, n)) for n in w.shape)
        w[idx] = w[idx] * (1 + 1e-3) + 1e-3 if far else np.nextafter(w[idx], np.inf)
        layers = list(rnet.layers)
        layers[i] = Dense(w, lyr.bias)
        rnet = Network(tuple(layers), rnet.input_shape)
        cert = _forged(net, rnet, cert)
    fast, slow = _verdicts(net, rnet, cert)
    assert fast == slow
    if tamper == "none":
        assert fast[0], fast


def test_a_deviation_accepted_in_integers_makes_the_check_inexact() -> None:
    # u2 = 2 u1 (merged exactly), u3 alone; b = 2 a but for the weight from u2, 2^-40 off,
    # which the merged column of {u1, u2} carries (the factor 1/2 comes from the larger
    # weights on u3); the output's merged weight 1 + 2 * 0.5 is exact, so only that
    # deviation makes the reduction inexact
    d = 1 + 2.0**-40
    net = Network((Dense(np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]]), np.zeros(3)),
                   Activation("relu"),
                   Dense(np.array([[1.0, 1.0, 4.0], [2.0, 2.0 * d, 8.0]]), np.zeros(2)),
                   Activation("relu"),
                   Dense(np.array([[1.0, 0.5]]), np.zeros(1))), (2,))
    red = reduce_network(net, tolerance=1e-6)
    assert [lr.neurons_after for lr in red.layers] == [2, 1]
    assert red.layers[1].rho == ((Fraction(1), Fraction(2)),) or \
        red.layers[1].rho == ((Fraction(1), Fraction(1, 2)),)
    fast, slow = _verdicts(net, red.network, red.certificate)
    assert fast == slow
    assert fast[0] and fast[3] is False
