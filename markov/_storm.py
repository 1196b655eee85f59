"""PRISM-language and JANI models through stormpy (the optional ``storm`` extra)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from lumpcore import LumpkitError, LumpkitWarning, ModelFormatError

from ._chain import CTMC, DTMC, ChainError, _Edges
from ._fileio import FileLines

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
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, Fraction):
            text = f"{value.numerator}/{value.denominator}"
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
    instantaneous ones, and a :class:`lumpcore.LumpkitWarning` names the
    reward structures it folded.

    Parameters
    ----------
    path : path
        ``.jani`` files are parsed as JANI, everything else as PRISM.
    constants : mapping name -> value, optional
        Values of undefined constants (``{"N": 4}``), as on the command line
        ``-c N=4``.
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
        over Storm's initial states), state rewards and (if asked) state
        valuations.

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
    # Storm logs warnings to stdout, which would corrupt --json output: quiet it while building.
    dev.set_log_level(dev.LogLevel.ERR)
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
        msg = str(exc).strip().splitlines()
        raise ModelFormatError(
            f"{path}: stormpy could not build the model: {msg[-1] if msg else exc}"
        ) from None
    finally:
        dev.set_log_level(old_level)
    return from_stormpy(model)


def _value(x: Any, exact: bool) -> Any:
    if exact:
        return Fraction(str(x))
    return float(x)


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
    exact = bool(model.is_exact)
    n = int(model.nr_states)
    tm = model.transition_matrix
    src, dst, vals = _matrix_arrays(tm, n, exact)
    labels = {lab: sorted(int(s) for s in model.labeling.get_states(lab))
              for lab in model.labeling.get_labels()}
    init = [int(s) for s in model.initial_states]
    rewards: dict[str, Any] = {}
    folded: list[str] = []
    for name, rm in model.reward_models.items():
        total = _reward_rates(rm, n, src, dst, vals, mtype == model_types.CTMC, exact)
        if total is not None:
            rewards[name or "default"] = total
            if rm.has_state_action_rewards or rm.has_transition_rewards:
                folded.append(name or "default")
    if folded:
        warnings.warn(
            f"reward structure(s) {', '.join(repr(d) for d in folded)}: transition/action "
            "rewards are folded into state reward rates (expected reward per time unit, or "
            "per step of a DTMC), as Storm does for long-run and accumulated rewards; "
            "lumping respects them and keeps those measures, but not instantaneous rewards",
            LumpkitWarning, stacklevel=2)
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


def _reward_rates(rm: Any, n: int, src: np.ndarray, dst: np.ndarray, vals: Any, ctmc: bool,
                  exact: bool) -> list[Any] | None:
    """One reward model as a state reward rate: ``r(s) + w(s) a(s) + sum_v M(s, v) t(s, v)``.

    ``r`` state rewards, ``a`` action rewards (one action per state in a
    chain), ``t`` transition rewards, ``M`` the matrix (rates of a CTMC,
    self-loops included, probabilities of a DTMC), ``w`` the exit rate
    ``sum_v M(s, v)`` of a CTMC state (1 for a DTMC): the expected reward
    earned per time unit (per step) in ``s``, Storm's total reward vector.
    ``None`` when the model has no rewards at all.
    """
    if not (rm.has_state_rewards or rm.has_state_action_rewards or rm.has_transition_rewards):
        return None
    zero: Any = Fraction(0) if exact else 0.0
    total: list[Any] = ([_value(x, exact) for x in rm.state_rewards] if rm.has_state_rewards
                        else [zero] * n)
    srcl, dstl = src.tolist(), dst.tolist()
    valsl = list(vals) if exact else vals.tolist()
    if rm.has_state_action_rewards:
        action = [_value(x, exact) for x in rm.state_action_rewards]
        if len(action) != n:  # pragma: no cover - a chain has one action per state
            raise ModelFormatError("stormpy model: action rewards are not one per state")
        weight: list[Any] = [zero] * n if ctmc else [1] * n
        if ctmc:
            for u, v in zip(srcl, valsl, strict=True):
                weight[u] += v
        total = [t + w * a for t, w, a in zip(total, weight, action, strict=True)]
    if rm.has_transition_rewards:
        rate = {(u, v): x for u, v, x in zip(srcl, dstl, valsl, strict=True)}
        tr = rm.transition_rewards
        for u in range(n):
            for e in tr.get_row(u):
                x = _value(e.value() if callable(e.value) else e.value, exact)
                if x:
                    total[u] += rate.get((u, int(e.column)), zero) * x
    return total


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
