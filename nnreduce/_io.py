"""Load and save networks, the format chosen by the file extension."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from lumpcore import LumpkitError, LumpkitWarning, ModelFormatError

from ._network import DATA_DTYPES, Network, as_float

__all__ = ["FORMATS", "is_torchscript", "load_network", "natural_dtype", "save_network"]

#: File extensions lumpkit reads and writes.
FORMATS = (".onnx", ".nnet", ".pt", ".npz")


class MissingExtraError(LumpkitError, ImportError):
    """A file format needs an optional dependency that is not installed."""


def _need(module: str, extra: str, what: str) -> None:
    """Raise a clear error naming the extra to install when ``module`` is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(
            f"{what} needs the Python package {module!r}, which is not installed: "
            f"pip install 'lumpkit[{extra}]'"
        )


def _ext(path: str | os.PathLike[str]) -> str:
    ext = Path(path).suffix.lower()
    if ext == ".pth":
        ext = ".pt"
    if ext not in FORMATS:
        raise ModelFormatError(
            f"{os.fspath(path)!r}: unknown model format {ext or '(no extension)'!r}; "
            f"use one of {', '.join(FORMATS)}"
        )
    return ext


def load_network(path: str | os.PathLike[str], *,
                 input_shape: tuple[int, ...] | None = None) -> Network:
    """Read a network from ``.onnx``, ``.nnet``, ``.pt`` (pickled ``nn.Sequential`` or
    TorchScript) or ``.npz``.

    Parameters
    ----------
    path : str or path-like
    input_shape : tuple of int, optional
        The shape of one input when the file does not say: PyTorch
        (convolutional models not written by lumpkit) and ONNX models whose
        input dimensions other than the batch are left open.

    Returns
    -------
    Network

    Raises
    ------
    ModelFormatError
        Unknown extension or malformed file.
    UnsupportedLayerError
        A layer/operator lumpkit does not support (named, with its position).
    FileNotFoundError
        If the file does not exist.

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> from nnreduce import Dense, Network
    >>> d = tempfile.mkdtemp()
    >>> save_network(Network((Dense(np.eye(2), np.ones(2)),), (2,)), os.path.join(d, "m.npz"))
    >>> load_network(os.path.join(d, "m.npz"))
    Network(input (2,): Dense(2->2))
    """
    ext = _ext(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {os.fspath(path)!r}")
    try:
        return _load(path, ext, input_shape)
    except LumpkitError as exc:  # every error names the file
        name = os.fspath(path)
        if name in str(exc):
            raise
        try:
            named = type(exc)(f"{name}: {exc}")
        except Exception:  # pragma: no cover - every lumpkit error takes a message
            raise exc from None
        raise named from None


def _load(path: str | os.PathLike[str], ext: str, input_shape: tuple[int, ...] | None
          ) -> Network:
    if ext == ".nnet":
        from ._io_nnet import read_nnet

        return read_nnet(path)
    if ext == ".onnx":
        _need("onnx", "onnx", f"reading the ONNX model {os.fspath(path)!r}")
        from ._io_onnx import read_onnx

        return read_onnx(path, input_shape)
    if ext == ".pt":
        _need("torch", "torch", f"reading the PyTorch model {os.fspath(path)!r}")
        from ._io_torch import read_torch

        return read_torch(path, input_shape)
    from ._io_npz import read_npz

    return read_npz(path)


def is_torchscript(path: str | os.PathLike[str]) -> bool:
    """Whether a ``.pt`` file is a TorchScript archive (rather than a pickle)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/code/__torch__.py") or "/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def save_network(net: Network, path: str | os.PathLike[str], *, torchscript: bool = False,
                 dtype: str = "auto", io_dtype: str | None = None) -> None:
    """Write ``net`` in the format of the extension of ``path`` (atomically).

    Parameters
    ----------
    net : Network
    path : str or path-like
    torchscript : bool
        ``.pt`` only: write TorchScript instead of a pickled ``nn.Sequential``.
    dtype : {'auto', 'float32', 'float64'}
        ``.onnx`` and ``.pt`` only: the weight type written.  ``'auto'``
        (default) never rounds: float32 when every weight is a float32
        value, else float64 (for a float32 model exactly as sums of float32
        parts in ONNX; see below).  ``'float32'`` rounds to float32.
        ``.nnet`` writes float64 text, ``.npz`` float64 or exact rationals.
    io_dtype : {'float16', 'bfloat16', 'float32', 'float64'}, optional
        ``.onnx`` and ``.pt`` only: the type of the model's input and output.
        Default: with ``dtype='auto'``, ``net.data_dtype`` (the type of the
        file it was read or reduced from), else float32 when ``net`` holds
        float32 arrays, else float64; otherwise ``dtype``.  float32 data around float64 weights
        keeps a reduced float32 model a drop-in replacement (ONNX: float32
        parts, or casts; PyTorch: lumpkit's cast modules); float16 and
        bfloat16 data (a half-precision model's) are cast to the weights'
        type after the input and back before the output.  A float64
        interface around float32 weights is not written.

    Raises
    ------
    ModelFormatError
        Unknown extension or dtype.
    UnsupportedLayerError
        The format cannot express a layer of ``net``.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from nnreduce import Activation, Dense, Network
    >>> net = Network((Dense(np.eye(2), np.zeros(2)), Activation("relu"),
    ...                Dense(np.ones((1, 2)), [0.0])), (2,))
    >>> path = os.path.join(tempfile.mkdtemp(), "m.nnet")
    >>> save_network(net, path)
    >>> load_network(path).layers[2].weight
    array([[1., 1.]])
    """
    ext = _ext(path)
    if dtype not in ("auto", "float32", "float64"):
        raise ModelFormatError(f"dtype must be 'auto', 'float32' or 'float64', got {dtype!r}")
    if io_dtype not in (None, *DATA_DTYPES):
        raise ModelFormatError(
            f"io_dtype must be one of {', '.join(map(repr, DATA_DTYPES))}, got {io_dtype!r}")
    if dtype == "auto":
        io_dtype = io_dtype or net.data_dtype or stored_dtype(net)
        dtype = "float64" if io_dtype == "float64" else natural_dtype(net)
    io_dtype = io_dtype or dtype
    if dtype == "float32" and io_dtype == "float64":
        raise ModelFormatError(
            "io_dtype='float64' around float32 weights would round the data at the input; "
            "use dtype='float64' (or 'auto')")
    if ext != ".npz":
        as_float(net)  # a clear error for values beyond float64's range, before any file
        lost = _not_float64(net)
        if lost:
            warnings.warn(
                f"{os.fspath(path)}: {lost} exact parameter values of the network are not float64 "
                "values and are written rounded to the nearest float64; the file is not the "
                "network exactly (save to .npz to keep exact rationals)",
                LumpkitWarning, stacklevel=2)
    if ext == ".nnet":
        from ._io_nnet import write_nnet

        write_nnet(net, path)
    elif ext == ".onnx":
        _need("onnx", "onnx", f"writing the ONNX model {os.fspath(path)!r}")
        from ._io_onnx import write_onnx

        write_onnx(net, path, dtype=dtype, io_dtype=io_dtype)
    elif ext == ".pt":
        _need("torch", "torch", f"writing the PyTorch model {os.fspath(path)!r}")
        from ._io_torch import write_torch

        write_torch(net, path, torchscript=torchscript, dtype=dtype, io_dtype=io_dtype)
    else:
        from ._io_npz import write_npz

        write_npz(net, path)


def _not_float64(net: Network) -> int:
    """How many exact (rational) parameters of ``net`` (its normalisation included) float64
    cannot hold."""
    from fractions import Fraction

    from ._network import Activation, BatchNorm, Conv2d, Dense

    count = 0
    for lyr in net.layers:
        arrays = ((lyr.weight, lyr.bias) if isinstance(lyr, Dense | Conv2d) else
                  (lyr.scale, lyr.shift) if isinstance(lyr, BatchNorm) else
                  (lyr.slopes,) if isinstance(lyr, Activation) and lyr.slopes is not None
                  else ())
        for a in arrays:
            if a.dtype == object:
                count += sum(Fraction(float(x)) != x for x in a.reshape(-1).tolist())
    nrm = net.normalization  # exact rationals; every float format writes them as floats
    if nrm is not None:
        for v in (nrm.input_mean, nrm.input_range, nrm.output_mean, nrm.output_range,
                  nrm.input_min, nrm.input_max):
            if v is not None:
                count += sum(Fraction(float(x)) != x for x in v.tolist())
    return count


def stored_dtype(net: Network) -> str:
    """``'float32'`` when the network holds float weights as float32 arrays (the readers
    do so for a float32 model; values that folding made wider stay float64), else
    ``'float64'``."""
    import numpy as np

    from ._network import BatchNorm, Conv2d, Dense

    arrays = [a for lyr in net.layers if isinstance(lyr, Dense | Conv2d | BatchNorm)
              for a in ((lyr.weight, lyr.bias) if isinstance(lyr, Dense | Conv2d)
                        else (lyr.scale, lyr.shift))]
    return "float32" if any(a.dtype == np.float32 for a in arrays) else "float64"


def natural_dtype(net: Network) -> str:
    """``'float32'`` when every parameter (normalisation and clip bounds included) is
    exactly a float32 value, else ``'float64'``."""
    import numpy as np

    from ._network import Activation, BatchNorm, Conv2d, Dense

    arrays: list[np.ndarray] = []
    for layer in as_float(net).layers:
        if isinstance(layer, Dense | Conv2d):
            arrays += [layer.weight, layer.bias]
        elif isinstance(layer, BatchNorm):
            arrays += [layer.scale, layer.shift]
        elif isinstance(layer, Activation):
            if layer.slopes is not None:
                arrays.append(layer.slopes)
            if layer.bounds is not None:  # written as tensors of the model's type
                arrays.append(np.array([float(v) for v in layer.bounds if v is not None]))
    nrm = net.normalization
    if nrm is not None:  # written in the model's type too
        arrays += [np.array([float(v) for v in a], dtype=np.float64) for a in (
            nrm.input_mean, nrm.input_range, nrm.output_mean, nrm.output_range,
            nrm.input_min, nrm.input_max) if a is not None]
    for a in arrays:
        with np.errstate(over="ignore"):
            if not np.array_equal(a.astype(np.float32).astype(np.float64), a):
                return "float64"
    return "float32"
