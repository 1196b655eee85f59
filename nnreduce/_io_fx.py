"""PyTorch modules that are not ``nn.Sequential``: their forward, traced by ``torch.fx``.

A custom ``nn.Module`` whose ``forward`` applies layers one after the other
(``F.relu(self.fc1(x))``, ``x.view(x.size(0), -1)``, ``torch.flatten(x, 1)``,
...) is traced symbolically and turned into the equivalent list of standard
modules, which :func:`~nnreduce._io_torch.from_torch` then reads like the
children of an ``nn.Sequential``.  Anything else (two tensors combined, a
branch, an operator lumpkit has no layer for) raises
:class:`~lumpcore.UnsupportedLayerError` naming the traced node.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np

from lumpcore import UnsupportedLayerError

__all__ = ["InputOp", "traced_chain"]


@dataclass(frozen=True)
class InputOp:
    """``x op value`` of the data with a constant, as traced (``op``: Add, Sub, Mul, Div).

    ``value`` holds the constant's exact values (float64), in the shape it has
    in the forward; :func:`~nnreduce._io_torch.from_torch` folds a leading
    run of them into the input normalisation.
    """

    op: str
    value: np.ndarray


def _arith_table() -> dict[Any, str]:
    import torch

    return {operator.add: "Add", operator.sub: "Sub", operator.mul: "Mul",
            operator.truediv: "Div", torch.add: "Add", torch.sub: "Sub", torch.mul: "Mul",
            torch.div: "Div", torch.true_divide: "Div"}


_ARITH_METHODS = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div",
                  "true_divide": "Div"}


def _arith(node: Any, cur: Any, gm: Any, where: str) -> InputOp | None:
    """The :class:`InputOp` of ``cur op constant`` (``constant op cur`` for Add and Mul),
    ``None`` when ``node`` is no such arithmetic."""
    import torch

    if node.op == "call_function":
        op = _arith_table().get(node.target)
    elif node.op == "call_method":
        op = _ARITH_METHODS.get(str(node.target))
    else:
        op = None
    if op is None or len(node.args) != 2 or cur not in node.args:
        return None
    if node.kwargs:
        raise UnsupportedLayerError(f"{where}: {op} with {sorted(node.kwargs)}")
    a, b = node.args
    if a is not cur:
        if op in ("Sub", "Div"):
            raise UnsupportedLayerError(f"{where}: constant {op.lower()} data (only data "
                                        f"{op.lower()} constant)")
        a, b = b, a
    if b is cur:
        raise UnsupportedLayerError(f"{where}: {op} of the data with itself")
    is_attr = hasattr(b, "op") and b.op == "get_attr"
    if isinstance(b, bool) or not (is_attr or isinstance(b, int | float)):
        return None  # a computed operand: refused as not a chain by the caller
    if is_attr:
        t = reduce(getattr, str(b.target).split("."), gm)
        if not isinstance(t, torch.Tensor) or t.is_complex():
            raise UnsupportedLayerError(f"{where}: {op} by {type(t).__name__}")
        value = np.asarray(t.detach().cpu().double().numpy(), dtype=np.float64)
    else:
        value = np.asarray(float(b), dtype=np.float64)
    if not np.all(np.isfinite(value)):
        raise UnsupportedLayerError(f"{where}: {op} by a non-finite constant")
    return InputOp(op, value)


def _functional_table() -> dict[Any, str]:
    import torch
    import torch.nn.functional as F

    return {torch.relu: "relu", F.relu: "relu", torch.tanh: "tanh", F.tanh: "tanh",
            torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", F.leaky_relu: "leaky_relu",
            F.gelu: "gelu", torch.flatten: "flatten", F.max_pool2d: "max_pool2d",
            F.avg_pool2d: "avg_pool2d", F.softmax: "softmax", torch.softmax: "softmax",
            F.log_softmax: "log_softmax", torch.log_softmax: "log_softmax",
            F.dropout: "dropout", torch.dropout: "dropout", F.prelu: "unsupported",
            F.adaptive_avg_pool2d: "adaptive_avg_pool2d",
            F.adaptive_max_pool2d: "adaptive_max_pool2d", torch.mean: "mean",
            F.relu6: "relu6", F.hardtanh: "hardtanh", torch.clamp: "clamp",
            torch.clip: "clamp", F.elu: "elu", F.selu: "selu", torch.selu: "selu",
            F.celu: "celu", torch.celu: "celu", F.silu: "silu", F.softplus: "softplus",
            F.softsign: "softsign", F.hardsigmoid: "hardsigmoid", F.hardswish: "hardswish",
            F.mish: "mish"}


_METHODS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "flatten": "flatten",
            "view": "reshape", "reshape": "reshape", "softmax": "softmax",
            "log_softmax": "log_softmax", "contiguous": "skip", "mean": "mean",
            "clamp": "clamp", "clip": "clamp"}


_ONLY_BATCH = ("of a tensor's shape lumpkit uses only the batch size (x.size(0), "
               "x.shape[0]), and only in a flattening reshape")


def _arg(node: Any, pos: int, name: str, default: Any) -> Any:
    if len(node.args) > pos:
        return node.args[pos]
    return node.kwargs.get(name, default)


def traced_chain(module: Any) -> tuple[list[tuple[str, Any]], list[tuple[int, int]]]:
    """The modules ``module.forward`` applies, in order, as ``(name, module)`` pairs.

    Also returns ``(k, n)`` pairs: the ``k``-th ``nn.Flatten`` of the list is
    a reshape to ``(batch, n)``, to be checked against the flattened shape.
    """
    from torch import fx, nn

    try:
        gm = fx.symbolic_trace(module)
    except Exception as exc:  # fx raises TraceError, TypeError, ... on dynamic control flow
        raise UnsupportedLayerError(
            f"{type(module).__name__}: its forward cannot be traced by torch.fx ({exc}); "
            "export it to ONNX or write it as an nn.Sequential") from None
    table = _functional_table()
    out: list[tuple[str, Any]] = []
    sizes: list[tuple[int, int]] = []
    cur: Any = None  # the node holding the data tensor
    batch: set[Any] = set()  # nodes whose value is the data's batch size (or its shape)
    chain: set[Any] = set()  # the data tensors so far
    shapes: set[Any] = set()  # nodes whose value is the shape of a tensor of the chain
    for node in gm.graph.nodes:
        target = getattr(node.target, "__name__", node.target)
        where = f"traced node {node.name!r} ({node.op} {target})"
        if node.op == "placeholder":
            if cur is not None:
                raise UnsupportedLayerError(f"{where}: the forward takes more than one input")
            cur = node
            chain.add(node)
            continue
        if node.op == "get_attr":
            continue  # a parameter or buffer: the node that uses it is refused below
        if node.op == "output":
            res = node.args[0]
            if res is not cur:
                raise UnsupportedLayerError(f"{where}: the output is not the chain's last tensor")
            continue
        arith = _arith(node, cur, gm, where)
        if arith is not None:
            out.append((node.name, arith))
            cur = node
            chain.add(node)
            continue
        data = [a for a in node.all_input_nodes if a not in batch and a not in shapes]
        if node.op in ("call_method", "call_function") and len(data) == 1 and \
                data[0] in chain and node.args and node.args[0] is data[0]:
            # x.size(0), x.size() / x.shape (then [0]) of any tensor of the chain (they share
            # the batch size): used only as a reshape target below
            if node.op == "call_method" and node.target == "size":
                dim = _arg(node, 1, "dim", None)
                if dim is None:
                    shapes.add(node)
                    continue
                if dim == 0:
                    batch.add(node)
                    continue
                raise UnsupportedLayerError(f"{where}: {_ONLY_BATCH}")
            if node.op == "call_function" and node.target is getattr and \
                    node.args[1:] == ("shape",):
                shapes.add(node)
                continue
        if node.op == "call_function" and node.target is operator.getitem and \
                len(node.args) == 2 and node.args[0] in shapes:
            if node.args[1] != 0:
                raise UnsupportedLayerError(f"{where}: {_ONLY_BATCH}")
            batch.add(node)
            continue
        if data != [cur] or (node.args and node.args[0] is not cur):
            raise UnsupportedLayerError(
                f"{where}: the forward is not a single chain of layers (this node reads "
                f"{[a.name for a in node.all_input_nodes]}, the current tensor is {cur.name!r})")
        if node.op == "call_module":
            mod = gm.get_submodule(node.target)
            out.append((str(node.target), mod))
        elif (node.op == "call_function" and node.target in table
              and table[node.target] == "mean") or (node.op == "call_method"
                                                    and node.target == "mean"):
            out.extend((node.name, mod) for mod in _spatial_mean(node, where, nn))
        elif node.op == "call_function" and node.target in table:
            what = table[node.target]
            mod = _functional_module(what, node, where, nn)
            if mod is not None:
                out.append((node.name, mod))
            if what == "flatten":
                _check_flatten(node, where, start=_arg(node, 1, "start_dim", 0),
                               end=_arg(node, 2, "end_dim", -1))
        elif node.op == "call_method" and node.target in _METHODS:
            what = _METHODS[str(node.target)]
            if what == "skip":
                pass
            elif what == "flatten":
                _check_flatten(node, where, start=_arg(node, 1, "start_dim", 0),
                               end=_arg(node, 2, "end_dim", -1))
                out.append((node.name, nn.Flatten()))
            elif what == "reshape":
                n = _flatten_target(node, batch, where)
                if n is not None:
                    sizes.append((sum(isinstance(m, nn.Flatten) for _, m in out), n))
                out.append((node.name, nn.Flatten()))
            else:
                mod = _functional_module(what, node, where, nn)
                assert mod is not None
                out.append((node.name, mod))
        else:
            raise UnsupportedLayerError(f"{where}: not supported by lumpkit")
        cur = node
        chain.add(node)
    return out, sizes


def _spatial_mean(node: Any, where: str, nn: Any) -> list[Any]:
    """``x.mean(dim=(2, 3))`` (or ``(-2, -1)``, ``keepdim``) of a (batch, C, H, W) tensor:
    a global average pooling, then a flatten unless ``keepdim``."""
    dims = _arg(node, 1, "dim", None)
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    keep = bool(_arg(node, 2, "keepdim", False))
    if sorted(int(d) % 4 for d in dims) != [2, 3] or any(d not in (2, 3, -2, -1) for d in dims):
        raise UnsupportedLayerError(
            f"{where}: a mean over dims {dims}; lumpkit takes one over the two spatial "
            "dimensions (2, 3) of a (batch, C, H, W) tensor")
    return [nn.AdaptiveAvgPool2d(1)] + ([] if keep else [nn.Flatten()])


def _check_flatten(node: Any, where: str, start: Any, end: Any) -> None:
    if start != 1 or end != -1:
        raise UnsupportedLayerError(f"{where}: only a flatten from dimension 1 to the end")


def _flatten_target(node: Any, batch: set[Any], where: str) -> int | None:
    """``x.view(batch, n)`` / ``x.view(batch, -1)``: ``n`` (``None`` for -1); else raise."""
    shape = list(node.args[1:])
    if len(shape) == 1 and isinstance(shape[0], tuple | list):
        shape = list(shape[0])
    if len(shape) == 2 and (shape[0] in batch or shape[0] == -1) and isinstance(shape[1], int) \
            and shape[1] != 0 and not (shape[0] == -1 and shape[1] == -1):
        return None if shape[1] == -1 else int(shape[1])
    shown = ["batch" if s in batch else s for s in shape]
    raise UnsupportedLayerError(f"{where}: reshape to {shown} (only to (batch, n), a flatten)")


#: Functional activations without parameters, by the torch.nn module computing them.
_PLAIN = {"selu": "SELU", "silu": "SiLU", "softsign": "Softsign", "hardsigmoid": "Hardsigmoid",
          "hardswish": "Hardswish", "mish": "Mish"}


def _number_arg(node: Any, pos: int, name: str, default: float, where: str) -> float:
    """A number argument of a traced call (a tensor computed in the forward is refused)."""
    value = _arg(node, pos, name, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise UnsupportedLayerError(f"{where}: {name}={value!r} is not a number")
    return float(value)


def _functional_module(what: str, node: Any, where: str, nn: Any) -> Any:
    """The standard module computing a functional call, ``None`` for a no-op."""
    if what == "relu":
        return nn.ReLU()
    if what == "tanh":
        return nn.Tanh()
    if what == "sigmoid":
        return nn.Sigmoid()
    if what == "leaky_relu":
        return nn.LeakyReLU(float(_arg(node, 1, "negative_slope", 0.01)))
    if what == "gelu":
        return nn.GELU(approximate=str(node.kwargs.get("approximate", "none")))
    if what == "flatten":
        return nn.Flatten()
    if what in _PLAIN:
        return getattr(nn, _PLAIN[what])()
    if what in ("elu", "celu"):
        alpha = _number_arg(node, 1, "alpha", 1.0, where)
        return nn.ELU(alpha) if what == "elu" else nn.CELU(alpha)
    if what == "softplus":
        return nn.Softplus(_number_arg(node, 1, "beta", 1.0, where),
                           _number_arg(node, 2, "threshold", 20.0, where))
    if what == "relu6":
        return nn.ReLU6()
    if what == "hardtanh":
        return nn.Hardtanh(float(_arg(node, 1, "min_val", -1.0)),
                           float(_arg(node, 2, "max_val", 1.0)))
    if what == "clamp":
        lo, hi = _arg(node, 1, "min", None), _arg(node, 2, "max", None)
        if not all(v is None or isinstance(v, int | float) for v in (lo, hi)):
            raise UnsupportedLayerError(f"{where}: clamp to tensor bounds")
        if lo is None and hi is None:
            raise UnsupportedLayerError(f"{where}: clamp without bounds")
        return nn.Hardtanh(float("-inf") if lo is None else float(lo),
                           float("inf") if hi is None else float(hi))
    if what in ("softmax", "log_softmax"):
        dim = _arg(node, 1, "dim", None)
        return nn.Softmax(dim=dim) if what == "softmax" else nn.LogSoftmax(dim=dim)
    if what == "dropout":
        training = _arg(node, 2, "train" if node.target.__name__ == "dropout" and
                        node.target.__module__ == "torch" else "training", True)
        if training is not False:
            raise UnsupportedLayerError(
                f"{where}: dropout that is active (training={training!r}); pass "
                "training=self.training and call model.eval() before converting")
        return None
    if what in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
        size = _arg(node, 1, "output_size", None)
        if what == "adaptive_max_pool2d" and _arg(node, 2, "return_indices", False):
            raise UnsupportedLayerError(f"{where}: return_indices")
        return (nn.AdaptiveAvgPool2d(size) if what == "adaptive_avg_pool2d"
                else nn.AdaptiveMaxPool2d(size))
    if what in ("max_pool2d", "avg_pool2d"):
        kernel = _arg(node, 1, "kernel_size", None)
        stride = _arg(node, 2, "stride", None) or kernel
        padding = _arg(node, 3, "padding", 0)
        if what == "max_pool2d":
            if _arg(node, 4, "dilation", 1) not in (1, (1, 1)):
                raise UnsupportedLayerError(f"{where}: dilation")
            # (ceil_mode: read where it changes nothing, checked once the shapes are known)
            return nn.MaxPool2d(kernel, stride, padding,
                                ceil_mode=bool(_arg(node, 5, "ceil_mode", False)))
        if _arg(node, 6, "divisor_override", None):
            raise UnsupportedLayerError(f"{where}: divisor_override")
        return nn.AvgPool2d(kernel, stride, padding, ceil_mode=bool(_arg(node, 4, "ceil_mode",
                                                                          False)),
                            count_include_pad=bool(_arg(node, 5, "count_include_pad", True)))
    raise UnsupportedLayerError(f"{where}: not supported by lumpkit")
