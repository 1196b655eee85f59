"""Float32 storage: a float32 model is held, reduced, certified and exported as itself.

Oracles: the same network held as float64 (the values are identical, so every
answer must be identical: blocks, factors, reduced weight values, hashes,
float evaluation), exact rational evaluation of original against reduced,
``proofs.check_certificate`` and the frameworks' own runtimes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_nn_reduce_fast import ACTS, _planted_mlp, _same_function

import proofs
from lumpcore import ModelFormatError
from nnreduce import (
    Activation,
    Conv2d,
    Dense,
    Network,
    evaluate,
    load_network,
    network_sha256,
    reduce_network,
    save_network,
)

DATA = Path(__file__).parent / "data" / "nn"


def _cast(net: Network, dtype: Any) -> Network:
    """``net`` with the weights and biases of every linear layer cast to ``dtype``."""
    layers: list[Any] = []
    for lyr in net.layers:
        if isinstance(lyr, Dense):
            layers.append(Dense(lyr.weight.astype(dtype), lyr.bias.astype(dtype)))
        elif isinstance(lyr, Conv2d):
            layers.append(Conv2d(lyr.weight.astype(dtype), lyr.bias.astype(dtype), lyr.stride,
                                 lyr.padding))
        else:
            layers.append(lyr)
    return Network(tuple(layers), net.input_shape, net.normalization)


def _linear(net: Network) -> list[Dense | Conv2d]:
    return [lyr for lyr in net.layers if isinstance(lyr, Dense | Conv2d)]


def test_layers_keep_float32_and_widen_float16() -> None:
    d = Dense(np.ones((2, 3), dtype=np.float32), np.array([0.5, 2.0**-20], dtype=np.float16))
    assert d.weight.dtype == np.float32 and d.bias.dtype == np.float32
    assert d.bias[1] == 2.0**-20  # widened exactly
    assert Dense([[1, 2]], [0]).weight.dtype == np.float64  # lists and ints: float64
    assert Dense(np.ones((1, 2), dtype=np.int32), [0.0]).weight.dtype == np.float64
    w = np.ones((2, 2), dtype=np.float32)
    w[1, 0] = np.nan
    with pytest.raises(ModelFormatError, match=r"Dense.weight: entry 2 is nan"):
        Dense(w, np.zeros(2, dtype=np.float32))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), depth=st.integers(1, 3), dup=st.integers(0, 4),
       pow2=st.booleans(), tol=st.sampled_from([0.0, 1e-6]), data=st.data())
def test_float32_network_reduces_like_its_float64_twin(seed: int, depth: int, dup: int,
                                                       pow2: bool, tol: float,
                                                       data: st.DataObject) -> None:
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(1, 5))] + [int(rng.integers(1, 6)) for _ in range(depth)] + [2]
    kinds = [data.draw(st.sampled_from(ACTS)) for _ in range(depth)]
    planted, _ = _planted_mlp(rng, sizes, kinds, dup, pow2)
    n32 = _cast(planted, np.float32)  # float32 values (rounding may undo some plants)
    n64 = _cast(n32, np.float64)  # the very same values, held as float64
    assert all(lyr.weight.dtype == np.float32 for lyr in _linear(n32))
    assert network_sha256(n32) == network_sha256(n64)  # the hash is of the values
    x = rng.standard_normal((3, sizes[0]))
    assert np.array_equal(evaluate(n32, x), evaluate(n64, x))
    r32 = reduce_network(n32, tolerance=tol)
    r64 = reduce_network(n64, tolerance=tol)
    assert [lr.blocks for lr in r32.layers] == [lr.blocks for lr in r64.layers]
    assert [lr.rho for lr in r32.layers] == [lr.rho for lr in r64.layers]
    assert [lr.removed for lr in r32.layers] == [lr.removed for lr in r64.layers]
    assert r32.rounded == r64.rounded
    assert r32.max_weight_deviation == r64.max_weight_deviation
    for a, b in zip(_linear(r32.network), _linear(r64.network), strict=True):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
        # float32 storage only where every value is a float32 value
        for arr in (a.weight, a.bias):
            if arr.dtype == np.float32:
                continue
            assert arr.dtype == np.float64
    assert r32.certificate is not None and r64.certificate is not None
    assert r32.certificate["reduced"]["sha256"] == r64.certificate["reduced"]["sha256"]
    got = proofs.check_certificate(n32, r32.network, r32.certificate)
    assert got.valid, (got.condition, got.values)
    if tol == 0 and not r32.rounded:
        _same_function(n32, r32.network, rng)


def test_unmerged_float32_layers_stay_float32_merged_sums_are_float64() -> None:
    rng = np.random.default_rng(11)
    base = rng.standard_normal((3, 4)).astype(np.float32)
    w1 = np.vstack([base, 2 * base[:1]])  # neuron 3 = 2 * neuron 0
    b1 = rng.standard_normal(4).astype(np.float32)
    b1[3] = 2 * b1[0]
    net = Network((Dense(w1, b1), Activation("relu"),
                   Dense(rng.standard_normal((2, 4)).astype(np.float32),
                         np.zeros(2, dtype=np.float32))), (4,))
    red = reduce_network(net)
    assert red.layers[0].blocks == ((0, 3), (1,), (2,))
    first, last = _linear(red.network)
    assert first.weight.dtype == np.float32 and first.bias.dtype == np.float32
    assert np.array_equal(first.weight, w1[:3])
    # column 0 of the output layer is w[:, 0] + w[:, 3] / (1/2): not a float32 in general
    assert last.weight.dtype == np.float64
    w2 = net.layers[2].weight.astype(np.float64)
    assert np.array_equal(last.weight[:, 0], w2[:, 0] + 2 * w2[:, 3])
    _same_function(net, red.network, rng)


def test_npz_round_trip_keeps_float32(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    net = Network((Dense(rng.standard_normal((3, 2)).astype(np.float32),
                         np.zeros(3, dtype=np.float32)), Activation("relu"),
                   Dense(rng.standard_normal((1, 3)), [0.5])), (2,))
    save_network(net, tmp_path / "m.npz")
    back = load_network(tmp_path / "m.npz")
    assert [lyr.weight.dtype for lyr in _linear(back)] == [np.float32, np.float64]
    assert network_sha256(back) == network_sha256(net)


def test_onnx_float32_model_is_held_as_float32() -> None:
    net = load_network(DATA / "acasxu" / "ACASXU_experimental_v2a_1_1.onnx")
    assert all(lyr.weight.dtype == np.float32 and lyr.bias.dtype == np.float32
               for lyr in _linear(net))
    red = reduce_network(net)
    assert red.neurons_after == red.neurons_before  # trained: nothing merges
    assert proofs.check_certificate(net, red.network, red.certificate).valid


def test_torch_models_keep_their_precision_and_folding_stays_exact() -> None:
    torch = pytest.importorskip("torch")
    from nnreduce import from_torch

    torch.manual_seed(0)
    m32 = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    n32 = from_torch(m32)
    assert all(lyr.weight.dtype == np.float32 for lyr in _linear(n32))
    n64 = from_torch(m32.double())
    assert all(lyr.weight.dtype == np.float64 for lyr in _linear(n64))
    assert network_sha256(n32) == network_sha256(n64)
    # batch norm folded into the convolution: values that are not float32 stay float64
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 2), torch.nn.BatchNorm2d(2),
                               torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8, 1))
    bn = conv[1]
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.1, -0.3]))
        bn.running_var.copy_(torch.tensor([0.7, 1.9]))
        bn.weight.copy_(torch.tensor([1.3, -0.6]))
    conv.eval()
    net = from_torch(conv, input_shape=(1, 3, 3))
    folded = _linear(net)[0]
    assert folded.weight.dtype == np.float64  # the folded products are not float32 values
    x = np.random.default_rng(1).standard_normal((5, 1, 3, 3))
    with torch.no_grad():
        want = conv.double()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(evaluate(net, x), want, rtol=1e-6, atol=1e-6)


def test_hash_of_float32_storage_is_blockwise_the_float64_hash(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import nnreduce._hash as hash_mod

    rng = np.random.default_rng(4)
    net32 = Network((Dense(rng.standard_normal((13, 11)).astype(np.float32),
                           rng.standard_normal(13).astype(np.float32)),), (11,))
    want = network_sha256(_cast(net32, np.float64))
    for block in (1, 7, 143, 1 << 20):  # block boundaries inside, at and beyond the array
        monkeypatch.setattr(hash_mod, "_BLOCK", block)
        assert network_sha256(net32) == want
