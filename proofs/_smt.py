"""Exact SMT equivalence of two ReLU networks (z3), built to scale.

The encoding
------------
Both networks are unfolded into *linear forms* over a common set of
*atoms*: the inputs, and one atom per distinct activation application
``a = act(q)`` where ``q`` is itself a linear form over earlier atoms.  All
coefficients are exact rationals.  A neuron with pre-activation ``p`` is
represented as follows.

* identity: its value is the form ``p`` itself;
* constant ``p`` (no atom): the exact number ``act(p)``;
* on a box, if exact interval bounds show ``p <= 0`` (``p >= 0``) everywhere,
  the value is ``0`` (``alpha p``) or ``p``: the ReLU is stable;
* otherwise ``p = s q`` with ``s > 0`` the absolute value of its first
  coefficient, and the value is ``s * act(q)``.  This is *positive
  homogeneity*, ``act(s q) = s act(q)`` for ``s > 0``, valid for ReLU and
  LeakyReLU.  Atoms are keyed by ``(act, q)``: a neuron of either network
  whose normalised pre-activation equals one already seen reuses its atom
  (shared sub-terms).  The identity of the two forms is checked exactly, so
  the substitution is an equality valid for every input.

The outputs of both networks are then forms over the atoms; the query asks
for an input (in the box) where some output difference is non-zero.  Only the
atoms that the differences depend on are given to z3.  Each atom's exact
definition ``a = If(q > 0, q, alpha q)`` is first replaced by valid linear
lemmas (``a >= 0``, ``a >= q`` for ReLU; the triangle upper bound on a box);
when z3 returns a model, its input is evaluated exactly in both networks: a
real difference is the counterexample; otherwise the atoms whose model
values disagree with their true values get their exact definition and z3 is
asked again (counterexample-guided refinement).  Unsat of any abstraction
implies unsat of the exact query, so "equivalent" always comes from an unsat
answer over a sound encoding; "counterexample" always comes from an exact
re-evaluation of both networks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np
import z3

from lumpcore import (
    ModelFormatError,
    SolverUnknownError,
    UnsupportedLayerError,
    VerificationError,
    rational_to_str,
    to_rational,
)
from lumpcore._atomic import atomic_write_text

from ._mlp import MLP, DenseLayer, _is_nnreduce_network, as_mlp, evaluate_exact, fold_normalization
from ._verdict import Verdict

__all__ = ["check_equivalence", "parse_box"]

Form = tuple[dict[int, Fraction], Fraction]
Box = tuple[tuple[Fraction, Fraction], ...]

_GRID = 2**48
_MAX_BITS = 10_000  # box bounds: about 3000 decimal digits (Python prints up to 4300)


def _round_down(q: Fraction) -> Fraction:
    if q.denominator <= _GRID:
        return q
    return Fraction((q.numerator * _GRID) // q.denominator, _GRID)


def _round_up(q: Fraction) -> Fraction:
    return -_round_down(-q)


@dataclass
class _Atom:
    act: str  # "input", "relu", "leaky_relu"
    alpha: Fraction
    pre: Form | None
    lo: Fraction | None
    hi: Fraction | None


class _Encoder:
    """Builds the shared atom table for one or two networks."""

    def __init__(self, n_inputs: int, box: Box | None, share: bool, use_bounds: bool) -> None:
        self.atoms: list[_Atom] = []
        self.index: dict[Any, int] = {}
        self.share = share
        self.use_bounds = use_bounds
        self.shared_hits = 0
        for i in range(n_inputs):
            lo, hi = (box[i] if box is not None else (None, None))
            self.atoms.append(_Atom("input", Fraction(0), None, lo, hi))

    def bounds(self, form: Form) -> tuple[Fraction | None, Fraction | None]:
        """Exact (outward-rounded) bounds of a form; None where unbounded."""
        coeffs, const = form
        lo: Fraction | None = const
        hi: Fraction | None = const
        for a, c in coeffs.items():
            atom = self.atoms[a]
            low_end, high_end = (atom.lo, atom.hi) if c > 0 else (atom.hi, atom.lo)
            lo = None if lo is None or low_end is None else lo + c * low_end
            hi = None if hi is None or high_end is None else hi + c * high_end
            if lo is None and hi is None:
                break
        return (None if lo is None else _round_down(lo)), (None if hi is None else _round_up(hi))

    def value(self, act: str, alpha: Fraction, pre: Form, counts: bool) -> Form:
        coeffs, const = pre
        if act == "identity":
            return pre
        if not coeffs:
            return {}, (const if const > 0 else (Fraction(0) if act == "relu" else alpha * const))
        lo, hi = self.bounds(pre)
        if hi is not None and hi <= 0:
            if act == "relu":
                return {}, Fraction(0)
            return {a: alpha * c for a, c in coeffs.items()}, alpha * const
        if lo is not None and lo >= 0:
            return pre
        first = min(coeffs)
        s = abs(coeffs[first])
        q_coeffs = {a: c / s for a, c in coeffs.items()}
        q_const = const / s
        if self.share:
            # hash integers, not Fractions (Fraction.__hash__ needs a modular inverse)
            key: Any = (act, alpha.numerator, alpha.denominator, q_const.numerator,
                        q_const.denominator,
                        tuple((a, c.numerator, c.denominator) for a, c in sorted(q_coeffs.items())))
        else:
            key = len(self.atoms)
        atom_id = self.index.get(key)
        if atom_id is None:
            atom_id = len(self.atoms)
            qlo = None if lo is None else lo / s
            qhi = None if hi is None else hi / s
            alo = (Fraction(0) if act == "relu" else None) if qlo is None else (
                qlo if qlo > 0 else (Fraction(0) if act == "relu" else alpha * qlo))
            ahi = None if qhi is None else (qhi if qhi > 0 else (
                Fraction(0) if act == "relu" else alpha * qhi))
            self.atoms.append(_Atom(act, alpha, (q_coeffs, q_const), alo, ahi))
            self.index[key] = atom_id
        elif counts:
            self.shared_hits += 1
        return {atom_id: s}, Fraction(0)

    def run(self, net: MLP, counts: bool, deadline: float | None = None) -> list[Form]:
        vals: list[Form] = [({i: Fraction(1)}, Fraction(0)) for i in range(net.n_inputs)]
        for layer in net.layers:
            new: list[Form] = []
            for row, b in zip(layer.weight, layer.bias, strict=True):
                if deadline is not None and time.perf_counter() > deadline:
                    raise SolverUnknownError("time-out while building the encoding")
                acc: dict[int, Fraction] = {}
                const = b
                for w, (vc, vk) in zip(row, vals, strict=True):
                    if not w:
                        continue
                    const += w * vk
                    for a, c in vc.items():
                        acc[a] = acc.get(a, Fraction(0)) + w * c
                pre = ({a: c for a, c in acc.items() if c}, const)
                new.append(self.value(layer.activation, layer.alpha, pre, counts))
            vals = new
        return vals

    def true_values(self, x: Sequence[Fraction]) -> list[Fraction]:
        vals: list[Fraction] = []
        for i, atom in enumerate(self.atoms):
            if atom.pre is None:
                vals.append(x[i])
                continue
            coeffs, const = atom.pre
            y = const + sum((c * vals[a] for a, c in coeffs.items()), Fraction(0))
            vals.append(y if y > 0 else (Fraction(0) if atom.act == "relu" else atom.alpha * y))
        return vals


def _num(q: Fraction) -> z3.ArithRef:
    return z3.RealVal(rational_to_str(q))


def _diff(f: Form, g: Form) -> Form:
    coeffs = dict(f[0])
    for a, c in g[0].items():
        coeffs[a] = coeffs.get(a, Fraction(0)) - c
    return {a: c for a, c in coeffs.items() if c}, f[1] - g[1]


def parse_box(spec: Any, n_inputs: int | None = None) -> Box:
    """Normalise an input box to exact ``((lo, hi), ...)``.

    ``spec`` is a sequence of ``(lo, hi)`` pairs or a string
    ``"LO:HI,LO:HI,..."`` (a single ``"LO:HI"`` applies to every input when
    ``n_inputs`` is given).

    Examples
    --------
    >>> parse_box("0:1,-1/2:2")
    ((Fraction(0, 1), Fraction(1, 1)), (Fraction(-1, 2), Fraction(2, 1)))
    """
    if isinstance(spec, str):
        parts = [p for p in spec.replace(" ", "").split(",") if p]
        pairs: list[tuple[Any, Any]] = []
        for k, part in enumerate(parts):
            if part.count(":") != 1:
                raise ModelFormatError(
                    f"box entry {k} {part!r} is not LO:HI (example: --box 0:1,-1:1)")
            lo_s, hi_s = part.split(":")
            pairs.append((lo_s, hi_s))
    else:
        try:
            items = list(spec)
        except TypeError:
            raise ModelFormatError(
                f"a box must be a 'LO:HI,...' string or a sequence of (lo, hi) pairs, got "
                f"{spec!r}") from None
        pairs = []
        for k, p in enumerate(items):
            if isinstance(p, str | bytes) or not hasattr(p, "__iter__"):
                raise ModelFormatError(
                    f"box entry {k} must be a pair (lo, hi), got {p!r} (a box for one input "
                    "is [(lo, hi)], not (lo, hi))")
            pairs.append(tuple(p))
    if n_inputs is not None and len(pairs) == 1 and n_inputs > 1:
        pairs = pairs * n_inputs
    box: list[tuple[Fraction, Fraction]] = []
    for k, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ModelFormatError(f"box entry {k} must be a pair (lo, hi), got {pair!r}")
        try:
            lo, hi = to_rational(pair[0]), to_rational(pair[1])
        except ValueError as exc:  # lumpcore's own errors name the value; add the entry
            raise ModelFormatError(f"box entry {k}: {exc}") from None
        for q in (lo, hi):
            bits = max(abs(q.numerator).bit_length(), q.denominator.bit_length())
            if bits > _MAX_BITS:
                raise ModelFormatError(
                    f"box entry {k}: a bound with about {int(bits * 0.30103)} digits is too "
                    "large to handle exactly; give bounds of at most 3000 digits")
        if lo > hi:
            raise ModelFormatError(f"box entry {k}: lower bound {lo} exceeds upper bound {hi}")
        box.append((lo, hi))
    if n_inputs is not None and len(box) != n_inputs:
        raise ModelFormatError(
            f"the box has {len(box)} intervals but the network has {n_inputs} inputs; "
            "give one LO:HI per input (or a single one for all)"
        )
    return tuple(box)


def _same_normalization(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    for name in ("input_mean", "input_range", "output_mean", "output_range",
                 "input_min", "input_max"):
        x, y = getattr(a, name), getattr(b, name)
        if (x is None) != (y is None):
            return False
        if x is not None and [Fraction(v) for v in x] != [Fraction(v) for v in y]:
            return False
    return True


def _clip_box(nrm: Any, n: int) -> Box | None:
    if nrm is None or (nrm.input_min is None and nrm.input_max is None):
        return None
    lo = [to_rational(v) for v in nrm.input_min] if nrm.input_min is not None else None
    hi = [to_rational(v) for v in nrm.input_max] if nrm.input_max is not None else None
    if lo is None or hi is None:
        raise ModelFormatError("one-sided NNet input clipping is not supported by the checkers")
    lo, hi = (lo * n if len(lo) == 1 else lo), (hi * n if len(hi) == 1 else hi)
    return tuple(zip(lo, hi, strict=True))


def _clamp_box(box: Box | None, clip: Box | None) -> Box | None:
    """The image of ``box`` under clipping to ``clip`` (``clip`` itself for no box).

    A network that clips its inputs computes on ``box`` exactly what its core
    computes on this image, so two networks with the same clip are equal on
    ``box`` exactly when their cores are equal on the image (an empty
    intersection of the box and the clip interval is mapped to the clip end
    nearest to it).
    """
    if clip is None or box is None:
        return box if clip is None else clip
    return tuple((min(max(lo, c_lo), c_hi), min(max(hi, c_lo), c_hi))
                 for (lo, hi), (c_lo, c_hi) in zip(box, clip, strict=True))


def _clamp(x: Sequence[Fraction], clip: Box | None) -> list[Fraction]:
    if clip is None:
        return list(x)
    return [min(max(v, lo), hi) for v, (lo, hi) in zip(x, clip, strict=True)]


def _preimage(x: Sequence[Fraction], box: Box | None) -> list[Fraction]:
    """A point of ``box`` that clipping maps to ``x`` (a point of :func:`_clamp_box`'s image)."""
    if box is None:
        return list(x)
    return [v if lo <= v <= hi else (lo if v < lo else hi) for v, (lo, hi) in zip(x, box,
                                                                                 strict=True)]


def _with_clip(mlp: MLP, clip: Box) -> MLP:
    """``mlp`` after clipping its inputs to ``clip``, exactly, as one more ReLU layer:
    ``min(max(x, lo), hi) = lo + relu(x - lo) - relu(x - hi)``."""
    n = mlp.n_inputs
    one, zero = Fraction(1), Fraction(0)
    unit = [tuple(one if k == i else zero for k in range(n)) for i in range(n)]
    clip_layer = DenseLayer(tuple(unit + unit), tuple([-lo for lo, _ in clip]
                                                      + [-hi for _, hi in clip]), "relu")
    first = mlp.layers[0]
    W = tuple(tuple(row) + tuple(-w for w in row) for row in first.weight)
    b = tuple(bb + sum((w * lo for w, (lo, _) in zip(row, clip, strict=True)), Fraction(0))
              for row, bb in zip(first.weight, first.bias, strict=True))
    return MLP(n, (clip_layer, DenseLayer(W, b, first.activation, first.alpha),
                   *mlp.layers[1:]))


def _output_softmax(net: Any) -> str | None:
    """``'softmax'``/``'log_softmax'`` when ``net`` is an nnreduce network ending in one."""
    if not _is_nnreduce_network(net) or not net.layers:
        return None
    last = net.layers[-1]
    kind = getattr(last, "kind", None)
    return kind if kind in ("softmax", "log_softmax") else None


def _strip_softmax(original: Any, reduced: Any) -> tuple[Any, Any, str | None]:
    """Both networks without the (log-)softmax they end with, and its kind.

    ``softmax(a) == softmax(b)`` (and the same for log-softmax) exactly when
    ``a - b`` is a constant vector, so equivalence of the networks is a
    linear question about their logits.
    """
    kind_a, kind_b = _output_softmax(original), _output_softmax(reduced)
    if kind_a is None and kind_b is None:
        return original, reduced, None
    if kind_a != kind_b:
        raise UnsupportedLayerError(
            f"the networks end with {kind_a or 'no softmax'} and {kind_b or 'no softmax'}; "
            "the exact checkers compare networks whose last layers are the same softmax")
    from nnreduce import Network

    if not _same_normalization(original.normalization, reduced.normalization):
        raise UnsupportedLayerError(
            f"the networks end with a {kind_a} and have different normalisations; the exact "
            "checkers cannot fold an output normalisation through a softmax")
    a = Network(tuple(original.layers[:-1]), original.input_shape, original.normalization)
    b = Network(tuple(reduced.layers[:-1]), reduced.input_shape, reduced.normalization)
    return a, b, kind_a


def _differ(ya: Sequence[Fraction], yb: Sequence[Fraction], tail: str | None) -> bool:
    """Whether outputs (logits before a shared softmax ``tail``) give different outputs."""
    if tail is None:
        return list(ya) != list(yb)
    d = [a - b for a, b in zip(ya, yb, strict=True)]
    return any(x != d[0] for x in d)


@dataclass(frozen=True)
class _Shown:
    """How a point of the compared networks' coordinates is shown to the user.

    ``box`` is the user's box (None: all inputs); ``clip`` the clip interval
    the compared box is the image under (None: no clipping was folded in this
    way); ``mean``/``scale`` map normalised coordinates back to the networks'
    inputs (None: the coordinates are already raw); ``full_a``/``full_b`` are
    the networks as functions of their (clipped) raw inputs.
    """

    box: Box | None
    clip: Box | None = None
    mean: tuple[Fraction, ...] | None = None
    scale: tuple[Fraction, ...] | None = None
    full_a: MLP | None = None
    full_b: MLP | None = None

    def show(self, x: Sequence[Fraction], net_a: MLP, net_b: MLP,
             ) -> tuple[list[Fraction], tuple[Fraction, ...], tuple[Fraction, ...]]:
        """The input in the user's units (a point of the user's box) and both outputs,
        evaluated exactly there."""
        raw = list(x) if self.mean is None or self.scale is None else [
            m + r * v for v, m, r in zip(x, self.mean, self.scale, strict=True)]
        raw = _preimage(raw, self.box) if self.clip is not None else raw
        fa, fb = self.full_a or net_a, self.full_b or net_b
        seen = _clamp(raw, self.clip)
        return raw, evaluate_exact(fa, seen), evaluate_exact(fb, seen)


def _input_only(nrm: Any) -> Any:
    """``nrm`` without its output normalisation (mean 0, range 1)."""
    from types import SimpleNamespace

    return SimpleNamespace(input_mean=nrm.input_mean, input_range=nrm.input_range,
                           output_mean=[0], output_range=[1])


def _prepare_pair(original: Any, reduced: Any, box: Any, tail: str | None = None,
                  ) -> tuple[MLP, MLP, Box | None, str, _Shown]:
    """Exact networks to compare, the box in their coordinates, a note, and how a point
    is shown to the user.

    NNet input clipping is never handled by shrinking the box to the clip
    interval alone (a network that clips and one that does not can differ
    outside it): when both networks clip alike the box is replaced by its
    image under the clip (:func:`_clamp_box`), otherwise the clipping is
    folded in exactly as a ReLU layer (:func:`_with_clip`).
    """
    nrm_a = getattr(original, "normalization", None)
    nrm_b = getattr(reduced, "normalization", None)
    net_a, net_b = as_mlp(original, relu_form=True), as_mlp(reduced, relu_form=True)
    if net_a.n_inputs != net_b.n_inputs:
        raise ModelFormatError(
            f"the networks take {net_a.n_inputs} and {net_b.n_inputs} inputs; they must agree")
    if net_a.n_outputs != net_b.n_outputs:
        raise ModelFormatError(
            f"the networks have {net_a.n_outputs} and {net_b.n_outputs} outputs; they must agree")
    n = net_a.n_inputs
    the_box = None if box is None else parse_box(box, n)
    if nrm_a is None and nrm_b is None:
        return net_a, net_b, the_box, "", _Shown(the_box)
    clip_a, clip_b = _clip_box(nrm_a, n), _clip_box(nrm_b, n)
    if _same_normalization(nrm_a, nrm_b):
        assert nrm_a is not None
        image = _clamp_box(the_box, clip_a)
        mean = [to_rational(v) for v in nrm_a.input_mean]
        rng = [to_rational(v) for v in nrm_a.input_range]
        mean, rng = (mean * n if len(mean) == 1 else mean), (rng * n if len(rng) == 1 else rng)
        fold = nrm_a if tail is None else _input_only(nrm_a)
        shown = _Shown(the_box, clip_a, tuple(mean), tuple(rng),
                       fold_normalization(net_a, fold), fold_normalization(net_b, fold))
        note = (" (both networks apply the same NNet normalisation: their cores were compared "
                "in normalised coordinates, and equal cores make equal networks; an input and "
                "outputs shown are in the networks' own units)")
        if image is None:
            return net_a, net_b, None, note, shown
        core: list[tuple[Fraction, Fraction]] = []
        for (lo, hi), m, r in zip(image, mean, rng, strict=True):
            a, b = (lo - m) / r, (hi - m) / r
            core.append((min(a, b), max(a, b)))
        return net_a, net_b, tuple(core), note, shown
    fa, fb = fold_normalization(net_a, nrm_a), fold_normalization(net_b, nrm_b)
    note = " (raw inputs; normalisations folded into the first and last layers)"
    if clip_a == clip_b:
        return fa, fb, _clamp_box(the_box, clip_a), note, _Shown(the_box, clip_a)
    # different clipping: fold each one in exactly
    fa = fa if clip_a is None else _with_clip(fa, clip_a)
    fb = fb if clip_b is None else _with_clip(fb, clip_b)
    return fa, fb, the_box, note[:-1] + ", input clipping as a ReLU layer)", _Shown(the_box)


def _prepare_box_for(net: Any, n: int, box: Any) -> tuple[Box, Box]:
    """The box in raw input units (the clip interval without a box) and, in the core's
    coordinates, its image under the network's clipping and normalisation."""
    nrm = getattr(net, "normalization", None)
    if box is None:
        clip = _clip_box(nrm, n)
        if clip is None:
            raise ModelFormatError("give an input box (the network has no input bounds of its own)")
        raw = clip
    else:
        raw = parse_box(box, n)
    if nrm is None:
        return raw, raw
    # the core sees the image of the box under the clip: that is the box to analyse
    raw_c = _clamp_box(raw, _clip_box(nrm, n))
    assert raw_c is not None
    mean = [to_rational(v) for v in nrm.input_mean]
    rng = [to_rational(v) for v in nrm.input_range]
    mean, rng = (mean * n if len(mean) == 1 else mean), (rng * n if len(rng) == 1 else rng)
    core = []
    for (lo, hi), m, r in zip(raw_c, mean, rng, strict=True):
        a, b = (lo - m) / r, (hi - m) / r
        core.append((min(a, b), max(a, b)))
    return raw, tuple(core)


def sign_possible(net: MLP, layer: int, neuron: int, box: Box, positive: bool,
                  timeout: float) -> bool | None:
    """Exact z3 query: can the pre-activation of ``neuron`` in ``layer`` be > 0 (< 0) on ``box``?

    Returns True (an input exists), False (proved impossible) or None (unknown).
    """
    enc = _Encoder(net.n_inputs, box, share=True, use_bounds=True)
    sub = MLP(net.n_inputs, net.layers[:layer])
    vals = enc.run(sub, counts=False)
    lay = net.layers[layer]
    acc: dict[int, Fraction] = {}
    const = lay.bias[neuron]
    for w, (vc, vk) in zip(lay.weight[neuron], vals, strict=True):
        if w:
            const += w * vk
            for a, c in vc.items():
                acc[a] = acc.get(a, Fraction(0)) + w * c
    form: Form = ({a: c for a, c in acc.items() if c}, const)
    query = _Query(enc, [form], box, cegar=True)
    start = time.perf_counter()
    solver = z3.Solver()
    solver.add(*query.base)
    for a in query.cone:
        if a >= query.n_in:
            solver.add(*query.lemmas[a])
    t = query.term(form)
    solver.add(t > _num(Fraction(0)) if positive else t < _num(Fraction(0)))
    refined: set[int] = set()
    while True:
        left = timeout - (time.perf_counter() - start)
        if left <= 0:
            return None
        solver.set("timeout", _z3_ms(left))
        ans = solver.check()
        if ans == z3.unsat:
            return False
        if ans != z3.sat:
            return None
        model = solver.model()
        x = [_model_fraction(model, query.vars[i]) for i in range(query.n_in)]
        truth = enc.true_values(x)
        value = form[1] + sum((c * truth[a] for a, c in form[0].items()), Fraction(0))
        if (value > 0) if positive else (value < 0):
            return True
        new = [a for a in query.cone if a >= query.n_in and a not in refined
               and _model_fraction(model, query.vars[a]) != truth[a]]
        if not new:
            raise VerificationError("sign query: a model consistent with every exact ReLU "
                                    "definition does not have the asked sign; please report")
        for a in new:
            solver.add(query.exact[a])
            refined.add(a)


class _Query:
    """The z3 side of one equivalence query."""

    def __init__(self, enc: _Encoder, diffs: list[Form], box: Box | None, cegar: bool) -> None:
        self.enc = enc
        self.vars: dict[int, z3.ArithRef] = {}
        # cone of the differences
        cone: set[int] = set()
        stack = [a for f in diffs for a in f[0]]
        while stack:
            a = stack.pop()
            if a in cone:
                continue
            cone.add(a)
            pre = enc.atoms[a].pre
            if pre is not None:
                stack.extend(pre[0])
        self.cone = sorted(cone)
        n_in = sum(1 for atom in enc.atoms if atom.pre is None)
        for i in range(n_in):
            self.vars[i] = z3.Real(f"x{i}")
        for a in self.cone:
            if a >= n_in:
                self.vars[a] = z3.Real(f"a{a}")
        self.n_in = n_in
        self.base: list[z3.BoolRef] = []
        if box is not None:
            for i, (lo, hi) in enumerate(box):
                self.base += [self.vars[i] >= _num(lo), self.vars[i] <= _num(hi)]
        self.lemmas: dict[int, list[z3.BoolRef]] = {}
        self.exact: dict[int, z3.BoolRef] = {}
        for a in self.cone:
            if a < n_in:
                continue
            self.exact[a] = self._definition(a)
            self.lemmas[a] = self._lemmas(a) if cegar else [self.exact[a]]
        self.goal = z3.Or([self.term(f) != _num(Fraction(0)) for f in diffs]) if diffs \
            else z3.BoolVal(False)

    def term(self, form: Form) -> z3.ArithRef:
        coeffs, const = form
        parts = [self.vars[a] if c == 1 else _num(c) * self.vars[a]
                 for a, c in sorted(coeffs.items())]
        if const or not parts:
            parts.append(_num(const))
        return parts[0] if len(parts) == 1 else z3.Sum(parts)

    def _definition(self, a: int) -> z3.BoolRef:
        atom = self.enc.atoms[a]
        assert atom.pre is not None
        q = self.term(atom.pre)
        neg = _num(Fraction(0)) if atom.act == "relu" else _num(atom.alpha) * q
        return self.vars[a] == z3.If(q > 0, q, neg)

    def _lemmas(self, a: int) -> list[z3.BoolRef]:
        atom = self.enc.atoms[a]
        assert atom.pre is not None
        if atom.act == "leaky_relu" and atom.alpha > 1:
            return [self.exact[a]]
        q = self.term(atom.pre)
        v = self.vars[a]
        alpha = atom.alpha if atom.act == "leaky_relu" else Fraction(0)
        out = [v >= q, v >= _num(alpha) * q]
        lo, hi = self.enc.bounds(atom.pre)
        if lo is not None and hi is not None and lo < 0 < hi:
            # chord from (lo, alpha lo) to (hi, hi): valid upper bound on [lo, hi]
            slope = (hi - alpha * lo) / (hi - lo)
            out.append(v <= _num(alpha * lo) + _num(slope) * (q - _num(lo)))
        return out

    def smtlib(self, exact: bool = True) -> str:
        s = z3.Solver()
        s.add(*self.base)
        for a in self.cone:
            if a >= self.n_in:
                s.add(self.exact[a] if exact else z3.And(self.lemmas[a]))
        s.add(self.goal)
        text: str = s.to_smt2()
        return text.replace("(set-info :status unknown)",
                            "(set-logic QF_LRA)\n(set-info :status unknown)", 1)


def _model_fraction(model: z3.ModelRef, var: z3.ArithRef) -> Fraction:
    val = model.eval(var, model_completion=True)
    if not z3.is_rational_value(val):
        raise SolverUnknownError(f"z3 returned a non-rational model value {val} for {var}")
    num, den = val.as_fraction().numerator, val.as_fraction().denominator
    return Fraction(int(num), int(den))


def _cvc5_answer(text: str, timeout: float) -> str:
    try:
        import cvc5
    except ImportError:  # pragma: no cover - optional dependency
        raise SolverUnknownError("cvc5 is not installed (pip install cvc5)") from None
    slv = cvc5.Solver()
    slv.setOption("tlimit-per", str(max(1, int(timeout * 1000))))
    parser = cvc5.InputParser(slv)
    parser.setStringInput(cvc5.InputLanguage.SMT_LIB_2_6, text, "query")
    sm = parser.getSymbolManager()
    answer = ""
    while True:
        cmd = parser.nextCommand()
        if cmd.isNull():
            break
        out = cmd.invoke(slv, sm)
        if out.strip():
            answer = out.strip()
    if answer not in ("sat", "unsat"):
        raise SolverUnknownError(f"cvc5 answered {answer or 'nothing'!r}")
    return answer


def check_equivalence(
    original: Any,
    reduced: Any,
    *,
    box: Any = None,
    timeout: float = 60.0,
    share: bool = True,
    cegar: bool = True,
    smtlib: str | os.PathLike[str] | None = None,
    second_opinion: str | None = None,
    falsify: bool = True,
) -> Verdict:
    """Prove two networks equal on every input (or find an input where they differ).

    Parameters
    ----------
    original, reduced : network
        nnreduce networks, :class:`proofs`-internal MLPs, or lists of
        ``(W, b, activation)`` triples (activations ``relu``,
        ``("leaky_relu", alpha)``, ``identity``).  Weights are taken at
        their exact rational value.
    box : sequence of (lo, hi) or str, optional
        Restrict the inputs to this box (``"LO:HI,..."`` strings accepted);
        default: all of R^n.
    timeout : float
        Seconds for the whole check.
    share : bool
        Identify neurons whose pre-activations are positive multiples of each
        other by exact linear identities before calling z3 (default).  With
        ``share=False`` every neuron of both networks gets its own variable
        (the plain monolithic encoding; only for small networks).
    cegar : bool
        Start from valid linear ReLU lemmas and add exact definitions only
        where a model violates them (default); False: exact ``If`` from the start.
    smtlib : path, optional
        Write the exact query (SMT-LIB 2, QF_LRA) there, for another solver.
    second_opinion : {"cvc5"}, optional
        Also decide the exact query with cvc5; disagreement raises
        :class:`lumpcore.VerificationError`.
    falsify : bool
        First try random inputs (float evaluation, exact re-check of every
        candidate) for at most ``min(1, timeout/20)`` seconds (default True).

    Returns
    -------
    Verdict
        ``equivalent=True`` after an unsat answer; otherwise a counterexample
        input with both outputs, re-checked by exact evaluation.

    Raises
    ------
    lumpcore.SolverUnknownError
        When z3 (or cvc5) answers unknown or runs out of time.
    lumpcore.ModelFormatError
        When the networks do not have the same numbers of inputs and outputs.

    Notes
    -----
    nnreduce networks that both end with the same softmax (or log-softmax)
    are compared through their logits: ``softmax(a) == softmax(b)`` exactly
    when ``a - b`` is the same in every output, which is a linear question.
    A counterexample then shows the logits (exact), whose difference is not
    constant.

    Examples
    --------
    >>> relu_x = [([[1]], [0], "relu"), ([[1]], [0], "identity")]
    >>> doubled = [([[1], [1]], [0, 0], "relu"), ([["1/2", "1/2"]], [0], "identity")]
    >>> check_equivalence(relu_x, doubled).verdict
    'equivalent'
    >>> v = check_equivalence(relu_x, [([[1]], [0], "identity")])
    >>> v.verdict, v.outputs[0] != v.outputs[1]
    ('counterexample', True)
    """
    start = time.perf_counter()
    timeout = _seconds(timeout, "timeout")
    original, reduced, tail = _strip_softmax(original, reduced)
    net_a, net_b, the_box, coords, shown = _prepare_pair(original, reduced, box, tail)
    domain = (f"R^{net_a.n_inputs}" if shown.box is None else "the given box") + coords
    # with a shared softmax the outputs compared are its logits (see _strip_softmax)
    logits = "" if tail is None else (
        f"; the outputs shown are the logits before the shared {tail}, whose difference is "
        f"not a constant vector, so the {tail} outputs differ")

    method = "z3-" + ("shared" if share else "monolithic") + ("-cegar" if cegar else "")
    sampled: Verdict | None = None
    if falsify:
        found = _falsify(net_a, net_b, the_box, min(1.0, 0.05 * timeout), tail=tail)
        if found is not None:
            x, ya, yb = _shown_difference(shown, found[0], net_a, net_b, tail)
            sampled = Verdict(False, method + "+sampling", time.perf_counter() - start,
                              f"the networks differ at the input shown (in {domain}); found "
                              "by sampling, both outputs recomputed in exact rational "
                              "arithmetic" + logits, input=tuple(x), outputs=(ya, yb),
                              box=shown.box)
            if smtlib is None and second_opinion is None:
                return sampled
    enc = _Encoder(net_a.n_inputs, the_box, share=share, use_bounds=share)
    deadline = start + timeout
    out_b = enc.run(net_b, counts=False, deadline=deadline)
    out_a = enc.run(net_a, counts=True, deadline=deadline)
    diffs = [_diff(fa, fb) for fa, fb in zip(out_a, out_b, strict=True)]
    if tail is not None:  # the logits may differ by the same amount in every output
        diffs = [_diff(d, diffs[0]) for d in diffs[1:]]
    diffs = [d for d in diffs if d[0] or d[1]]
    query = _Query(enc, diffs, the_box, cegar)

    if smtlib is not None:
        atomic_write_text(smtlib, query.smtlib(exact=True))
    if sampled is not None:
        if second_opinion is not None:
            opinion: str | None = _second(second_opinion, query, "sat",
                              timeout - (time.perf_counter() - start))
            sampled = replace(sampled, second_opinion=opinion)
        return sampled

    solver = z3.Solver()
    solver.add(*query.base)
    for a in query.cone:
        if a >= query.n_in:
            solver.add(*query.lemmas[a])
    solver.add(query.goal)
    refined: set[int] = set() if cegar else set(query.exact)
    rounds = 0
    while True:
        left = timeout - (time.perf_counter() - start)
        if left <= 0:
            raise SolverUnknownError(f"time-out after {timeout} s ({rounds} refinements)")
        solver.set("timeout", _z3_ms(left))
        answer = solver.check()
        if answer == z3.unsat:
            opinion = None
            if second_opinion is not None:
                opinion = _second(second_opinion, query, "unsat",
                                  timeout - (time.perf_counter() - start))
            statement = (
                f"for every input in {domain}, every output of the original equals the same "
                "output of the reduced network exactly (z3 found no input where they differ; "
                "weights as exact rationals"
                + ("; neurons identified by exact linear identities and positive homogeneity "
                   "of the activation" if share else "; one variable per neuron")
                + ("" if tail is None else
                   f"; the logits before the shared {tail} differ by the same amount in every "
                   f"output, which {tail} ignores")
                + ")"
            )
            return Verdict(True, method, time.perf_counter() - start, statement,
                           box=shown.box, refinements=rounds, shared_neurons=enc.shared_hits,
                           second_opinion=opinion)
        if answer != z3.sat:
            raise SolverUnknownError(
                f"z3 answered {answer} ({solver.reason_unknown()}) after {rounds} refinements")
        model = solver.model()
        x = [_model_fraction(model, query.vars[i]) for i in range(query.n_in)]
        ya, yb = evaluate_exact(net_a, x), evaluate_exact(net_b, x)
        if _differ(ya, yb, tail):
            x, ya, yb = _shown_difference(shown, x, net_a, net_b, tail)
            opinion = None
            if second_opinion is not None:
                opinion = _second(second_opinion, query, "sat",
                                  timeout - (time.perf_counter() - start))
            statement = (
                f"the networks differ at the input shown (in {domain}); "
                "both outputs were recomputed in exact rational arithmetic" + logits
            )
            return Verdict(False, method, time.perf_counter() - start, statement,
                           input=tuple(x), outputs=(ya, yb), box=shown.box,
                           refinements=rounds, shared_neurons=enc.shared_hits,
                           second_opinion=opinion)
        # spurious: refine the atoms whose model value is not their true value
        truth = enc.true_values(x)
        new = [a for a in query.cone if a >= query.n_in and a not in refined
               and _model_fraction(model, query.vars[a]) != truth[a]]
        if not new:
            raise VerificationError(
                "z3 model satisfies every exact ReLU definition but the networks agree at "
                f"its input {[rational_to_str(v) for v in x]}; please report this bug")
        for a in new:
            solver.add(query.exact[a])
            refined.add(a)
        rounds += 1


def _shown_difference(shown: _Shown, x: Sequence[Fraction], net_a: MLP, net_b: MLP,
                      tail: str | None
                      ) -> tuple[list[Fraction], tuple[Fraction, ...], tuple[Fraction, ...]]:
    """The counterexample ``x`` (compared coordinates) in the user's units, both outputs
    re-evaluated exactly there; a difference that does not survive is a bug, not an answer."""
    raw, ya, yb = shown.show(x, net_a, net_b)
    if not _differ(ya, yb, tail):
        raise VerificationError(
            "a counterexample of the compared cores does not make the networks differ at "
            f"the input {[rational_to_str(v) for v in raw]}; please report this bug")
    return raw, ya, yb


def _seconds(value: Any, name: str) -> float:
    """A time limit in seconds as a float (``inf``: no limit); NaN and non-numbers are
    refused with a clear error."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ModelFormatError(f"{name} must be a number of seconds, got {value!r}") from None
    if isinstance(value, bool) or out != out:
        raise ModelFormatError(f"{name} must be a number of seconds, got {value!r}")
    return out


def _z3_ms(seconds: float) -> int:
    """z3's ``timeout`` parameter (milliseconds, an unsigned int) for ``seconds`` left."""
    return max(1, min(int(min(seconds, 4.0e6) * 1000), 2**32 - 2))


def _float_layers(net: MLP) -> list[tuple[np.ndarray, np.ndarray, str, float]]:
    return [(np.array([[float(w) for w in row] for row in layer.weight], dtype=np.float64)
             .reshape(layer.n_out, -1),
             np.array([float(b) for b in layer.bias], dtype=np.float64),
             layer.activation, float(layer.alpha)) for layer in net.layers]


def _float_eval(layers: list[tuple[np.ndarray, np.ndarray, str, float]],
                X: np.ndarray) -> np.ndarray:
    for W, b, act, alpha in layers:
        Y = X @ W.T + b
        if act == "relu":
            Y = np.maximum(Y, 0.0)
        elif act == "leaky_relu":
            Y = np.where(Y > 0, Y, alpha * Y)
        X = Y
    return X


def _falsify(net_a: MLP, net_b: MLP, box: Box | None, budget: float,
             seed: int = 0, tail: str | None = None
             ) -> tuple[list[Fraction], tuple[Fraction, ...], tuple[Fraction, ...]] | None:
    """Cheap search for a counterexample: random inputs in float, exact re-check.

    With a shared softmax ``tail`` the outputs are logits, and only a
    difference that is not the same in every output counts.
    """
    rng = np.random.default_rng(seed)
    la, lb = _float_layers(net_a), _float_layers(net_b)
    n = net_a.n_inputs
    deadline = time.perf_counter() + budget
    scales = [1.0, 10.0, 0.1, 100.0]
    rnd = 0
    while time.perf_counter() < deadline and rnd < 64:
        if box is not None:
            lo = np.array([float(a) for a, _ in box])
            hi = np.array([float(b) for _, b in box])
            with np.errstate(all="ignore"):
                X = lo + (hi - lo) * rng.random((256, n))
        else:
            X = rng.standard_normal((256, n)) * scales[rnd % len(scales)]
        rnd += 1
        with np.errstate(all="ignore"):  # overflow to inf/NaN just means no candidate
            ya_f, yb_f = _float_eval(la, X), _float_eval(lb, X)
        # gaps at the level of float rounding are not worth an exact re-check
        with np.errstate(all="ignore"):
            scale = 1e-9 * (1.0 + np.maximum(np.abs(ya_f), np.abs(yb_f)).max(axis=1))
            d = ya_f - yb_f
            gap = np.abs(d - d[:, :1] if tail is not None else d).max(axis=1)
            gap = np.where(gap > scale, gap, 0.0)
        if rnd >= 8 and not gap.any():
            break
        for k in np.argsort(-gap)[:3]:
            if not gap[k] > 0:
                break
            if not np.isfinite(X[k]).all():
                continue
            x = [Fraction(float(v)) for v in X[k]]
            if box is not None:
                x = [min(max(v, lo_), hi_) for v, (lo_, hi_) in zip(x, box, strict=True)]
            ya, yb = evaluate_exact(net_a, x), evaluate_exact(net_b, x)
            if _differ(ya, yb, tail):
                return x, ya, yb
    return None


def _second(name: str, query: _Query, expected: str, left: float) -> str:
    if name != "cvc5":
        raise ModelFormatError(f"second opinion {name!r} is not available; use 'cvc5'")
    answer = _cvc5_answer(query.smtlib(exact=True), max(left, 1.0))
    if answer != expected:
        raise VerificationError(f"z3 answered {expected} but cvc5 answered {answer}")
    return answer
