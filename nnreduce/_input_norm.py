"""Input normalisation read from a model's leading arithmetic, exactly.

The ONNX and PyTorch readers find ``Max``/``Min``/``Add``/``Sub``/``Mul``/``Div``
of constants before the first layer (``(x - mean) / std``, ``x / 255``,
clipping) and fold them, one by one, into lumpkit's
``(clip(x, input_min, input_max) - input_mean) / input_range``, exactly or not
at all.  ``norm`` is a dict of float64 arrays, one value per network input,
under the :class:`~nnreduce.Normalization` field names.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from lumpcore import ModelFormatError, UnsupportedLayerError

from ._network import Normalization

__all__ = ["fold_input_op", "normalization_of"]


def _exact_floats(vals: list[Fraction], what: str, where: str) -> np.ndarray:
    out = np.array([float(v) for v in vals], dtype=np.float64)
    if any(Fraction(x) != v for x, v in zip(out.tolist(), vals, strict=True)):
        raise UnsupportedLayerError(
            f"{where}: {what} is not a float64 value, so lumpkit cannot hold this input "
            "normalisation exactly; fold it into the first layer before exporting")
    return out


def fold_input_op(norm: dict[str, np.ndarray], op: str, vals: np.ndarray, where: str) -> None:
    """Apply ``x -> op(x, vals)`` after the normalisation held in ``norm`` (in place).

    ``op`` is ``Max``, ``Min`` (clipping: only before any shift or scale),
    ``Add``, ``Sub``, ``Mul`` or ``Div``; ``vals`` holds one exact float64
    value per network input.  Raises :class:`UnsupportedLayerError` (naming
    ``where``) when the result is not exactly a normalisation with float64
    parameters.
    """
    if not np.all(np.isfinite(vals)):
        bad = vals[~np.isfinite(vals)][0]
        raise ModelFormatError(f"{where}: a {op} by {bad} in the input normalisation; its "
                               "constants must be finite numbers")
    fr = [Fraction(v) for v in vals.tolist()]
    mean = [Fraction(v) for v in norm["input_mean"].tolist()] if "input_mean" in norm \
        else None
    rng = [Fraction(v) for v in norm["input_range"].tolist()] if "input_range" in norm \
        else None
    if op in ("Max", "Min"):
        if mean is not None or rng is not None:
            raise UnsupportedLayerError(
                f"{where}: {op} (input clipping) after the input is shifted or scaled; "
                "lumpkit's normalisation clips first")
        key = "input_min" if op == "Max" else "input_max"
        old = norm.get(key)
        norm[key] = vals if old is None else (np.maximum(old, vals) if op == "Max"
                                              else np.minimum(old, vals))
        return
    if op in ("Sub", "Add"):
        shift = fr if op == "Sub" else [-v for v in fr]
        # (x - m) / r - s = (x - (m + s r)) / r
        base = mean or [Fraction(0)] * len(fr)
        scale = rng or [Fraction(1)] * len(fr)
        new = [m + s * r for m, s, r in zip(base, shift, scale, strict=True)]
        if any(v != 0 for v in new) or mean is not None:
            norm["input_mean"] = _exact_floats(new, "the combined input mean", where)
        return
    if any(v == 0 for v in fr):
        raise UnsupportedLayerError(f"{where}: {op} by zero in the input normalisation")
    # x * s = x / (1 / s); (x - m) / r / d = (x - m) / (r d)
    div = fr if op == "Div" else [1 / v for v in fr]
    scale = rng or [Fraction(1)] * len(fr)
    norm["input_range"] = _exact_floats([r * d for r, d in zip(scale, div, strict=True)],
                                        "the combined input range", where)


def normalization_of(norm: dict[str, np.ndarray], n_in: int, n_out: int
                     ) -> Normalization | None:
    """The :class:`Normalization` held in ``norm`` (``None`` when it is empty)."""
    if not norm:
        return None
    return Normalization(
        input_mean=norm.get("input_mean", np.zeros(n_in)),
        input_range=norm.get("input_range", np.ones(n_in)),
        output_mean=norm.get("output_mean", np.zeros(n_out)),
        output_range=norm.get("output_range", np.ones(n_out)),
        input_min=norm.get("input_min"), input_max=norm.get("input_max"),
    )
