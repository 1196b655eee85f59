""".npz files written with numpy directly by a user following docs/formats-nn.md.

Oracle: the user's own arrays, evaluated here in ``Fraction`` arithmetic
(``W2 relu(W0 x + b0) + b2`` at the arrays' exact values), independent of nnreduce.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lumpcore import ModelFormatError
from nnreduce import Network, evaluate_exact, load_network

LAYERS = [{"type": "dense"}, {"type": "activation", "kind": "relu", "alpha": None},
          {"type": "dense"}]


def _meta(layers: Any = LAYERS, **kw: Any) -> np.ndarray:
    m = {"format": "lumpkit-nn-npz", "version": 1, "input_shape": [3], "layers": layers,
         "normalization": False}
    m.update(kw)
    return np.array(json.dumps(m))


def _arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"layer0.weight": rng.normal(size=(4, 3)), "layer0.bias": rng.normal(size=4),
            "layer2.weight": rng.normal(size=(2, 4)), "layer2.bias": rng.normal(size=2)}


def _exact(v: Any) -> Fraction:
    if isinstance(v, np.integer):
        return Fraction(int(v))
    return Fraction(*v.as_integer_ratio())  # numpy floats (long double too) at their value


def _oracle(arrs: dict[str, np.ndarray], x: list[float]) -> list[Fraction]:
    def affine(w: np.ndarray, b: np.ndarray, v: list[Fraction]) -> list[Fraction]:
        return [sum((_exact(wij) * vj for wij, vj in zip(row, v, strict=True)), Fraction(0))
                + _exact(bi) for row, bi in zip(w, b, strict=True)]

    h = [max(Fraction(0), t) for t in affine(arrs["layer0.weight"], arrs["layer0.bias"],
                                              [Fraction(xi) for xi in x])]
    return affine(arrs["layer2.weight"], arrs["layer2.bias"], h)


def _save(path: Path, arrs: dict[str, np.ndarray], meta: np.ndarray | None = None) -> Path:
    np.savez(path, __lumpkit__=_meta() if meta is None else meta, **arrs)  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int8", "int64", "uint16",
                                   "longdouble"])
def test_user_written_arrays_of_any_numeric_type_are_taken_at_their_value(
        tmp_path: Path, dtype: str) -> None:
    """Integers beyond 2**53 and long doubles that float64 cannot hold were rounded to float64
    silently; every numeric array must now be read at its exact value."""
    rng = np.random.default_rng(0)
    arrs = {k: (v * 7).astype(dtype) for k, v in _arrays(rng).items()}
    if dtype == "int64":
        arrs["layer0.weight"][0, 0] = 2**53 + 1  # float64 holds 2**53 and 2**53 + 2
    if dtype == "longdouble":
        arrs["layer0.weight"] = arrs["layer0.weight"] + np.longdouble(1) / 3
    net = load_network(_save(tmp_path / "m.npz", arrs))
    for x in ([0.5, -1.0, 2.0], [1.0, 1.0, 1.0], [-3.0, 0.25, 0.0]):
        assert list(evaluate_exact(net, np.array([x]))[0]) == _oracle(arrs, x)


@pytest.mark.parametrize(("meta", "extra", "match"), [
    (json.dumps([1, 2]), {}, r"'__lumpkit__' holds a JSON list; expected an object"),
    (None, {"layers": ["dense", "relu", "dense"]}, r"'layers' must be a list of objects"),
    (None, {"layers": {"a": 1}}, r"'layers' must be a list of objects"),
    (None, {"version": True}, r"unknown format/version 'lumpkit-nn-npz'/True"),
    (None, {"input_shape": [3.5]}, r"input_shape must be non-empty positive ints, got \(3.5,\)"),
    (None, {"input_shape": ["3"]}, r"input_shape must be non-empty positive ints"),
])
def test_malformed_descriptions_are_clear_errors(tmp_path: Path, meta: str | None,
                                                 extra: dict[str, Any], match: str) -> None:
    """A description that is valid JSON of the wrong form raised a bare AttributeError; an
    input shape of 3.5 was read as 3."""
    m = np.array(meta) if meta is not None else _meta(**extra)
    path = _save(tmp_path / "m.npz", _arrays(np.random.default_rng(1)), m)
    with pytest.raises(ModelFormatError, match=match) as info:
        load_network(path)
    assert str(path) in str(info.value)


def test_arrays_the_description_does_not_use_are_refused(tmp_path: Path) -> None:
    """Slopes written for a 'relu' (a PReLU whose kind was mistyped) were ignored silently."""
    arrs = _arrays(np.random.default_rng(2))
    arrs["layer1.slopes"] = np.full(4, 0.25)
    arrs["layer0.weights"] = arrs["layer0.weight"]  # a misspelt key
    with pytest.raises(ModelFormatError,
                       match=r"arrays \['layer0.weights', 'layer1.slopes'\] are not used"):
        load_network(_save(tmp_path / "m.npz", arrs))


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:  # unpickling would create the marker file
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("key", ["layer0.weight", "__lumpkit__"])
def test_object_arrays_are_refused_without_unpickling(tmp_path: Path, key: str) -> None:
    marker = tmp_path / "unpickled"
    arrs: dict[str, Any] = {"__lumpkit__": _meta(), **_arrays(np.random.default_rng(3))}
    arrs[key] = np.array([_Payload(marker)] * 12, dtype=object).reshape(4, 3)
    np.savez(tmp_path / "m.npz", **arrs)
    with pytest.raises(ModelFormatError, match="Object arrays cannot be loaded"):
        load_network(tmp_path / "m.npz")
    assert not marker.exists()
    assert not os.path.exists(marker)


def test_network_refuses_fractional_input_shapes() -> None:
    from nnreduce import Dense

    dense = Dense(np.ones((2, 3)), np.zeros(2))
    with pytest.raises(ModelFormatError, match=r"got \(3.5,\)"):
        Network((dense,), (3.5,))  # type: ignore[arg-type]
    with pytest.raises(ModelFormatError, match=r"got \(True,\)"):
        Network((dense,), (True,))
    assert Network((dense,), (np.int64(3),)).input_shape == (3,)
