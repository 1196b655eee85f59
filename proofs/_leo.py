"""LEO: stable ReLUs on an input box (Serra, Kumar, Ramalingam 2020).

On a box of inputs a ReLU is *stably inactive* when its pre-activation is
``<= 0`` everywhere (its output is 0: remove it) and *stably active* when it
is ``>= 0`` everywhere (it is the identity there).  Decisions, cheapest first:

1. exact interval arithmetic (rationals, outward rounding): rigorous;
2. the LP relaxation of the big-M MILP, then 3. one MILP per remaining
   neuron and direction (scipy's HiGHS ``milp``).  A float optimum is only
   used with a safety margin: a neuron is declared stable only if the
   solver's *proved* bound (its dual bound, valid even at a time limit) is
   beyond ``-margin``; with ``confirm="z3"`` (default for small networks)
   every LP/MILP decision is additionally confirmed by an exact z3 query.

Then, in exact arithmetic: inactive neurons are removed; stably active
neurons whose incoming weight row is a linear combination of other active
rows of the same layer are folded into the next layer; a layer all of whose
remaining neurons are stable is affine on the box and is multiplied into the
next layer.  The result equals the original **on the box only**.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from lumpcore import ModelFormatError, UnsupportedLayerError, rational_to_str

from ._mlp import MLP, DenseLayer, as_mlp
from ._smt import _prepare_box_for, _round_down, _round_up, _seconds, sign_possible

__all__ = ["LeoResult", "leo_reduce"]


@dataclass(frozen=True, eq=False)
class LeoResult:
    """The answer of :func:`leo_reduce`.

    Attributes
    ----------
    network : nnreduce.Network
        The reduced network (exact rational weights), equal to the original
        on ``box`` only; the original's NNet normalisation is kept.
    box : tuple of (Fraction, Fraction)
        The input box (in the network's input units; the NNet clip interval
        when none was given).
    neurons_before, neurons_after : int
        Hidden ReLU neurons before and after.
    inactive, active : tuple of tuple of int
        Per hidden layer, the stably inactive / stably active neurons.
    folded : int
        Stably active neurons removed because their row is a linear
        combination of other active rows.
    layers_removed : int
        Hidden layers multiplied into the next one.
    decided_by : dict
        How many stability decisions each method made
        (``interval``, ``lp``, ``milp``, ``z3``).
    milp_calls : int
        Number of LP/MILP solves.
    milp_seconds : float
        Time spent in the LP/MILP solver.
    seconds : float
        Total wall-clock time.
    guarantee : str
        What is guaranteed about the result.
    undecided : int
        Hidden ReLUs kept because they were not proved stable.
    extra : dict
        ``seen_both_signs``: how many of the undecided were observed with both
        signs at sampled inputs (really unstable, no solver asked).
    """

    network: Any
    box: tuple[tuple[Fraction, Fraction], ...]
    neurons_before: int
    neurons_after: int
    inactive: tuple[tuple[int, ...], ...]
    active: tuple[tuple[int, ...], ...]
    folded: int
    layers_removed: int
    decided_by: dict[str, int]
    milp_calls: int
    milp_seconds: float
    seconds: float
    guarantee: str
    undecided: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def removed_fraction(self) -> float:
        """Fraction of hidden neurons removed."""
        return 1 - self.neurons_after / self.neurons_before if self.neurons_before else 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "neurons_before": self.neurons_before,
            "neurons_after": self.neurons_after,
            "removed_fraction": round(self.removed_fraction, 6),
            "stably_inactive": sum(len(x) for x in self.inactive),
            "stably_active": sum(len(x) for x in self.active),
            "undecided": self.undecided,
            "seen_both_signs": self.extra.get("seen_both_signs", 0),
            "folded": self.folded,
            "layers_removed": self.layers_removed,
            "decided_by": self.decided_by,
            "milp_calls": self.milp_calls,
            "milp_seconds": round(self.milp_seconds, 6),
            "seconds": round(self.seconds, 6),
            "box": [[rational_to_str(lo), rational_to_str(hi)] for lo, hi in self.box],
            "guarantee": self.guarantee,
        }


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence C-level prints of the MILP solver (HiGHS writes some to fd 1)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # pytest capture, notebooks
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


class _Model:
    """A growing big-M MILP over the network's first layers (float64)."""

    def __init__(self, lo: list[float], hi: list[float]) -> None:
        self.lb = list(lo)
        self.ub = list(hi)
        self.integer = [0] * len(lo)
        self.rows: list[dict[int, float]] = []
        self.rlo: list[float] = []
        self.rhi: list[float] = []

    def var(self, lb: float, ub: float, integer: bool = False) -> int:
        self.lb.append(lb)
        self.ub.append(ub)
        self.integer.append(1 if integer else 0)
        return len(self.lb) - 1

    def row(self, coefs: dict[int, float], lo: float, hi: float) -> None:
        self.rows.append(coefs)
        self.rlo.append(lo)
        self.rhi.append(hi)

    def optimise(self, obj: dict[int, float], maximise: bool, relax: bool,
                 time_limit: float) -> float:
        """A proved bound on max (or min) of ``obj``; +-inf if the solver gives none."""
        from scipy.optimize import Bounds, LinearConstraint, milp
        from scipy.sparse import csr_array

        n = len(self.lb)
        c = np.zeros(n)
        for k, v in obj.items():
            c[k] = -v if maximise else v
        data, ri, ci = [], [], []
        for r, coefs in enumerate(self.rows):
            for k, v in coefs.items():
                data.append(v)
                ri.append(r)
                ci.append(k)
        cons = []
        if self.rows:
            A = csr_array((data, (ri, ci)), shape=(len(self.rows), n))
            cons = [LinearConstraint(A, np.array(self.rlo), np.array(self.rhi))]
        integ = np.zeros(n) if relax else np.array(self.integer)
        with _quiet_stdout():
            res = milp(c, constraints=cons, integrality=integ, bounds=Bounds(self.lb, self.ub),
                       options={"time_limit": max(time_limit, 0.01), "disp": False})
        bound = getattr(res, "mip_dual_bound", None)
        if res.status == 0 and res.fun is not None:
            best = float(res.fun) if bound is None or relax else min(float(res.fun), float(bound))
        elif bound is not None and np.isfinite(bound):
            best = float(bound)
        else:
            return float("inf") if maximise else float("-inf")
        return -best if maximise else best


def _interval(rows: tuple[tuple[Fraction, ...], ...], bias: tuple[Fraction, ...],
              lo: list[Fraction], hi: list[Fraction]) -> tuple[list[Fraction], list[Fraction]]:
    out_lo, out_hi = [], []
    for row, b in zip(rows, bias, strict=True):
        a = c = b
        for w, l_, h_ in zip(row, lo, hi, strict=True):
            if w > 0:
                a += w * l_
                c += w * h_
            elif w < 0:
                a += w * h_
                c += w * l_
        out_lo.append(_round_down(a))
        out_hi.append(_round_up(c))
    return out_lo, out_hi


def leo_reduce(
    net: Any,
    box: Any,
    *,
    milp: bool = True,
    milp_time_limit: float = 10.0,
    time_limit: float = 600.0,
    margin: float = 1e-6,
    confirm: str = "auto",
) -> LeoResult:
    """Remove stably inactive and fold stably active ReLUs on an input box.

    Parameters
    ----------
    net : nnreduce.Network or list of (W, b, activation)
        A dense ReLU network (hidden layers ReLU; other activations are left
        untouched).
    box : str or sequence of (lo, hi)
        The input box in the network's input units (None: an NNet network's
        clip interval).  The stability analysis runs on the box's image under
        the network's clipping.
    milp : bool
        Use LP and MILP bounds after interval bounds (default); False: only
        exact interval bounds.
    milp_time_limit : float
        Seconds per LP/MILP solve (the proved bound at the limit is used).
    time_limit : float
        Seconds for all solves; later neurons stay undecided when exceeded.
    margin : float
        A float LP/MILP bound decides only when it is beyond ``-margin``.
    confirm : {"auto", "z3", "none"}
        Confirm every LP/MILP decision with an exact z3 query ("z3"), only
        for networks of at most 60 hidden ReLUs ("auto"), or never.

    Returns
    -------
    LeoResult

    Raises
    ------
    lumpcore.ModelFormatError
        For a malformed box, a negative or NaN ``margin`` or a NaN time limit.

    Examples
    --------
    >>> net = [([[1, 0], [0, 1], [-1, -1]], [0, 0, -1], "relu"), ([[1, 1, 1]], [0], "identity")]
    >>> res = leo_reduce(net, "0:1,0:1")
    >>> res.neurons_before, res.neurons_after, res.layers_removed
    (3, 0, 1)
    """
    start = time.perf_counter()
    if confirm not in ("auto", "z3", "none"):
        raise ModelFormatError(f"confirm must be 'auto', 'z3' or 'none', got {confirm!r}")
    milp_time_limit = _seconds(milp_time_limit, "milp_time_limit")
    time_limit = _seconds(time_limit, "time_limit")
    try:
        margin = float(margin)
    except (TypeError, ValueError):
        raise ModelFormatError(f"margin must be a finite number >= 0, got {margin!r}") from None
    if not 0 <= margin < float("inf"):
        # a negative margin would accept a float bound on the wrong side of 0 as a proof
        raise ModelFormatError(f"margin must be a finite number >= 0, got {margin!r}")
    mlp = as_mlp(net)
    nrm = getattr(net, "normalization", None)
    raw_box, core_box = _prepare_box_for(net, mlp.n_inputs, box)
    hidden = mlp.layers[:-1]
    n_before = sum(layer.n_out for layer in hidden)
    use_z3 = confirm == "z3" or (confirm == "auto" and n_before <= 60)

    lo = [a for a, _ in core_box]
    hi = [b for _, b in core_box]
    # float bounds rounded outward, so that the float model never cuts off a real input
    model = _Model([_float_down(x) for x in lo], [_float_up(x) for x in hi])
    prev_vars: list[int | None] = list(range(mlp.n_inputs))
    decided = {"interval": 0, "lp": 0, "milp": 0, "z3": 0}
    calls = 0
    milp_seconds = 0.0
    status: list[list[str]] = []  # per hidden layer: "inactive" / "active" / "unstable"
    undecided = 0
    seen_both = 0
    # sampled pre-activations: a neuron seen with both signs is unstable (no solver needed)
    rng = np.random.default_rng(0)
    flo_box = np.array([float(a) for a in lo])
    fhi_box = np.array([float(b) for b in hi])
    X = flo_box + (fhi_box - flo_box) * rng.random((4096, mlp.n_inputs))
    X = np.vstack([X, flo_box, fhi_box])
    for li, layer in enumerate(hidden):
        Wf = np.array([[float(w) for w in row] for row in layer.weight]).reshape(layer.n_out, -1)
        Z = X @ Wf.T + np.array([float(v) for v in layer.bias])
        seen_neg = (Z < -1e-9).any(axis=0)
        seen_pos = (Z > 1e-9).any(axis=0)
        X = np.maximum(Z, 0) if layer.activation == "relu" else (
            np.where(Z > 0, Z, float(layer.alpha) * Z) if layer.activation == "leaky_relu" else Z)
        plo, phi = _interval(layer.weight, layer.bias, lo, hi)
        st: list[str] = []
        flo = [_float_down(x) for x in plo]
        fhi = [_float_up(x) for x in phi]
        for j in range(layer.n_out):
            if layer.activation != "relu":
                st.append("other")
                continue
            if phi[j] <= 0:
                st.append("inactive")
                decided["interval"] += 1
                continue
            if plo[j] >= 0:
                st.append("active")
                decided["interval"] += 1
                continue
            verdict = "unstable"
            if milp and not (seen_neg[j] and seen_pos[j]):
                obj: dict[int, float] = {}
                for w, v in zip(layer.weight[j], prev_vars, strict=True):
                    if v is not None and w:
                        obj[v] = obj.get(v, 0.0) + float(w)
                const = float(layer.bias[j])
                for relax, name in ((True, "lp"), (False, "milp")):
                    left = time_limit - (time.perf_counter() - start)
                    if left <= 0:
                        break
                    t0 = time.perf_counter()
                    up = model.optimise(obj, True, relax, min(milp_time_limit, left)) + const
                    down = model.optimise(obj, False, relax, min(milp_time_limit, left)) + const
                    milp_seconds += time.perf_counter() - t0
                    calls += 2
                    fhi[j] = min(fhi[j], up + margin * (1 + abs(up)))
                    flo[j] = max(flo[j], down - margin * (1 + abs(down)))
                    claim = None
                    if up <= -margin:
                        claim = "inactive"
                    elif down >= margin:
                        claim = "active"
                    if claim is None:
                        continue
                    if use_z3:
                        # an exact query: is the other sign possible on the box?
                        possible = sign_possible(mlp, li, j, core_box, positive=claim == "inactive",
                                                 timeout=max(1.0, min(30.0, left)))
                        if possible is not False:
                            break
                        decided["z3"] += 1
                    else:
                        decided[name] += 1
                    verdict = claim
                    break
            if verdict == "unstable":
                undecided += 1
                if seen_neg[j] and seen_pos[j]:
                    seen_both += 1
            st.append(verdict)
        status.append(st)
        # sound exact post-activation bounds (float LP/MILP bounds only tighten big-M)
        lo = [Fraction(0) if x == "inactive" else layer.act(a)
              for x, a in zip(st, plo, strict=True)]
        hi = [Fraction(0) if x == "inactive" else layer.act(b)
              for x, b in zip(st, phi, strict=True)]
        prev_vars = _extend_model(model, layer, prev_vars, st, flo, fhi)

    reduced, folded, layers_removed = _transform(mlp, status)
    n_after = sum(layer.n_out for layer in reduced.layers[:-1])
    network = _to_network(reduced, nrm, net)
    inactive = tuple(tuple(j for j, s in enumerate(st) if s == "inactive") for st in status)
    active = tuple(tuple(j for j, s in enumerate(st) if s == "active") for st in status)
    guarantee = (
        "equal to the original on the box only. Interval decisions are exact; "
        + ("every LP/MILP decision was confirmed by an exact z3 query"
           if use_z3 else
           f"LP/MILP decisions rely on the float solver's proved bound beyond a margin of "
           f"{margin:g} (not an exact proof; verify small networks with check_equivalence)")
    )
    return LeoResult(network, raw_box, n_before, n_after, inactive, active, folded,
                     layers_removed, decided, calls, milp_seconds,
                     time.perf_counter() - start, guarantee, undecided,
                     {"seen_both_signs": seen_both})


def _nearest_float(q: Fraction) -> float:
    try:
        return float(q)
    except OverflowError:
        return math.inf if q > 0 else -math.inf


def _float_down(q: Fraction) -> float:
    """The largest float ``<= q`` (``-inf`` below the float range)."""
    f = _nearest_float(q)
    if f == math.inf:
        return sys.float_info.max
    return math.nextafter(f, -math.inf) if math.isfinite(f) and Fraction(f) > q else f


def _float_up(q: Fraction) -> float:
    """The smallest float ``>= q`` (``inf`` above the float range)."""
    f = _nearest_float(q)
    if f == -math.inf:
        return -sys.float_info.max
    return math.nextafter(f, math.inf) if math.isfinite(f) and Fraction(f) < q else f


def _extend_model(model: _Model, layer: DenseLayer, prev_vars: list[int | None], st: list[str],
                  flo: list[float], fhi: list[float]) -> list[int | None]:
    out: list[int | None] = []
    for j, s in enumerate(st):
        pre: dict[int, float] = {}
        for w, v in zip(layer.weight[j], prev_vars, strict=True):
            if v is not None and w:
                pre[v] = pre.get(v, 0.0) + float(w)
        b = float(layer.bias[j])
        if s == "inactive":
            out.append(None)
            continue
        if s in ("active", "other"):
            lo_, hi_ = (max(flo[j], 0.0), max(fhi[j], 0.0)) if s == "active" else (-np.inf,
                                                                                   np.inf)
            if s == "other" and layer.activation != "identity":
                # not encodable exactly: leave it free within its interval bounds
                y = model.var(-np.inf, np.inf)
                out.append(y)
                continue
            y = (model.var(lo_ - 1e-9 * (1 + abs(lo_)), hi_ + 1e-9 * (1 + abs(hi_)))
                 if s == "active" else model.var(-np.inf, np.inf))
            coefs = dict(pre)
            coefs[y] = coefs.get(y, 0.0) - 1.0
            model.row(coefs, -b, -b)
            out.append(y)
            continue
        lo_, hi_ = flo[j], fhi[j]
        y = model.var(0.0, max(hi_, 0.0))
        z = model.var(0.0, 1.0, integer=True)
        # y >= pre
        c1 = {k: -v for k, v in pre.items()}
        c1[y] = c1.get(y, 0.0) + 1.0
        model.row(c1, b, np.inf)
        # y <= pre - lo (1 - z)  <=>  y - pre - lo z <= b - lo
        c2 = {k: -v for k, v in pre.items()}
        c2[y] = c2.get(y, 0.0) + 1.0
        c2[z] = -lo_
        model.row(c2, -np.inf, b - lo_)
        # y <= hi z
        model.row({y: 1.0, z: -hi_}, -np.inf, 0.0)
        out.append(y)
    return out


def _independent_rows(
    rows: list[list[Fraction]],
) -> tuple[list[int], dict[int, dict[int, Fraction]]]:
    """Greedy basis of ``rows`` and, for each other row, its coefficients over the basis."""
    basis: list[int] = []
    echelon: list[tuple[int, list[Fraction], dict[int, Fraction]]] = []  # pivot, row, combo
    combos: dict[int, dict[int, Fraction]] = {}
    for idx, row in enumerate(rows):
        vec = list(row)
        combo: dict[int, Fraction] = {}
        for pivot, erow, ecombo in echelon:
            f = vec[pivot]
            if f:
                vec = [a - f * b for a, b in zip(vec, erow, strict=True)]
                for k, c in ecombo.items():
                    combo[k] = combo.get(k, Fraction(0)) + f * c
        piv = next((k for k, a in enumerate(vec) if a), None)
        if piv is None:
            combos[idx] = {k: c for k, c in combo.items() if c}
            continue
        scale = vec[piv]
        # new echelon row: (row_idx - combo) / scale, expressed over basis rows
        new_combo = {k: -c / scale for k, c in combo.items()}
        new_combo[idx] = new_combo.get(idx, Fraction(0)) + 1 / scale
        echelon.append((piv, [a / scale for a in vec], new_combo))
        basis.append(idx)
    return basis, combos


def _transform(mlp: MLP, status: list[list[str]]) -> tuple[MLP, int, int]:
    layers = [list(map(list, layer.weight)) for layer in mlp.layers]
    biases = [list(layer.bias) for layer in mlp.layers]
    acts = [(layer.activation, layer.alpha) for layer in mlp.layers]
    st = [list(s) for s in status] + [["other"] * mlp.layers[-1].n_out]
    folded = 0
    removed_layers = 0
    out: list[DenseLayer] = []
    i = 0
    while i < len(layers):
        W, b = layers[i], biases[i]
        if i == len(layers) - 1:
            out.append(DenseLayer(tuple(map(tuple, W)), tuple(b), *acts[i]))
            break
        Wn, bn = layers[i + 1], biases[i + 1]
        s = st[i]
        keep = [j for j, x in enumerate(s) if x != "inactive"]
        # inactive neurons output 0 on the box: drop them and their outgoing weights
        W = [W[j] for j in keep]
        b = [b[j] for j in keep]
        s = [s[j] for j in keep]
        Wn = [[row[j] for j in keep] for row in Wn]
        if all(x == "active" for x in s):
            # affine on the box: multiply into the next layer
            width = len(out[-1].bias) if out else mlp.n_inputs
            newW = [[sum((row[j] * W[j][c] for j in range(len(W)) if row[j]), Fraction(0))
                     for c in range(width)] for row in Wn]
            newb = [bb + sum((row[j] * b[j] for j in range(len(W)) if row[j]), Fraction(0))
                    for row, bb in zip(Wn, bn, strict=True)]
            layers[i + 1], biases[i + 1] = newW, newb
            removed_layers += 1
            i += 1
            continue
        act_idx = [k for k, x in enumerate(s) if x == "active"]
        if len(act_idx) > 1:
            _, combos = _independent_rows([W[k] for k in act_idx])
            drop = set()
            for local, combo in combos.items():
                dep = act_idx[local]
                # value(dep) = sum_c combo[c] value(act_idx[c]) + d on the box
                d = b[dep] - sum((c * b[act_idx[k]] for k, c in combo.items()), Fraction(0))
                for row_i, row in enumerate(Wn):
                    w = row[dep]
                    if not w:
                        continue
                    for k, c in combo.items():
                        row[act_idx[k]] += w * c
                    bn[row_i] += w * d
                    row[dep] = Fraction(0)
                drop.add(dep)
            folded += len(drop)
            keep2 = [k for k in range(len(W)) if k not in drop]
            W = [W[k] for k in keep2]
            b = [b[k] for k in keep2]
            Wn = [[row[k] for k in keep2] for row in Wn]
        layers[i + 1], biases[i + 1] = Wn, bn
        out.append(DenseLayer(tuple(map(tuple, W)), tuple(b), *acts[i]))
        i += 1
    n_in = mlp.n_inputs
    return MLP(n_in, tuple(out)), folded, removed_layers


def _to_network(mlp: MLP, nrm: Any, like: Any) -> Any:
    """The reduced MLP as a Network with the interface (data type, ONNX tensor names) of
    ``like``, the network it was reduced from (when that is a Network)."""
    from nnreduce import Activation, Dense, Network

    layers: list[Any] = []
    width = mlp.n_inputs
    for layer in mlp.layers:
        W = np.empty((layer.n_out, width), dtype=object)
        for j, row in enumerate(layer.weight):
            W[j, :] = list(row)
        b = np.array(list(layer.bias), dtype=object) if layer.n_out else np.empty(0, dtype=object)
        if layer.n_out == 0:
            raise UnsupportedLayerError(
                "LEO removed every neuron of a hidden layer that could not be merged")
        layers.append(Dense(W, b))
        if layer.activation == "leaky_relu":
            layers.append(Activation("leaky_relu", alpha=layer.alpha))
        elif layer.activation != "identity":
            layers.append(Activation(layer.activation))
        width = layer.n_out
    return Network(tuple(layers), (mlp.n_inputs,), nrm, getattr(like, "data_dtype", None),
                   getattr(like, "io_names", None))
