"""Element-wise activations that ONNX exporters write as several operators.

PyTorch's exporter (``torch.onnx.export(..., dynamo=False)``) writes SiLU as
``x * Sigmoid(x)``, Mish before opset 18 as ``x * Tanh(Softplus(x))``,
Hardswish before opset 14 as ``x * HardSigmoid(x)``, Softsign as
``x / (Abs(x) + 1)``, and GELU before opset 20 as
``x * (Erf(x / sqrt 2) + 1) * 0.5`` (erf form) or
``0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x * x * x)))`` (tanh
form).  Each reads the chain's tensor ``x`` more than once, so the chain
reader hands such a fan-out here: :func:`match_activation` collects the
element-wise nodes from ``x`` on, and at every point where one tensor
alone leaves them (the longest first) rebuilds that tensor as an
expression in ``x`` and compares it with the forms above (up to the order
of the operands of ``Add`` and ``Mul`` and the grouping of products and
sums).

A constant of such a form (``sqrt 2``, ``0.044715``, ...) is accepted when it
is the float32 or the float64 value of the defining constant: the
activation read is the function with the exact constant, which the file
computes to its own precision.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lumpcore import to_rational

from ._network import Activation

__all__ = ["match_activation"]

#: Operators an activation's subgraph may consist of.
_ELEMENTWISE = frozenset({"Mul", "Add", "Div", "Abs", "Sigmoid", "Tanh", "Softplus",
                          "HardSigmoid", "Erf", "Pow"})
#: A subgraph of more nodes is not one of the forms (and not worth rebuilding).
_MAX_NODES = 16

# an expression: "x", ("const", float), or (op, attributes, operands)
Expr = Any


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def match_activation(nodes: Sequence[Any], start: int, x: str,
                     constant: Callable[[str], np.ndarray | None],
                     consumers: dict[str, list[int]]
                     ) -> tuple[Activation, list[int], str] | None:
    """The activation that ``nodes[start:]`` compute from the tensor ``x``, if any.

    Parameters
    ----------
    nodes : sequence of onnx NodeProto
        The graph's nodes in their (topological) order.
    start : int
        The first node that reads ``x``.
    x : str
        The chain's current tensor.
    constant : callable
        The value of a constant tensor by name (``None`` for a data tensor).
    consumers : dict
        Per tensor name, the indices of the nodes that read it (``-1`` for a
        graph output).

    Returns
    -------
    (Activation, list of int, str) or None
        The activation, the indices of the nodes it replaces and the name of
        its output tensor; ``None`` when the nodes are not one of the forms
        of the module notes.
    """
    region = {x}
    used: list[int] = []
    producer: dict[str, Any] = {}
    closed: list[tuple[int, str]] = []  # (nodes used, the one open tensor) so far
    for j in range(start, len(nodes)):
        node = nodes[j]
        ins = [i for i in node.input if i]
        if node.op_type == "Constant" or not any(i in region for i in ins):
            continue  # constants (and other constant folding) between the nodes
        if node.op_type not in _ELEMENTWISE or len(node.output) != 1 or any(
                i not in region and constant(i) is None for i in ins) or len(used) == _MAX_NODES:
            break
        used.append(j)
        out = node.output[0]
        region.add(out)
        producer[out] = node
        done = set(used)
        if all(set(consumers.get(t, [])) <= done for t in region if t != out):
            closed.append((len(used), out))
    for n_used, sink in reversed(closed):  # the longest form first: x * sigmoid(x) * c
        expr = _expression(sink, x, producer, constant)
        act = None if expr is None else _recognise(expr)
        if act is not None:
            return act, used[:n_used], sink
    return None


def _expression(name: str, x: str, producer: dict[str, Any],
                constant: Callable[[str], np.ndarray | None]) -> Expr | None:
    if name == x:
        return "x"
    if name not in producer:
        value = constant(name)
        if value is None or np.size(value) != 1 or np.asarray(value).dtype.kind != "f":
            return None
        return ("const", float(np.asarray(value).reshape(-1)[0]))
    node = producer[name]
    operands = [_expression(i, x, producer, constant) for i in node.input if i]
    if any(o is None for o in operands):
        return None
    return (node.op_type, _attrs(node), tuple(operands))


def _is(e: Expr, op: str) -> bool:
    return isinstance(e, tuple) and e[0] == op


def _arg(e: Expr) -> Expr:
    """The single operand of a unary operator."""
    return e[2][0] if len(e[2]) == 1 else None


def _const(e: Expr, value: float) -> bool:
    """``e`` is the float32 rounding of ``value`` or its float64 value (to a few units in
    the last place: exporters compute ``sqrt(2 / pi)`` in different ways)."""
    return _is(e, "const") and (e[1] == float(np.float32(value))
                                or abs(e[1] - value) <= 4 * math.ulp(value))


def _flatten(e: Expr, op: str) -> list[Expr]:
    """The operands of a tree of ``op`` (Mul or Add); ``Pow(y, 3)`` is ``y * y * y``."""
    if _is(e, op) and len(e[2]) == 2:
        return _flatten(e[2][0], op) + _flatten(e[2][1], op)
    if op == "Mul" and _is(e, "Pow") and len(e[2]) == 2 and _const(e[2][1], 3.0):
        return [e[2][0]] * 3
    return [e]


def _matches(parts: list[Expr], tests: list[Callable[[Expr], bool]]) -> bool:
    """Whether ``parts`` and ``tests`` pair up one to one (any order)."""
    if len(parts) != len(tests):
        return False
    return any(all(t(p) for t, p in zip(tests, perm, strict=True))
               for perm in itertools.permutations(parts))


def _x(e: Expr) -> bool:
    return bool(e == "x")


def _unary(op: str, inner: Callable[[Expr], bool]) -> Callable[[Expr], bool]:
    return lambda e: _is(e, op) and _arg(e) is not None and inner(_arg(e))


def _number(value: float) -> Callable[[Expr], bool]:
    return lambda e: _const(e, value)


def _sum(*tests: Callable[[Expr], bool]) -> Callable[[Expr], bool]:
    return lambda e: _matches(_flatten(e, "Add"), list(tests))


def _product(*tests: Callable[[Expr], bool]) -> Callable[[Expr], bool]:
    return lambda e: _matches(_flatten(e, "Mul"), list(tests))


def _erf_argument(e: Expr) -> bool:
    """``x / sqrt 2`` or ``x * (1 / sqrt 2)``."""
    if _is(e, "Div") and len(e[2]) == 2:
        return _x(e[2][0]) and _const(e[2][1], math.sqrt(2.0))
    return _product(_x, _number(math.sqrt(0.5)))(e)


_HALF, _ONE = _number(0.5), _number(1.0)
#: x * (erf(x / sqrt 2) + 1) * 0.5
_GELU = _product(_x, _HALF, _sum(_ONE, _unary("Erf", _erf_argument)))
#: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
_GELU_TANH = _product(_x, _HALF, _sum(_ONE, _unary("Tanh", _product(
    _number(math.sqrt(2.0 / math.pi)),
    _sum(_x, _product(_number(0.044715), _x, _x, _x))))))
_SILU = _product(_x, _unary("Sigmoid", _x))
_MISH = _product(_x, _unary("Tanh", _unary("Softplus", _x)))
_HARD_SWISH = _product(_x, _unary("HardSigmoid", _x))


def _recognise(e: Expr) -> Activation | None:
    if _SILU(e):
        return Activation("silu")
    if _MISH(e):
        return Activation("mish")
    if _HARD_SWISH(e):
        hs = next(f for f in _flatten(e, "Mul") if _is(f, "HardSigmoid"))
        return Activation("hard_swish",
                          alpha=to_rational(float(hs[1].get("alpha", np.float32(0.2)))),
                          beta=to_rational(float(hs[1].get("beta", 0.5))))
    if _is(e, "Div") and len(e[2]) == 2 and _x(e[2][0]) and _sum(
            _ONE, _unary("Abs", _x))(e[2][1]):
        return Activation("softsign")
    if _GELU(e):
        return Activation("gelu")
    if _GELU_TANH(e):
        return Activation("gelu_tanh")
    return None
