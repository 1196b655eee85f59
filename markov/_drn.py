"""Storm's explicit DRN format (``.drn``) for CTMCs and DTMCs."""

from __future__ import annotations

import os
import re
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np

from lumpcore import ModelFormatError

from ._chain import CTMC, DTMC, ChainError, _Edges
from ._explicit import _support_uniform
from ._fileio import (
    NUMBER_TOKEN,
    FileLines,
    atomic_write,
    fmt_number,
    located,
    no_repeated_transition,
    parse_index,
    parse_number,
    reward_rates,
)

__all__ = ["read_drn", "write_drn"]


#: a label or reward name DRN can hold: no white space or quote, no '//', and not starting
#: with '@' (a section), '!' (an exit rate), '[' (rewards) or a digit (an index or value)
_LABEL = re.compile(r'(?!//)[^\s"@!\[0-9](?:(?!//)[^\s"])*')
#: a character that no transition line 'target : value' of decimal numbers holds
_NOT_FAST_TRANSITION = re.compile(r"[^0-9.:eE+\-\s]")


def read_drn(path: str | os.PathLike[str], *, exact: bool = False) -> CTMC | DTMC:
    """Read a CTMC or DTMC from Storm's DRN format.

    Supported: ``@type: CTMC`` or ``DTMC``, no parameters, one action per
    state, state rewards (``state 3 [1.5, 0] init goal``).  For a CTMC the
    transition values are rates (Storm's convention; the ``!exit`` rate of a
    state line is checked against their sum) and self-loops go to
    ``CTMC.loops`` (they do not change the generator).
    Action (choice) rewards are folded into state reward rates, as
    :func:`markov.read_prism` does: a CTMC state earns its action reward
    times its exit rate per time unit, a DTMC state its action reward per
    step (a :class:`lumpcore.LumpkitWarning` names the reward models).

    Parameters
    ----------
    path : path
    exact : bool
        Values as exact rationals (``1/3`` or decimals at their decimal value).

    Returns
    -------
    CTMC or DTMC

    Raises
    ------
    ModelFormatError
        Naming the file, the line and the reason.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.drn"
    >>> _ = p.write_text("@type: CTMC\\n@parameters\\n\\n@reward_models\\n\\n@nr_states\\n2\\n"
    ...     "@nr_choices\\n2\\n@model\\nstate 0 !2 init\\n\\taction 0\\n\\t\\t1 : 2\\n"
    ...     "state 1 !1\\n\\taction 0\\n\\t\\t0 : 1\\n")
    >>> read_drn(p, exact=True).exit_rates().tolist()
    [Fraction(2, 1), Fraction(1, 1)]
    """
    path = Path(path)
    if not exact:
        fast = _read_drn_fast(path)
        if fast is not None:
            return fast
    return _read_drn_checked(path, exact)


def _read_drn_checked(path: Path, exact: bool) -> CTMC | DTMC:
    """Line-by-line reader: every error names the file and line."""
    mtype: str | None = None
    reward_names: list[str] = []
    n: int | None = None
    src: list[int] = []
    dst: list[int] = []
    vals: list[Any] = []
    at: list[int] = []  # the line of each transition and of each state, for errors
    state_at: dict[int, int] = {}
    labels: dict[str, list[int]] = {}
    # rewards of the states listed so far (filled into lists of n values at the end, once
    # the file has shown n states: a corrupt @nr_states must not allocate its count)
    rewards: list[dict[int, Any]] = []
    exits: dict[int, tuple[Any, int]] = {}
    action_reward: list[dict[int, Any]] = []
    state: int | None = None
    actions = 0
    expected_state = 0
    choices: tuple[int, int] | None = None  # @nr_choices and its line
    section: str | None = None
    with FileLines(path) as lines:
        for line in lines:
            t = line.strip()
            if not t or t.startswith("//"):
                continue
            if t.startswith("@"):
                key, _, rest = t.partition(":")
                section = key
                if key == "@type":
                    mtype = rest.strip().upper()
                    if mtype not in ("CTMC", "DTMC"):
                        raise lines.error(
                            f"model type {mtype!r} is not supported; lumpkit reads CTMC and DTMC"
                        )
                elif key == "@value_type":
                    vt = rest.strip()
                    if vt not in ("double", "rational"):
                        raise lines.error(
                            f"value type {vt!r} is not supported (double or rational)"
                        )
                elif key not in ("@parameters", "@placeholders", "@reward_models", "@nr_states",
                                 "@nr_choices", "@model"):
                    raise lines.error(f"unknown section {key!r}")
                if key == "@model":
                    if mtype is None:
                        raise lines.error("@model before @type")
                    if n is None:
                        raise lines.error("@model before @nr_states")
                continue
            if section == "@parameters":
                raise lines.error("parametric models are not supported")
            if section == "@reward_models":
                reward_names = t.split()
                continue
            if section == "@nr_states":
                try:
                    n = parse_index(t)
                except ValueError:
                    raise lines.error(f"expected the number of states, got {t!r}") from None
                rewards = [{} for _ in reward_names]
                action_reward = [{} for _ in reward_names]
                continue
            if section == "@nr_choices":
                try:
                    choices = (parse_index(t), lines.lineno)
                except ValueError:
                    raise lines.error(f"expected the number of choices, got {t!r}") from None
                continue
            if section != "@model":
                raise lines.error(f"unexpected line {t!r} outside @model")
            assert n is not None and mtype is not None
            if t.startswith("state "):
                if state is not None and actions != 1:
                    raise lines.error(
                        f"state {state} has {actions} actions; a chain needs exactly 1"
                    )
                state, actions = _parse_state_line(lines, t, n, exact, reward_names, rewards,
                                                   labels, exits, mtype)
                if state != expected_state:
                    raise lines.error(f"expected state {expected_state}, got {state}")
                state_at[state] = lines.lineno
                expected_state += 1
                continue
            if t.startswith("action"):
                if state is None:
                    raise lines.error("action before the first state")
                if "[" in t:
                    if "]" not in t:
                        raise lines.error(f"unclosed action reward list in {t!r}")
                    inner = t[t.index("[") + 1:t.rindex("]")]
                    toks = [x.strip() for x in inner.split(",") if x.strip()]
                    if len(toks) != len(reward_names):
                        raise lines.error(f"{len(toks)} action rewards for {len(reward_names)} "
                                          "reward models")
                    for k, tok in enumerate(toks):
                        try:
                            action_reward[k][state] = parse_number(tok, exact)
                        except ValueError as exc:
                            raise lines.error(f"bad action reward {tok!r}: {exc}") from None
                actions += 1
                if actions > 1:
                    raise lines.error(
                        f"state {state} has more than one action (an MDP); lumpkit reads chains"
                    )
                continue
            if state is None or actions != 1:
                raise lines.error(f"transition {t!r} outside a state's action")
            target, sep, value = t.partition(":")
            if not sep:
                raise lines.error(f"expected 'target : value', got {t!r}")
            try:
                j = parse_index(target.strip())
                v = parse_number(value.strip(), exact)
            except ValueError as exc:
                raise lines.error(f"bad transition {t!r}: {exc}") from None
            if not 0 <= j < n:
                raise lines.error(f"target state {j} out of range 0..{n - 1}")
            src.append(state)
            dst.append(j)
            vals.append(v)
            at.append(lines.lineno)
        if n is None or mtype is None:
            raise ModelFormatError(f"{path}: missing @type or @nr_states; not a DRN file")
        if expected_state != n:
            raise ModelFormatError(f"{path}: @nr_states says {n}, the file lists {expected_state}")
        if state is not None and actions != 1:
            raise ModelFormatError(f"{path}: state {state} has no action")
        if choices is not None and choices[0] != n:
            raise ModelFormatError(
                f"{path}, line {choices[1]}: @nr_choices says {choices[0]}; a chain has one "
                f"choice per state, {n}")
    s_arr, d_arr = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    no_repeated_transition(path, n, s_arr, d_arr, np.asarray(at, np.int64))
    vals_arr: Any
    if exact:
        vals_arr = np.empty(len(vals), dtype=object)
        vals_arr[:] = vals
    else:
        vals_arr = np.asarray(vals, dtype=np.float64)
    zero = parse_number("0", exact)
    rew = reward_rates(f"{path}: ", reward_names,
                       [[r.get(s, zero) for s in range(n)] for r in rewards],
                       [[a.get(s, zero) for s in range(n)] for a in action_reward],
                       n, s_arr, vals, mtype == "CTMC", "action")
    try:
        if mtype == "CTMC":
            chain: CTMC | DTMC = CTMC.from_rates((n, s_arr, d_arr, vals_arr), labels=labels,
                                                 rewards=rew, exact=exact)
            _check_exits(path, chain, exits, exact)
            return chain
        return DTMC(_Edges(n, s_arr, d_arr, vals_arr), labels=labels, rewards=rew, exact=exact)
    except ChainError as exc:
        raise located(path, exc, s_arr, d_arr, np.asarray(at, np.int64), state_at) from None


def _read_drn_fast(path: Path) -> CTMC | DTMC | None:
    """Vectorised reader for well-formed float DRN files (Storm's own exports).

    Returns ``None`` on anything unusual (a token that is not a number, a
    state line without its index, a line out of place); the caller then uses
    the line-by-line reader, which reports the file, line and reason.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None
    try:
        return _parse_drn_fast(path, text)
    except (ValueError, IndexError):  # malformed: let the checked reader name the line
        return None


def _parse_drn_fast(path: Path, text: str) -> CTMC | DTMC | None:
    """The body of :func:`_read_drn_fast`; may raise ValueError/IndexError on bad tokens."""
    import io
    lines = text.split("\n")
    try:
        at = lines.index("@model")
    except ValueError:
        return None
    header: dict[str, list[str]] = {}
    key = ""
    for line in lines[:at]:
        t = line.strip()
        if not t or t.startswith("//"):
            continue
        if t.startswith("@"):
            key, _, rest = t.partition(":")
            header[key] = [rest.strip()] if rest.strip() else []
        else:
            header.setdefault(key, []).append(t)
    try:
        mtype = header["@type"][0].upper()
        n = parse_index(header["@nr_states"][0])
        if "@nr_choices" in header and parse_index(header["@nr_choices"][0]) != n:
            return None
    except (KeyError, IndexError, ValueError):
        return None
    if mtype not in ("CTMC", "DTMC") or header.get("@parameters") or header.get(
        "@value_type", ["double"]
    ) != ["double"]:
        return None
    reward_names = header.get("@reward_models", [""])[0].split() if header.get(
        "@reward_models") else []
    import itertools

    model = lines[at + 1:]
    size = len(model)
    # classify lines by their first two characters (vectorised)
    heads = np.asarray([x[:2] for x in model], dtype="<U2") if size else np.zeros(0, "<U2")
    is_tr = heads == "\t\t"
    is_st = heads == "st"
    is_act = heads == "\ta"
    other = ~(is_tr | is_st | is_act)
    if other.any() and any(
        x.strip() and not x.lstrip().startswith("//") for x in itertools.compress(model, other)
    ):
        return None
    # the layout of a chain: every state line, then its one action line, then its
    # transitions (an MDP's second action, or a transition before the first state
    # or before its state's action line, goes to the checked reader, which refuses it)
    st_at, act_at = np.flatnonzero(is_st), np.flatnonzero(is_act)
    if st_at.size != n or act_at.size != n:
        return None
    if n:
        tr_before = np.cumsum(is_tr)  # transitions up to each line
        if np.any(act_at != st_at + 1) or int(tr_before[st_at[0]]) != 0:
            return None
    actions = list(itertools.compress(model, is_act))
    action_reward = [np.zeros(n) for _ in reward_names]
    for s_i, x in enumerate(actions):
        if "[" in x:
            if "]" not in x:
                return None
            toks = x[x.index("[") + 1:x.rindex("]")].replace(",", " ").split()
            if len(toks) != len(reward_names) or s_i >= n:
                return None
            for k, tok in enumerate(toks):
                action_reward[k][s_i] = float(tok)
    n_actions = len(actions)
    trans = list(itertools.compress(model, is_tr))
    state_lines = list(itertools.compress(model, is_st))
    starts = np.cumsum(is_tr)[is_st] - 0  # transitions before each state line
    if len(state_lines) != n or n_actions != n:
        return None
    m = len(trans)
    if _NOT_FAST_TRANSITION.search("\n".join(trans)):
        return None  # a character no transition 'target : value' has (1_0, other digits)
    if m:
        try:
            arr = np.loadtxt(io.StringIO("\n".join(trans)), delimiter=":", dtype=np.float64,
                             ndmin=2)
        except ValueError:
            return None
        if arr.shape != (m, 2):
            return None
        dst = arr[:, 0].astype(np.int64)
        if np.any(dst != arr[:, 0]) or np.any((dst < 0) | (dst >= n)):
            return None
        vals = arr[:, 1]
        if np.any(vals == 0):  # '0', or a value like 1e-400 that underflows: the checked reader
            return None
    else:
        dst, vals = np.zeros(0, np.int64), np.zeros(0)
    counts = np.diff(np.append(starts, m)).astype(np.int64)
    src = np.repeat(np.arange(n, dtype=np.int64), counts)
    if m > 1 and np.unique(src * n + dst).size != m:
        return None  # a transition listed twice: the checked reader names it
    labels: dict[str, list[int]] = {}
    rewards = [np.zeros(n) for _ in reward_names]
    exit_given = np.full(n, np.nan)
    for s, line in enumerate(state_lines):
        parts = line.split()
        if parts[1] != str(s):
            return None
        tail = parts[2:]
        if tail and tail[0].startswith("!"):
            if mtype != "CTMC" or not NUMBER_TOKEN.fullmatch(tail[0][1:]):
                return None
            exit_given[s] = float(tail[0][1:])
            tail = tail[1:]
        if tail and tail[0].startswith("["):
            joined = " ".join(tail)
            close = joined.index("]")
            toks = joined[1:close].replace(",", " ").split()
            if len(toks) != len(reward_names):
                return None
            for k, tok in enumerate(toks):
                rewards[k][s] = float(tok)
            tail = joined[close + 1:].split()
        for lab in tail:
            if not _LABEL.fullmatch(lab.strip('"')):
                return None  # (the checked reader names it)
            labels.setdefault(lab.strip('"'), []).append(s)
    rew = reward_rates(f"{path}: ", reward_names, rewards, action_reward, n, src, vals,
                       mtype == "CTMC", "action")
    try:
        if mtype == "CTMC":
            chain: CTMC | DTMC = CTMC.from_rates(
                (n, src, dst, vals), labels=labels, exact=False, rewards=rew)
            assert isinstance(chain, CTMC)
            have = chain.exit_rates() + (chain.loops if chain.loops is not None else 0.0)
            given = ~np.isnan(exit_given)
            if np.any(np.abs(have[given] - exit_given[given])
                      > 1e-6 * np.maximum(np.abs(exit_given[given]), 1e-12)):
                return None
            return chain
        return DTMC(_Edges(n, src, dst, vals), labels=labels, exact=False, rewards=rew)
    except (ChainError, ValueError, IndexError):
        return None


def _parse_state_line(
    lines: FileLines,
    t: str,
    n: int,
    exact: bool,
    reward_names: list[str],
    rewards: list[dict[int, Any]],
    labels: dict[str, list[int]],
    exits: dict[int, tuple[Any, int]],
    mtype: str,
) -> tuple[int, int]:
    rest = t[len("state "):].strip()
    head, _, rest = rest.partition(" ")
    try:
        s = parse_index(head)
    except ValueError:
        raise lines.error(f"expected 'state <index> ...', got {t!r}") from None
    if not 0 <= s < n:
        raise lines.error(f"state {s} out of range 0..{n - 1}")
    rest = rest.strip()
    if rest.startswith("!") and mtype != "CTMC":
        raise lines.error(f"an exit rate ({rest.split()[0]!r}) on a {mtype} state; only a "
                          "CTMC's states have one")
    if rest.startswith("!"):
        tok, _, rest = rest[1:].partition(" ")
        try:
            exits[s] = (parse_number(tok, exact), lines.lineno)
        except ValueError as exc:
            raise lines.error(f"bad exit rate {tok!r}: {exc}") from None
        rest = rest.strip()
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise lines.error("unclosed '[' in the state rewards")
        toks = [x.strip() for x in rest[1:close].split(",") if x.strip()]
        if len(toks) != len(reward_names):
            raise lines.error(
                f"{len(toks)} state rewards for {len(reward_names)} reward models"
            )
        for k, tok in enumerate(toks):
            try:
                rewards[k][s] = parse_number(tok, exact)
            except ValueError as exc:
                raise lines.error(f"bad reward {tok!r}: {exc}") from None
        rest = rest[close + 1:]
    for lab in rest.split():
        if not _LABEL.fullmatch(lab.strip('"')):
            raise lines.error(
                f"{lab!r} is no label; a state line reads 'state <index> [!<exit rate>] "
                "[<rewards>] <labels>', and a label starts with no digit, '!', '[' or '@'")
        labels.setdefault(lab.strip('"'), []).append(s)
    return s, 0


_EXIT_RTOL = Fraction(1, 10**6)  # relative tolerance of a declared exit rate


def _check_exits(path: Path, chain: CTMC | DTMC, exits: dict[int, tuple[Any, int]],
                 exact: bool) -> None:
    assert isinstance(chain, CTMC)
    ex = chain.exit_rates().tolist()
    if chain.loops is not None:  # Storm's exit rate counts self-loops
        ex = [e + x for e, x in zip(ex, chain.loops.tolist(), strict=True)]
    for s, (given, lineno) in exits.items():
        have = ex[s]
        # Storm writes the exit rate rounded (a double, in 10 or 17 digits), also when the
        # rates are read exactly: it is checked to a relative 1e-6, the rates are used
        if exact:
            ok = given == 0 or abs(have - given) <= _EXIT_RTOL * abs(given)
        else:
            ok = given == 0 or abs(float(have) - float(given)) <= 1e-6 * max(abs(float(given)),
                                                                           1e-12)
        if not ok:
            raise ModelFormatError(
                f"{path}, line {lineno}: state {s} declares exit rate {given}, but its rates sum "
                f"to {have}"
            )


def write_drn(chain: CTMC | DTMC, path: str | os.PathLike[str]) -> Path:
    """Write a chain in Storm's DRN format (atomically).

    CTMC transition values are rates (self-loops of ``CTMC.loops``
    included) and every state line carries Storm's exit rate ``!E`` (the sum
    of its rates, self-loops included); state rewards go in ``[...]``; labels (``init`` = support of
    the initial distribution) follow.  Absorbing CTMC states get no
    transitions; absorbing DTMC states keep their self-loop.  Values are
    written in full precision (floats: shortest round-trip; exact: decimal or
    ``p/q``, with ``@value_type: rational``).

    Returns
    -------
    Path

    Raises
    ------
    ModelFormatError
        If a label or reward name is empty, contains whitespace, a quote or
        ``//``, or starts with ``@``, ``!``, ``[`` or a digit (the format could
        not read it back), or
        the initial distribution is not uniform on its support.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from markov import paper_example_2
    >>> p = write_drn(paper_example_2(), pathlib.Path(tempfile.mkdtemp()) / "ex2.drn")
    >>> read_drn(p, exact=True).num_transitions
    17
    """
    path = Path(path)
    for name in list(chain.labels) + list(chain.rewards):
        if not _LABEL.fullmatch(name):
            raise ModelFormatError(
                f"label/reward name {name!r} cannot be written to DRN (no spaces, quotes or "
                "'//', and no leading '@', '!', '[' or digit); rename it"
            )
    support = set(_support_uniform(chain))
    state_labels = chain.state_labels()
    names = list(chain.rewards)
    rew = [chain.rewards[k].tolist() for k in names]
    if isinstance(chain, CTMC):
        _, src, dst, val = chain.rate_edges()
        exits = chain.exit_rates().tolist()
        if chain.loops is not None:  # Storm's exit rate counts self-loops
            exits = [e + x for e, x in zip(exits, chain.loops.tolist(), strict=True)]
    else:
        _, src, dst, val = chain.to_edges()
        exits = []
    starts = np.searchsorted(src, np.arange(chain.n + 1))
    dst_l, val_l = dst.tolist(), val.tolist()

    def write(fh: IO[str]) -> None:
        fh.write("// Exported by lumpkit\n")
        fh.write(f"@type: {chain.kind.upper()}\n")
        fh.write(f"@value_type: {'rational' if chain.exact else 'double'}\n")
        fh.write("@parameters\n\n@reward_models\n")
        fh.write(" ".join(names) + "\n")
        fh.write(f"@nr_states\n{chain.n}\n@nr_choices\n{chain.n}\n@model\n")
        for s in range(chain.n):
            parts = [f"state {s}"]
            if exits:
                parts.append(f"!{fmt_number(exits[s])}")
            if names:
                parts.append("[" + ", ".join(fmt_number(r[s]) for r in rew) + "]")
            labs = sorted(x for x in state_labels[s] if x != "init")
            if s in support:
                labs.insert(0, "init")
            parts.extend(labs)
            fh.write(" ".join(parts) + "\n\taction 0\n")
            for k in range(int(starts[s]), int(starts[s + 1])):
                fh.write(f"\t\t{dst_l[k]} : {fmt_number(val_l[k])}\n")

    atomic_write(path, write)
    return path
