"""Canonical sha256 of a network (docs/certificate-format.md, section 5)."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np

from lumpcore import rational_to_str

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
    Permute,
    is_exact_array,
)

__all__ = ["network_sha256"]

_BLOCK = 1 << 20  # entries converted at a time when hashing float32 storage


#: float arrays of at least this many entries are hashed on worker threads, several at once
#: (hashlib and numpy's casts release the GIL)
_CONCURRENT_MIN = 1 << 20


def _float_digest(a: np.ndarray) -> str:
    """sha256 of the float64 values of a float array, in C order."""
    h = hashlib.sha256()
    if a.dtype == np.dtype("<f8") and a.flags.c_contiguous:
        h.update(a.reshape(-1).view(np.uint8).data)  # the buffer itself, no copy
    else:  # float32 storage: hash its float64 values, a block at a time
        flat = a.reshape(-1)
        for lo in range(0, flat.shape[0], _BLOCK):
            h.update(np.ascontiguousarray(flat[lo:lo + _BLOCK], dtype="<f8").view(np.uint8).data)
    return h.hexdigest()


def _arr(a: np.ndarray | None, done: dict[int, str] | None = None) -> dict[str, Any] | None:
    """The hash entry of one array; ``done`` maps ``id`` of arrays already hashed to digests."""
    if a is None:
        return None
    if is_exact_array(a):
        text = ",".join(rational_to_str(x) for x in a.reshape(-1))
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return {"dtype": "rational", "shape": list(a.shape), "sha256": digest}
    got = None if done is None else done.get(id(a))
    return {"dtype": "float64", "shape": list(a.shape),
            "sha256": got if got is not None else _float_digest(a)}


def _large_digests(net: Network) -> dict[int, str]:
    """Digests of the network's large float arrays, computed on ``numba.get_num_threads()``
    threads (lumpkit's thread setting) when there are several."""
    big = [a for lyr in net.layers for a in (getattr(lyr, "weight", None),
                                             getattr(lyr, "bias", None))
           if isinstance(a, np.ndarray) and a.size >= _CONCURRENT_MIN and not is_exact_array(a)]
    workers = min(len(big), numba.get_num_threads())
    if workers < 2:
        return {}
    with ThreadPoolExecutor(workers) as pool:
        # largest first, so that the last one started is a small one
        big.sort(key=lambda a: -a.size)
        return dict(zip(map(id, big), pool.map(_float_digest, big), strict=True))


def _layer(layer: Layer, done: dict[int, str]) -> dict[str, Any]:
    if isinstance(layer, Dense):
        return {"type": "dense", "weight": _arr(layer.weight, done),
                "bias": _arr(layer.bias, done)}
    if isinstance(layer, Conv2d):
        return {"type": "conv2d", "weight": _arr(layer.weight, done),
                "bias": _arr(layer.bias, done),
                "stride": list(layer.stride), "padding": list(layer.padding)}
    if isinstance(layer, MaxPool2d):
        return {"type": "maxpool2d", "kernel": list(layer.kernel), "stride": list(layer.stride),
                "padding": list(layer.padding)}
    if isinstance(layer, AvgPool2d):
        return {"type": "avgpool2d", "kernel": list(layer.kernel), "stride": list(layer.stride),
                "padding": list(layer.padding), "count_include_pad": layer.count_include_pad}
    if isinstance(layer, Flatten):
        return {"type": "flatten"}
    if isinstance(layer, Permute):
        return {"type": "permute", "perm": list(layer.perm)}
    if isinstance(layer, BatchNorm):
        return {"type": "batchnorm", "scale": _arr(layer.scale), "shift": _arr(layer.shift)}
    assert isinstance(layer, Activation)
    out: dict[str, Any] = {
        "type": "activation", "kind": layer.kind,
        "alpha": None if layer.alpha is None else rational_to_str(layer.alpha),
        "slopes": _arr(layer.slopes)}
    if layer.bounds is not None:  # clip only (other kinds hash as they always did)
        out["bounds"] = [None if v is None else rational_to_str(v) for v in layer.bounds]
    if layer.beta is not None:  # hard_sigmoid and hard_swish only
        out["beta"] = rational_to_str(layer.beta)
    if layer.threshold is not None:  # softplus with a threshold only
        out["threshold"] = rational_to_str(layer.threshold)
    return out


def network_sha256(net: Network) -> str:
    """The canonical sha256 of a network, as specified in ``docs/certificate-format.md``.

    Parameters
    ----------
    net : Network

    Returns
    -------
    str
        64 lowercase hex digits.  Float64 and exact-rational storage of the
        same values hash differently (the hash is of the network as stored).

    Examples
    --------
    >>> import numpy as np
    >>> from nnreduce import Dense, Network
    >>> h = network_sha256(Network((Dense(np.eye(2), np.zeros(2)),), (2,)))
    >>> len(h), h == network_sha256(Network((Dense(np.eye(2), np.zeros(2)),), (2,)))
    (64, True)
    """
    done = _large_digests(net)
    nrm = net.normalization
    norm = None
    if nrm is not None:
        norm = {"input_mean": _arr(nrm.input_mean), "input_range": _arr(nrm.input_range),
                "output_mean": _arr(nrm.output_mean), "output_range": _arr(nrm.output_range),
                "input_min": _arr(nrm.input_min), "input_max": _arr(nrm.input_max)}
    obj = {"input_shape": list(net.input_shape), "normalization": norm,
           "layers": [_layer(layer, done) for layer in net.layers]}
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
