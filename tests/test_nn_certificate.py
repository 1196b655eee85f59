"""The certificate, checked by a small checker written from docs/certificate-format.md alone.

The checker below re-derives the reduced network in exact arithmetic from the
original network and the certificate, checks the scaled lumping conditions
(section 4.2) and compares with the reduced network nnreduce wrote.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nnreduce import (
    Activation,
    Conv2d,
    Dense,
    Flatten,
    MaxPool2d,
    Network,
    Permute,
    as_exact,
    load_network,
    network_sha256,
    reduce_network,
    save_certificate,
)

DATA = Path(__file__).parent / "data" / "nn"


def _q(x: Any) -> Fraction:
    return Fraction(x)


def _channels_after(ops: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    """Section 2.1: channel index of every element after the post-ops (independent code)."""
    ch = np.zeros(shape, dtype=np.int64)
    for c in range(shape[0]):
        ch[c] = c
    for op in ops:
        if isinstance(op, MaxPool2d):
            t, left, b, r = op.padding
            h = (ch.shape[1] + t + b - op.kernel[0]) // op.stride[0] + 1
            w = (ch.shape[2] + left + r - op.kernel[1]) // op.stride[1] + 1
            ch = np.repeat(ch[:, :1, :1], h, axis=1).repeat(w, axis=2)
        elif isinstance(op, Permute):
            ch = ch.transpose(op.perm)
        elif isinstance(op, Flatten):
            ch = ch.reshape(-1)
    return ch.reshape(-1)


def _grouped(layer: Any, ch: np.ndarray | None) -> tuple[list[list[list[Fraction]]], list[int]]:
    """Wr[o][c][p] exactly, and for dense layers the input index of (c, p)."""
    w = layer.weight
    if isinstance(layer, Conv2d):
        o, c, kh, kw = w.shape
        return [[[_q(w[i, j].reshape(-1)[p]) for p in range(kh * kw)] for j in range(c)]
                for i in range(o)], []
    if ch is None:
        return [[[_q(w[i, j])] for j in range(w.shape[1])] for i in range(w.shape[0])], []
    n_c = int(ch.max()) + 1
    cols = [[j for j in range(ch.size) if ch[j] == c] for c in range(n_c)]
    return [[[_q(w[i, j]) for j in cols[c]] for c in range(n_c)] for i in range(w.shape[0])], []


def _check(orig: Network, red: Network, cert: dict[str, Any]) -> None:
    assert cert["format"] == "lumpkit-nn-certificate" and cert["version"] == 1
    assert cert["original"]["sha256"] == network_sha256(orig)
    assert cert["reduced"]["sha256"] == network_sha256(red)
    lin = [i for i, lyr in enumerate(orig.layers) if isinstance(lyr, Dense | Conv2d)]
    entries = {e["layer"]: e for e in cert["layers"]}
    assert sorted(entries) == lin[:-1]
    dev = Fraction(cert["max_weight_deviation"])
    exact_mode = cert["mode"] == "exact"
    prev: dict[str, Any] | None = None
    for li, idx in enumerate(lin):
        layer = orig.layers[idx]
        ch = None
        if li > 0 and isinstance(layer, Dense):
            ops = list(orig.layers[lin[li - 1] + 1: idx])
            ch = _channels_after(ops, orig.shapes[lin[li - 1] + 1])
        wr, _ = _grouped(layer, ch)
        n_out = len(wr)
        bias = [_q(b) for b in layer.bias]
        if prev is None:
            blocks = [[c] for c in range(len(wr[0]))]
            rho = {c: Fraction(1) for c in range(len(wr[0]))}
            removed: list[tuple[int, Fraction]] = []
        else:
            blocks = prev["blocks"]
            rho = {v: Fraction(r) for b, rs in zip(prev["blocks"], prev["rho"], strict=True)
                   for v, r in zip(b, rs, strict=True)}
            removed = [(d["neuron"], Fraction(d["value"])) for d in prev["removed"]]
            for c in prev.get("combined", []):
                rho.update({v: Fraction(r) for v, r in zip(c["block"], c["rho"], strict=True)})
        # 4.1
        b_eff = [bias[o] + sum((val * sum(wr[o][j]) for j, val in removed), Fraction(0))
                 for o in range(n_out)]
        m = [[[sum((wr[o][u][p] / rho[u] for u in blk), Fraction(0))
               for p in range(len(wr[o][blk[0]]))] for blk in blocks] for o in range(n_out)]
        # combined blocks: their merged column is added to the kept blocks times a
        for c in (prev or {}).get("combined", []):
            col = {rep: k for k, rep in enumerate(b[0] for b in blocks)}
            for o in range(n_out):
                extra = [sum((wr[o][u][p] / rho[u] for u in c["block"]), Fraction(0))
                         for p in range(len(wr[o][c["block"][0]]))]
                for rep, a in c["coefficients"]:
                    m[o][col[rep]] = [x + Fraction(a) * y
                                      for x, y in zip(m[o][col[rep]], extra, strict=True)]

        def vec(o: int, m: list = m, b_eff: list = b_eff) -> list[Fraction]:
            return [b_eff[o]] + [x for blk in m[o] for x in blk]

        if idx in entries:
            e = entries[idx]
            kept = [v for b in e["blocks"] for v in b]
            kept += [v for c in e.get("combined", []) for v in c["block"]]
            assert sorted(kept + [d["neuron"] for d in e["removed"]]) == list(range(n_out))
            for c in e.get("combined", []):
                ref = vec(c["block"][0])
                total = [Fraction(0)] * len(ref)
                for rep, a in c["coefficients"]:
                    assert rep in [b[0] for b in e["blocks"]]
                    total = [t + Fraction(a) * x for t, x in zip(total, vec(rep), strict=True)]
                assert total == ref and e["factors"] == "nonzero"
                for v, r in zip(c["block"], c["rho"], strict=True):
                    assert [Fraction(r) * x for x in vec(v)] == ref
            for b, rs in zip(e["blocks"], e["rho"], strict=True):
                assert rs[0] == "1" and b == sorted(b)
                ref = vec(b[0])
                for v, r in zip(b, rs, strict=True):
                    r = Fraction(r)
                    assert {"positive": r > 0, "nonzero": r != 0, "one": r == 1}[e["factors"]]
                    diffs = [abs(r * x - y) for x, y in zip(vec(v), ref, strict=True)]
                    assert max(diffs) == 0 if exact_mode else max(diffs) <= dev
            for d in e["removed"]:
                assert all(x == 0 for x in vec(d["neuron"])[1:])
            rows = [b[0] for b in e["blocks"]]
            prev = e
        else:
            rows = list(range(n_out))
        # 4.3: compare the stored reduced layer (float64: rounded exact value)
        rl = red.layers[idx]
        want_b = [b_eff[o] for o in rows]
        got_b = list(rl.bias)
        want_w = sorted(float(x) for o in rows for blk in m[o] for x in blk)
        got_w = sorted(float(x) for x in rl.weight.reshape(-1))
        if rl.bias.dtype == object:
            assert got_b == want_b
        elif exact_mode:
            assert got_b == [float(x) for x in want_b]
            assert got_w == want_w
        else:  # tolerance mode: float64 arithmetic, within a relative 2^-40
            np.testing.assert_allclose(got_w, want_w, rtol=2.0**-40, atol=0)
            np.testing.assert_allclose(got_b, [float(x) for x in want_b], rtol=2.0**-40, atol=0)


def test_certificate_checks_on_planted_conv_network(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)

    def q(*shape: int) -> np.ndarray:
        return np.array([Fraction(int(rng.integers(-5, 6)), int(rng.integers(1, 4)))
                         for _ in range(int(np.prod(shape)))], dtype=object).reshape(shape)

    w1 = q(3, 1, 2, 2)
    w1 = np.concatenate([w1, w1[2:3] * Fraction(7, 3)])
    b1 = np.append(q(3), Fraction(0)).astype(object)
    b1[2] = Fraction(0)
    w2 = q(2, 4, 2, 2)
    net = Network((Conv2d(w1, b1), Activation("relu"), Conv2d(w2, q(2)), Activation("relu"),
                   MaxPool2d((2, 2), (2, 2)), Permute((1, 2, 0)), Flatten(),
                   Dense(q(3, 2), q(3)), Activation("relu"), Dense(q(1, 3), q(1))), (1, 5, 5))
    red = reduce_network(net)
    assert red.layers[0].blocks[2] == (2, 3)
    save_certificate(red, tmp_path / "c.json")
    _check(net, red.network, json.loads((tmp_path / "c.json").read_text()))


@pytest.mark.parametrize("name", ["twin/twin_ladder-5_inp-4_layers-10_width-1_margin.nnet",
                                  "acasxu/ACASXU_experimental_v2a_2_7.nnet"])
def test_certificate_checks_on_real_networks(name: str) -> None:
    net = load_network(DATA / name)
    red = reduce_network(net)
    assert red.certificate is not None
    _check(net, red.network, json.loads(json.dumps(red.certificate)))


def test_certificate_checks_in_tolerance_mode_and_exact_nets() -> None:
    rng = np.random.default_rng(6)
    w = rng.normal(size=(3, 2))
    w = np.vstack([w, -0.5 * w[0] * (1 + 1e-9)])
    net = Network((Dense(w, [0.0, 0.5, 1.0, 0.0]), Activation("identity"),
                   Dense(rng.normal(size=(2, 4)), [0.0, 0.0])), (2,))
    red = reduce_network(net, tolerance=1e-6)
    assert red.layers[0].blocks[0] == (0, 3) and red.layers[0].rho[0][1] < 0
    assert red.certificate is not None
    _check(net, red.network, red.certificate)
    exact = as_exact(net)
    red2 = reduce_network(exact)
    assert red2.certificate is not None
    _check(exact, red2.network, red2.certificate)


def test_certificate_checks_with_linear_combinations() -> None:
    rng = np.random.default_rng(8)
    w = rng.integers(-5, 6, size=(3, 3)).astype(np.float64)
    w = np.vstack([w, w[0] + 2 * w[1], 0.5 * w[2]])
    b = np.array([1.0, -2.0, 0.5, 1.0 + 2 * -2.0, 0.25])
    net = Network((Dense(w, b), Activation("identity"),
                   # no zero weights: every neuron is read (this is about combinations)
                   Dense(rng.choice([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0], size=(2, 5)),
                         [0.0, 1.0]),
                   Activation("relu"), Dense([[1.0, -1.0]], [0.0])), (3,))
    red = reduce_network(net, linear_dependence=True)
    assert red.layers[0].neurons_after == 3 and red.layers[0].combined
    assert red.certificate is not None
    _check(net, red.network, red.certificate)
