"""A minimal exact multilayer perceptron used by every checker in ``proofs``.

The representation is deliberately tiny and independent of ``nnreduce``'s
reduction code: a list of dense layers, each with exact rational weights and
biases and one activation out of ``relu``, ``leaky_relu`` (with its slope
``alpha``) and ``identity``.  Networks from ``nnreduce`` (and plain
``(W, b, activation)`` triples) are converted once, at the boundary, by
:func:`as_mlp`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from lumpcore import ModelFormatError, UnsupportedLayerError, to_rational

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "DenseLayer",
    "as_mlp",
    "evaluate_exact",
    "fold_normalization",
    "network_core",
]

#: Activations the exact checkers understand.
ACTIVATIONS = ("relu", "leaky_relu", "identity")

_ALIASES = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "leakyrelu": "leaky_relu",
    "identity": "identity",
    "linear": "identity",
    "none": "identity",
}


@dataclass(frozen=True)
class DenseLayer:
    """One dense layer ``x_out = act(W x_in + b)`` in exact arithmetic.

    Attributes
    ----------
    weight : tuple of tuple of Fraction
        ``weight[j][i]`` is the weight from input ``i`` to neuron ``j``.
    bias : tuple of Fraction
        One bias per neuron.
    activation : str
        ``"relu"``, ``"leaky_relu"`` or ``"identity"``.
    alpha : Fraction
        The negative slope of ``leaky_relu`` (0 otherwise).
    """

    weight: tuple[tuple[Fraction, ...], ...]
    bias: tuple[Fraction, ...]
    activation: str
    alpha: Fraction = Fraction(0)

    @property
    def n_out(self) -> int:
        """Number of neurons of the layer."""
        return len(self.bias)

    def act(self, y: Fraction) -> Fraction:
        """The activation applied to one exact pre-activation value."""
        if self.activation == "identity":
            return y
        if y > 0:
            return y
        return Fraction(0) if self.activation == "relu" else self.alpha * y


@dataclass(frozen=True)
class MLP:
    """An exact dense network: ``n_inputs`` inputs, then ``layers`` in order.

    Attributes
    ----------
    n_inputs : int
        Number of inputs.
    layers : tuple of DenseLayer
        Hidden layers and the output layer, in order.
    """

    n_inputs: int
    layers: tuple[DenseLayer, ...]

    @property
    def n_outputs(self) -> int:
        """Number of outputs."""
        return self.layers[-1].n_out if self.layers else self.n_inputs

    @property
    def n_neurons(self) -> int:
        """Number of non-input neurons."""
        return sum(layer.n_out for layer in self.layers)

    @property
    def n_weights(self) -> int:
        """Number of weights (biases not counted)."""
        return sum(layer.n_out * (len(layer.weight[0]) if layer.weight else 0)
                   for layer in self.layers)

    def widths(self) -> tuple[int, ...]:
        """Layer widths, inputs first."""
        return (self.n_inputs, *(layer.n_out for layer in self.layers))


def _activation(spec: Any, where: str) -> tuple[str, Fraction]:
    alpha = Fraction(0)
    if isinstance(spec, tuple | list) and len(spec) == 2:
        spec, alpha_raw = spec
        alpha = to_rational(alpha_raw)
    if not isinstance(spec, str):
        raise UnsupportedLayerError(f"{where}: activation {spec!r} is not a name")
    name = _ALIASES.get(spec.strip().lower().replace("-", "_"))
    if name is None:
        raise UnsupportedLayerError(
            f"{where}: activation {spec!r} is not supported by the exact checkers (they "
            f"take piecewise-linear activations only); use one of {', '.join(ACTIVATIONS)}"
        )
    if name == "leaky_relu" and alpha < 0:
        raise UnsupportedLayerError(f"{where}: leaky_relu slope {alpha} must be >= 0")
    return name, alpha if name == "leaky_relu" else Fraction(0)


def _matrix(W: Any, rows: int | None, cols: int, where: str) -> tuple[tuple[Fraction, ...], ...]:
    try:
        out = tuple(tuple(to_rational(x) for x in row) for row in W)
    except TypeError:
        raise ModelFormatError(f"{where}: weights must be a 2-D array of numbers") from None
    if rows is not None and len(out) != rows:
        raise ModelFormatError(f"{where}: weight matrix has {len(out)} rows, expected {rows}")
    for j, row in enumerate(out):
        if len(row) != cols:
            raise ModelFormatError(
                f"{where}: weight row {j} has {len(row)} entries, expected {cols} "
                "(one per neuron of the previous layer)"
            )
    return out


def _from_triples(layers: Sequence[Any], n_inputs: int | None) -> MLP:
    if not layers:
        raise ModelFormatError("a network needs at least one layer")
    dense: list[DenseLayer] = []
    cols = n_inputs
    for k, item in enumerate(layers):
        where = f"layer {k + 1}"
        if not isinstance(item, tuple | list) or len(item) not in (3, 4):
            raise ModelFormatError(
                f"{where}: expected (W, b, activation), got {type(item).__name__}")
        W, b, act = item[0], item[1], item[2]
        if len(item) == 4:
            act = (act, item[3])
        bias = tuple(to_rational(x) for x in b)
        if cols is None:
            first = list(W)
            cols = len(first[0]) if first else 0
        weight = _matrix(W, len(bias), cols, where)
        name, alpha = _activation(act, where)
        dense.append(DenseLayer(weight, bias, name, alpha))
        cols = len(bias)
    assert n_inputs is not None or dense
    n_in = n_inputs if n_inputs is not None else len(dense[0].weight[0])
    return MLP(n_in, tuple(dense))


def as_mlp(net: Any, *, relu_form: bool = False) -> MLP:
    """Convert ``net`` to an exact :class:`MLP` (validating it once).

    Accepted: an :class:`MLP`; a sequence of ``(W, b, activation)`` triples
    (activation a name or ``("leaky_relu", alpha)``); any object with a
    ``dense_layers()`` method returning such triples, or with a ``layers``
    attribute of objects with ``weight``, ``bias``, ``activation`` (and
    ``alpha``) attributes, as ``nnreduce``'s network model provides.
    ``relu_form``: see :func:`network_core`.
    """
    if isinstance(net, MLP):
        return net
    if _is_nnreduce_network(net):
        return network_core(net, relu_form=relu_form)
    n_inputs = getattr(net, "n_inputs", None)
    if n_inputs is None:
        n_inputs = getattr(net, "input_size", None)
    for name in ("dense_layers", "dense", "to_dense"):
        meth = getattr(net, name, None)
        if callable(meth):
            return _from_triples(list(meth()), n_inputs)
    layers = getattr(net, "layers", None)
    if layers is not None and not isinstance(net, list | tuple):
        triples = []
        for layer in layers:
            W = getattr(layer, "weight", None)
            if W is None:
                W = layer.W
            b = getattr(layer, "bias", None)
            if b is None:
                b = layer.b
            act = getattr(layer, "activation", "identity")
            alpha = getattr(layer, "alpha", None)
            triples.append((W, b, act) if alpha is None else (W, b, act, alpha))
        return _from_triples(triples, n_inputs)
    if isinstance(net, list | tuple):
        return _from_triples(net, None)
    raise ModelFormatError(
        f"cannot read a network from {type(net).__name__}; pass an nnreduce network "
        "or a list of (W, b, activation) triples"
    )


def _is_nnreduce_network(net: Any) -> bool:
    try:
        from nnreduce import Network
    except ImportError:  # pragma: no cover
        return False
    return isinstance(net, Network)


def network_core(net: Any, *, relu_form: bool = False) -> MLP:
    """The dense core of an ``nnreduce.Network`` (normalisation NOT included).

    PReLU with one shared (or all equal) non-negative slope becomes
    ``leaky_relu``; other activations raise :class:`UnsupportedLayerError`.
    With ``relu_form`` (the SMT checker), a network with pooling, batch norm,
    clips or hard sigmoids is rewritten exactly into ReLU layers
    (:mod:`proofs._pooling`).
    Other networks keep nnreduce's plain dense view: it builds the same
    layers faster (numpy instead of sparse forms) and is the layer structure
    LEO returns.
    """
    import math

    from nnreduce import Activation, AvgPool2d, BatchNorm, MaxPool2d, dense_layers

    if relu_form and any(isinstance(lyr, MaxPool2d | AvgPool2d | BatchNorm) or (
            isinstance(lyr, Activation) and lyr.kind in ("clip", "hard_sigmoid"))
                         for lyr in net.layers):
        from ._pooling import relu_form_triples

        return _from_triples(relu_form_triples(net), math.prod(net.input_shape))

    triples: list[tuple[Any, Any, Any]] = []
    for k, (W, b, act) in enumerate(dense_layers(net)):
        triples.append((W.tolist(), b.tolist(), activation_spec(act, f"layer {k + 1}")))
    return _from_triples(triples, math.prod(net.input_shape))


def activation_spec(act: Any, where: str) -> Any:
    """An nnreduce activation as this module's spec: its name, or ``("leaky_relu",
    alpha)``; a PReLU with one shared slope is a leaky ReLU.  Other kinds are
    returned by name (and refused by :func:`as_mlp`)."""
    if act.kind == "leaky_relu":
        return ("leaky_relu", act.alpha)
    if act.kind == "prelu":
        slopes = {to_rational(s) for s in np.asarray(act.slopes).reshape(-1)}
        if len(slopes) != 1:
            raise UnsupportedLayerError(
                f"{where}: PReLU with per-channel slopes is not supported by the exact checkers")
        return ("leaky_relu", slopes.pop())
    return act.kind


def fold_normalization(mlp: MLP, nrm: Any) -> MLP:
    """Fold NNet input/output mean and range exactly into the first and last layer.

    Clipping (``input_min``/``input_max``) is not folded: the caller restricts
    the inputs to the clip box instead.
    """
    if nrm is None:
        return mlp
    n_in, n_out = mlp.n_inputs, mlp.n_outputs

    def arr(a: Any, n: int) -> list[Fraction]:
        vals = [to_rational(v) for v in a]
        return vals * n if len(vals) == 1 else vals

    mean, rng = arr(nrm.input_mean, n_in), arr(nrm.input_range, n_in)
    omean, orng = arr(nrm.output_mean, n_out), arr(nrm.output_range, n_out)
    layers = list(mlp.layers)
    first = layers[0]
    W = tuple(tuple(w / r for w, r in zip(row, rng, strict=True)) for row in first.weight)
    b = tuple(bb - sum((w * m for w, m in zip(row, mean, strict=True)), Fraction(0))
              for row, bb in zip(W, first.bias, strict=True))
    layers[0] = DenseLayer(W, b, first.activation, first.alpha)
    last = layers[-1]
    if last.activation != "identity":
        raise UnsupportedLayerError("output normalisation after a non-linear output layer")
    layers[-1] = DenseLayer(
        tuple(tuple(w * orng[j] for w in row) for j, row in enumerate(last.weight)),
        tuple(bb * orng[j] + omean[j] for j, bb in enumerate(last.bias)),
        last.activation, last.alpha)
    return MLP(n_in, tuple(layers))


def evaluate_exact(net: MLP, x: Sequence[Any]) -> tuple[Fraction, ...]:
    """Evaluate ``net`` at ``x`` in exact rational arithmetic."""
    vals = [to_rational(v) for v in x]
    if len(vals) != net.n_inputs:
        raise ModelFormatError(f"input has {len(vals)} entries, the network takes {net.n_inputs}")
    for layer in net.layers:
        vals = [
            layer.act(sum((w * v for w, v in zip(row, vals, strict=True) if w), b))
            for row, b in zip(layer.weight, layer.bias, strict=True)
        ]
    return tuple(vals)
