"""lumpkit's own NumPy ``.npz`` format (no pickles; exact weights as ``"p/q"`` strings).

Keys: ``__lumpkit__`` holds a JSON description
``{"format": "lumpkit-nn-npz", "version": 1, "input_shape": [...],
"layers": [{"type": ..., hyper-parameters...}, ...], "normalization": bool}``
(an activation's exact parameters ``alpha``, ``bounds``, ``beta``,
``threshold`` as ``"p/q"`` strings);
arrays are stored under ``layer{i}.{name}`` (``weight``, ``bias``, ``scale``,
``shift``, ``slopes``) and ``norm.{name}``.  Float arrays are float32 or
float64 (as the network holds them); exact arrays are unicode arrays of
rational strings.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from lumpcore import (
    LumpkitError,
    ModelFormatError,
    UnsupportedLayerError,
    rational_to_str,
    to_rational,
)
from lumpcore._atomic import atomic_write_bytes as atomic_write

from ._network import (
    Activation,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dense,
    Flatten,
    Layer,
    MaxPool2d,
    Network,
    Normalization,
    Permute,
    is_exact_array,
)

__all__ = ["read_npz", "write_npz"]


def _enc(a: np.ndarray) -> np.ndarray:
    if is_exact_array(a):
        return np.array([rational_to_str(x) for x in a.reshape(-1)], dtype=str).reshape(a.shape)
    return np.asarray(a, dtype=np.float32 if a.dtype == np.float32 else np.float64)


def _dec(a: np.ndarray, what: str) -> np.ndarray:
    if a.dtype.kind == "U":
        out = np.empty(a.shape, dtype=object)
        flat = a.reshape(-1)
        try:
            out.reshape(-1)[:] = [to_rational(str(x)) for x in flat]
        except ValueError as exc:
            raise ModelFormatError(f"{what}: {exc}") from None
        return out
    if a.dtype.kind not in "fiu":
        raise ModelFormatError(
            f"{what}: unexpected dtype {a.dtype}; store float32/float64 numbers or unicode "
            "'p/q' strings")
    if a.dtype in (np.float32, np.float16):
        return np.asarray(a, dtype=np.float32)
    wide = np.asarray(a, dtype=np.float64)
    if a.dtype.kind in "iu" or a.dtype.itemsize > 8:  # integers, long double
        with np.errstate(over="ignore", invalid="ignore"):
            same = np.asarray(wide.astype(a.dtype) == a) | ~np.isfinite(a)  # NaN: refused later
        if not same.all():  # float64 would round them: keep the values exactly
            out = np.empty(a.shape, dtype=object)
            out.reshape(-1)[:] = [to_rational(x.item()) if a.dtype.kind in "iu"
                                  else Fraction(*x.as_integer_ratio())
                                  for x in a.reshape(-1)]
            return out
    return wide


def write_npz(net: Network, path: str | os.PathLike[str]) -> None:
    """Write ``net`` as ``.npz`` (atomically); exact weights stay exact."""
    arrays: dict[str, np.ndarray] = {}
    specs: list[dict[str, Any]] = []
    for i, layer in enumerate(net.layers):
        spec: dict[str, Any]
        if isinstance(layer, Dense):
            spec = {"type": "dense"}
            arrays[f"layer{i}.weight"], arrays[f"layer{i}.bias"] = _enc(layer.weight), _enc(
                layer.bias)
        elif isinstance(layer, Conv2d):
            spec = {"type": "conv2d", "stride": list(layer.stride), "padding": list(layer.padding)}
            arrays[f"layer{i}.weight"], arrays[f"layer{i}.bias"] = _enc(layer.weight), _enc(
                layer.bias)
        elif isinstance(layer, MaxPool2d):
            spec = {"type": "maxpool2d", "kernel": list(layer.kernel),
                    "stride": list(layer.stride), "padding": list(layer.padding)}
        elif isinstance(layer, AvgPool2d):
            spec = {"type": "avgpool2d", "kernel": list(layer.kernel),
                    "stride": list(layer.stride), "padding": list(layer.padding),
                    "count_include_pad": layer.count_include_pad}
        elif isinstance(layer, Flatten):
            spec = {"type": "flatten"}
        elif isinstance(layer, Permute):
            spec = {"type": "permute", "perm": list(layer.perm)}
        elif isinstance(layer, BatchNorm):
            spec = {"type": "batchnorm"}
            arrays[f"layer{i}.scale"], arrays[f"layer{i}.shift"] = _enc(layer.scale), _enc(
                layer.shift)
        else:
            assert isinstance(layer, Activation)
            spec = {"type": "activation", "kind": layer.kind,
                    "alpha": None if layer.alpha is None else rational_to_str(layer.alpha)}
            if layer.bounds is not None:
                spec["bounds"] = [None if v is None else rational_to_str(v)
                                  for v in layer.bounds]
            for key in ("beta", "threshold"):  # hard_sigmoid/hard_swish; softplus
                value = getattr(layer, key)
                if value is not None:
                    spec[key] = rational_to_str(value)
            if layer.slopes is not None:
                arrays[f"layer{i}.slopes"] = _enc(layer.slopes)
        specs.append(spec)
    nrm = net.normalization
    if nrm is not None:
        for key in ("input_mean", "input_range", "output_mean", "output_range", "input_min",
                    "input_max"):
            v = getattr(nrm, key)
            if v is not None:
                arrays[f"norm.{key}"] = _enc(v)
    meta = {"format": "lumpkit-nn-npz", "version": 1, "input_shape": list(net.input_shape),
            "layers": specs, "normalization": nrm is not None}
    arrays["__lumpkit__"] = np.array(json.dumps(meta))
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    data = buf.getvalue()

    def _write(fh: Any) -> None:
        fh.write(data)

    atomic_write(Path(path), _write)


def read_npz(path: str | os.PathLike[str]) -> Network:
    """Read a network written by :func:`write_npz`."""
    p = str(path)
    try:
        z = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError, NotImplementedError, zipfile.BadZipFile) as exc:
        raise ModelFormatError(f"{p}: not a readable .npz file ({exc})") from None
    try:
        with z:
            return _read_npz(p, z)
    except LumpkitError:
        raise
    except (OSError, ValueError, EOFError, KeyError, TypeError, IndexError, NotImplementedError,
            zipfile.BadZipFile) as exc:  # a damaged archive or description
        raise ModelFormatError(
            f"{p}: damaged or malformed lumpkit .npz ({type(exc).__name__}: {exc})"
        ) from None


def _read_npz(p: str, z: Any) -> Network:
    if "__lumpkit__" not in z.files:
        raise ModelFormatError(f"{p}: no '__lumpkit__' entry; not written by lumpkit")
    try:
        meta = json.loads(str(z["__lumpkit__"]))
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{p}: bad '__lumpkit__' entry ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelFormatError(
            f"{p}: '__lumpkit__' holds a JSON {type(meta).__name__}; expected an object "
            '{"format": "lumpkit-nn-npz", "version": 1, "input_shape": [...], "layers": [...]}')
    version = meta.get("version")
    if meta.get("format") != "lumpkit-nn-npz" or type(version) is not int or version != 1:
        raise ModelFormatError(f"{p}: unknown format/version {meta.get('format')!r}/"
                               f"{version!r}; expected 'lumpkit-nn-npz'/1")
    specs = meta.get("layers")
    if not isinstance(specs, list) or not all(isinstance(sp, dict) for sp in specs):
        raise ModelFormatError(
            f"{p}: '__lumpkit__' 'layers' must be a list of objects such as "
            f'{{"type": "dense"}}, got {str(specs)[:80]}')
    used = {"__lumpkit__"}

    def arr(key: str) -> np.ndarray:
        if key not in z.files:
            raise ModelFormatError(f"{p}: missing array {key!r}")
        used.add(key)
        return _dec(z[key], f"{p}:{key}")

    layers: list[Layer] = []
    for i, spec in enumerate(specs):
        t = spec.get("type")
        try:
            if t == "dense":
                layers.append(Dense(arr(f"layer{i}.weight"), arr(f"layer{i}.bias")))
            elif t == "conv2d":
                layers.append(Conv2d(arr(f"layer{i}.weight"), arr(f"layer{i}.bias"),
                                     tuple(spec["stride"]), tuple(spec["padding"])))
            elif t == "maxpool2d":
                layers.append(MaxPool2d(tuple(spec["kernel"]), tuple(spec["stride"]),
                                        tuple(spec["padding"])))
            elif t == "avgpool2d":
                layers.append(AvgPool2d(tuple(spec["kernel"]), tuple(spec["stride"]),
                                        tuple(spec["padding"]), spec["count_include_pad"]))
            elif t == "flatten":
                layers.append(Flatten())
            elif t == "permute":
                layers.append(Permute(tuple(spec["perm"])))
            elif t == "batchnorm":
                layers.append(BatchNorm(arr(f"layer{i}.scale"), arr(f"layer{i}.shift")))
            elif t == "activation":
                kind = spec["kind"]
                bounds = spec.get("bounds")
                beta, threshold = spec.get("beta"), spec.get("threshold")
                layers.append(Activation(
                    kind, alpha=None if spec.get("alpha") is None else to_rational(spec["alpha"]),
                    slopes=arr(f"layer{i}.slopes") if kind == "prelu" else None,
                    bounds=None if bounds is None else tuple(  # type: ignore[arg-type]
                        None if v is None else to_rational(v) for v in bounds),
                    beta=None if beta is None else to_rational(beta),
                    threshold=None if threshold is None else to_rational(threshold)))
            else:
                raise UnsupportedLayerError(f"{p}: layer {i} has unknown type {t!r}")
        except LumpkitError as exc:
            if p in str(exc):  # (already located: a missing array, an unknown type)
                raise
            raise ModelFormatError(f"{p}: layer {i} ({t!r}): {exc}") from None
        except KeyError as exc:
            raise ModelFormatError(
                f"{p}: layer {i} ({t!r}) lacks the key {exc.args[0]!r} in '__lumpkit__' "
                "(docs/formats-nn.md lists each layer type's keys)") from None
        except (TypeError, ValueError) as exc:
            raise ModelFormatError(f"{p}: layer {i} ({t!r}): {exc}") from None
    nrm = None
    if meta.get("normalization"):
        def opt(key: str) -> np.ndarray | None:
            return arr(f"norm.{key}") if f"norm.{key}" in z.files else None
        nrm = Normalization(arr("norm.input_mean"), arr("norm.input_range"),
                            arr("norm.output_mean"), arr("norm.output_range"),
                            opt("input_min"), opt("input_max"))
    unused = sorted(set(z.files) - used)
    if unused:  # a misspelt key or a layer type that does not match its arrays
        raise ModelFormatError(
            f"{p}: arrays {unused} are not used by the description in '__lumpkit__' (layers "
            f"{[sp.get('type') for sp in specs]}, normalization {bool(meta.get('normalization'))})"
            "; remove them or fix the description (docs/formats-nn.md lists the keys)")
    shape = meta.get("input_shape")
    if not isinstance(shape, list):  # (its entries: checked by the Network)
        raise ModelFormatError(f"{p}: '__lumpkit__' needs 'input_shape', a list of integers, "
                               f"got {shape!r}")
    return Network(tuple(layers), tuple(shape), nrm)
