"""PRISM-language and JANI models through stormpy (the optional ``storm`` extra)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from lumpcore import LumpkitError, ModelFormatError

from ._chain import CTMC, DTMC, ChainError, _Edges, _row_sums
from ._fileio import FileLines, exact_values, reward_rates

__all__ = ["from_stormpy", "read_prism"]


class StormMissingError(LumpkitError, ImportError):
    """stormpy is needed for PRISM-language/JANI models and is not installed."""


def _stormpy() -> Any:
    try:
        import stormpy
    except ImportError:  # pragma: no cover - stormpy is in the test extra
        raise StormMissingError(
            "reading PRISM-language or JANI models needs stormpy: pip install 'lumpkit[storm]'; "
            "or export the model from PRISM/Storm as .tra/.lab or .drn"
        ) from None
    return stormpy


def _constants_string(constants: Mapping[str, Any] | None) -> str:
    if not constants:
        return ""
    parts = []
    for name, value in constants.items():
        if not str(name).isidentifier():
            raise ModelFormatError(f"constant name {name!r} is not an identifier")
        if isinstance(value, bool | np.bool_):  # Storm reads true/false, not True/False
            text = "true" if value else "false"
        elif isinstance(value, Fraction | np.integer | int | float | np.floating):
            # a whole number as an integer, so that an int constant accepts Fraction(3) or
            # 3.0 (Storm refuses "3/1" and "3.0" for one); other values as p/q or repr
            q = value if isinstance(value, Fraction) else (
                Fraction(int(value)) if isinstance(value, int | np.integer) else None)
            if q is None:
                f = float(value)
                q = Fraction(f) if math.isfinite(f) and f.is_integer() else None
                text = str(q.numerator) if q is not None else repr(f)
            else:
                text = str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"
        else:
            text = str(value).strip()
        if not text or any(c in text for c in ",="):
            raise ModelFormatError(f"constant {name}: bad value {value!r}")
        parts.append(f"{name}={text}")
    return ",".join(parts)


def read_prism(
    path: str | os.PathLike[str],
    constants: Mapping[str, Any] | None = None,
    *,
    exact: bool = False,
    valuations: bool = False,
) -> CTMC | DTMC:
    """Build a chain from a PRISM-language (``.prism``/``.sm``/``.pm``) or JANI model.

    Uses stormpy (``pip install 'lumpkit[storm]'``) with PRISM compatibility,
    all labels and all reward models.  Transition/action rewards are folded
    into state reward rates, Storm's total reward vector (a CTMC state earns
    its action reward times its exit rate plus rate times reward of each
    rewarded transition, per time unit; a DTMC state the expected reward of
    its step): that keeps long-run and accumulated reward measures, not
    instantaneous ones, and a :class:`RewardFoldingWarning` names the
    reward structures it folded.

    Parameters
    ----------
    path : path
        ``.jani`` files are parsed as JANI, everything else as PRISM.
    constants : mapping name -> value, optional
        Values of undefined constants (``{"N": 4}``), as on the command line
        ``-c N=4``: bools, ints, floats, Fractions, their numpy types, or
        strings as Storm reads them (a whole number is passed as an integer,
        so ``3.0`` or ``Fraction(3)`` suits an ``int`` constant).
    exact : bool
        Build with exact rationals (stormpy's exact model builder) and
        return an exact chain.
    valuations : bool
        Also build the state valuations (variable values of every state;
        costs time and memory on large models).

    Returns
    -------
    CTMC or DTMC
        With labels (``init`` included), the initial distribution (uniform
        over Storm's initial states), state rewards (the unnamed structure
        called ``default``, or ``default_2`` when the model names one
        ``default``) and (if asked) state valuations.

    Raises
    ------
    ModelFormatError
        If the file does not parse, constants are missing/unknown, or the
        model is not a CTMC or DTMC.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.prism"
    >>> _ = p.write_text("ctmc\\nconst int N;\\nmodule m x:[0..N] init 0;\\n"
    ...     "[] x<N -> 2:(x'=x+1);\\n[] x>0 -> 1:(x'=x-1);\\nendmodule\\n")
    >>> read_prism(p, {"N": 3}, exact=True).n
    4
    """
    stormpy = _stormpy()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file")
    with FileLines(path) as lines:  # stormpy's parsers fail on bytes that are not UTF-8
        for _ in lines:
            pass
    dev = stormpy.developer
    old_level = dev.get_log_level()
    # Storm logs warnings and errors to stdout, which would corrupt --json output: quiet it
    # while building (an error also raises, and its text goes into the ModelFormatError).
    dev.set_log_level(dev.LogLevel.OFF)
    try:
        if path.suffix.lower() == ".jani":
            model_desc, _props = stormpy.parse_jani_model(str(path))
        else:
            model_desc = stormpy.parse_prism_program(str(path), prism_compatibility=True)
        text = _constants_string(constants)
        known = {c.name for c in model_desc.constants}
        unknown = sorted(set(constants or ()) - known)
        if unknown:
            raise ModelFormatError(
                f"{path}: unknown constant(s) {', '.join(unknown)}; the model declares "
                f"{', '.join(sorted(known)) or 'no constants'}"
            )
        missing = sorted(c.name for c in model_desc.constants
                         if not c.defined and c.name not in (constants or {}))
        if missing:
            raise ModelFormatError(
                f"{path}: undefined constant(s) {', '.join(missing)}; give values with "
                + " ".join(f"-c {m}=VALUE" for m in missing)
                + " (Python: constants={" + ", ".join(f"{m!r}: ..." for m in missing) + "})"
            )
        if text:
            model_desc, _ = stormpy.instantiate_constants(model_desc, text)
        opts = stormpy.BuilderOptions()
        opts.set_build_all_labels()
        opts.set_build_all_reward_models()
        if valuations:
            opts.set_build_state_valuations()
        builder = stormpy.build_model[stormpy.Rational] if exact else stormpy.build_model
        model = builder(model_desc, options=opts)
    except (RuntimeError, UnicodeDecodeError, stormpy.exceptions.StormError) as exc:
        # one line: Storm's reason with the offending source line (its caret line, the
        # last line of a parsing error, was all that was shown before)
        msg = " ".join(t.strip() for t in str(exc).splitlines()
                       if t.strip() and t.strip() != "^")
        raise ModelFormatError(
            f"{path}: stormpy could not build the model: {msg or type(exc).__name__}"
        ) from None
    finally:
        dev.set_log_level(old_level)
    return from_stormpy(model)


def _value(x: Any, exact: bool) -> Any:
    if exact:
        return _rational(str(x))
    return float(x)


_RATIONALS: dict[str, Fraction] = {}


def _rational(text: str) -> Fraction:
    """``Fraction(text)``, parsed once per distinct text (a model repeats a few rates over
    and over; parsing is most of the cost of reading an exact model)."""
    got = _RATIONALS.get(text)
    if got is None:
        if len(_RATIONALS) >= 1 << 16:
            _RATIONALS.clear()
        got = _RATIONALS[text] = Fraction(text)
    return got


def from_stormpy(model: Any) -> CTMC | DTMC:
    """Convert a built sparse stormpy CTMC or DTMC (float or exact) to a chain.

    Examples
    --------
    >>> import stormpy, stormpy.models, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.prism"
    >>> _ = p.write_text("dtmc\\nmodule m x:[0..1] init 0;\\n"
    ...     "[] x=0 -> 0.5:(x'=0) + 0.5:(x'=1);\\n[] x=1 -> 1:(x'=1);\\nendmodule\\n")
    >>> from_stormpy(stormpy.build_model(stormpy.parse_prism_program(str(p))))
    DTMC(2 states, 1 transitions, float, labels=['deadlock', 'init'])
    """
    stormpy = _stormpy()
    mtype = model.model_type
    model_types = stormpy.models.ModelType
    if mtype not in (model_types.CTMC, model_types.DTMC):
        raise ModelFormatError(
            f"model type {mtype} is not supported; lumpkit reads CTMCs and DTMCs"
        )
    if getattr(model, "supports_parameters", False):
        raise ModelFormatError(
            "stormpy model: a parametric model (its probabilities or rates are functions of "
            "parameters); instantiate the parameters first (stormpy.instantiate_constants on "
            "the program, or read_prism(path, {'p': VALUE}))"
        )
    exact = bool(model.is_exact)
    n = int(model.nr_states)
    tm = model.transition_matrix
    src, dst, vals = _matrix_arrays(tm, n, exact)
    if not exact and not np.all(np.isfinite(vals)):  # before any reward is folded with them
        k = int(np.flatnonzero(~np.isfinite(vals))[0])
        raise ModelFormatError(
            f"stormpy model: state {int(src[k])}, column {int(dst[k])}: value {vals[k]} is not "
            "finite; NaN and infinite entries are not allowed")
    labels = {lab: sorted(int(s) for s in model.labeling.get_states(lab))
              for lab in model.labeling.get_labels()}
    init = [int(s) for s in model.initial_states]
    names, state, extra = [], [], []
    for name, rm in model.reward_models.items():
        if not (rm.has_state_rewards or rm.has_state_action_rewards
                or rm.has_transition_rewards):
            continue
        names.append(name or _unnamed_reward_name(model.reward_models))
        state.append([_value(x, exact) for x in rm.state_rewards] if rm.has_state_rewards
                     else [Fraction(0) if exact else 0.0] * n)
        extra.append(_per_firing(rm, n, src, dst, vals, mtype == model_types.CTMC, exact,
                                 names[-1]))
    rewards = reward_rates("", names, state, extra, n, src, vals, mtype == model_types.CTMC)
    variables: tuple[str, ...] = ()
    valuations = None
    if model.has_state_valuations():
        variables, valuations = _valuations(model, n)
    labels["init"] = init
    try:
        if mtype == model_types.CTMC:
            return CTMC.from_rates((n, src, dst, vals), labels=labels, rewards=rewards,
                                   exact=exact, variables=variables, valuations=valuations)
        return DTMC(_Edges(n, src, dst, vals), labels=labels, rewards=rewards, exact=exact,
                    variables=variables, valuations=valuations)
    except ChainError as exc:
        raise ModelFormatError(f"stormpy model: {exc}") from None


def _unnamed_reward_name(reward_models: Any) -> str:
    """The name given to the model's unnamed reward structure: ``default``, or
    ``default_2``, ``default_3``, ... when the model also names a structure so
    (the unnamed one would otherwise replace it)."""
    taken = set(reward_models.keys())
    name, k = "default", 1
    while name in taken:
        k += 1
        name = f"default_{k}"
    return name


def _per_firing(rm: Any, n: int, src: np.ndarray, dst: np.ndarray, vals: Any, ctmc: bool,
                exact: bool, name: str) -> list[Any] | None:
    """What a state's one action earns per firing: its action reward plus the expected
    transition reward ``sum_v P(s, v) t(s, v)`` (``P`` the rates over the exit rate for
    a CTMC); ``None`` without action and transition rewards.

    Computed exactly, for a float model from the exact values of its floats
    (:func:`reward_rates` rounds the folded reward once)."""
    if not (rm.has_state_action_rewards or rm.has_transition_rewards):
        return None
    zero = Fraction(0)
    out: list[Any] = ([_exact_float(_value(x, exact), name, u)
                       for u, x in enumerate(rm.state_action_rewards)]
                      if rm.has_state_action_rewards else [zero] * n)
    if len(out) != n:  # pragma: no cover - a chain has one action per state
        raise ModelFormatError("stormpy model: action rewards are not one per state")
    if rm.has_transition_rewards:
        q = vals if exact else exact_values(vals)
        row_sum: list[Any] = _row_sums(n, src, q, True).tolist()
        value = {(u, v): x for u, v, x in zip(src.tolist(), dst.tolist(), q.tolist(),
                                                strict=True)}
        tr = rm.transition_rewards
        for u in range(n):
            for e in tr.get_row(u):
                x = _exact_float(_value(e.value() if callable(e.value) else e.value, exact),
                                 name, u)
                if x:  # rates over the exit rate: a probability for a CTMC
                    p = value.get((u, int(e.column)), zero)
                    out[u] += (p / row_sum[u] if ctmc else p) * x
    return out


def _exact_float(x: Any, name: str, state: int) -> Fraction:
    """The exact value of a float reward (a Fraction as it is); an infinite or NaN one is
    refused by reward structure and state."""
    if isinstance(x, Fraction):
        return x
    if not math.isfinite(x):
        raise ModelFormatError(f"stormpy model: reward {name!r}: state {state} has value {x}")
    return Fraction(x)


def _matrix_arrays(tm: Any, n: int, exact: bool) -> tuple[np.ndarray, np.ndarray, Any]:
    """(src, dst, values) of a sparse stormpy matrix with one row per state.

    Iterating the matrix itself is about three times faster than row by row;
    the row lengths give the sources.
    """
    counts = np.fromiter((len(tm.get_row(row)) for row in range(n)), np.int64, n)
    src = np.repeat(np.arange(n, dtype=np.int64), counts)
    m = int(counts.sum())
    vals: Any
    if exact:
        pairs = [(e.column, e.value) for e in tm]
        dst = np.fromiter((c for c, _ in pairs), np.int64, m)
        vals = np.empty(m, dtype=object)
        vals[:] = [_value(v() if callable(v) else v, True) for _, v in pairs]
    else:
        arr = np.array([(e.column, e.value) for e in tm], dtype=np.float64).reshape(m, 2)
        dst = arr[:, 0].astype(np.int64)
        vals = np.ascontiguousarray(arr[:, 1])
    if dst.shape[0] != m:  # pragma: no cover - defensive: Storm's row grouping changed
        raise ModelFormatError("stormpy model: unexpected matrix layout (more than one row "
                               "per state?)")
    return src, dst, vals


def _valuations(model: Any, n: int) -> tuple[tuple[str, ...], list[tuple[Any, ...]]] | tuple[
    tuple[str, ...], None
]:
    sv = model.state_valuations
    try:
        first = sv.to_json(0)
    except (RuntimeError, TypeError):
        return (), None
    import json

    names = tuple(json.loads(str(first)).keys())
    out = []
    for s in range(n):
        d = json.loads(str(sv.to_json(s)))
        out.append(tuple(d[k] for k in names))
    return names, out
