"""PRISM explicit files: ``.tra`` (transitions), ``.lab`` (labels), ``.sta``
(state valuations) and ``.srew`` (state rewards)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from lumpcore import ModelFormatError

from ._chain import CTMC, DTMC, ChainError
from ._fileio import (
    FileLines,
    atomic_write_group,
    fmt_number,
    located,
    no_repeated_transition,
    parse_index,
    parse_number,
)

__all__ = ["read_prism_explicit", "write_prism_explicit"]

_PathOrNames = str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]]
_LAB_HEADER = re.compile(r'\s*(\d+)\s*=\s*"([^"]*)"\s*')
_SREW_NAME = re.compile(r'#\s*Reward structure\s*"?([^"]*)"?')


def _parse_tra(
    path: Path, exact: bool
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """States, sources, targets, values and the line of each transition."""
    with FileLines(path) as lines:
        it = iter(lines)
        header = None
        for line in it:
            if line.strip() and not line.lstrip().startswith("#"):
                header = line.split()
                break
        if header is None:
            raise ModelFormatError(
                f"{path}: empty file; expected a header line 'states transitions'"
            )
        if len(header) != 2 or not all(h.isascii() and h.isdigit() for h in header):
            raise lines.error(
                f"expected the header 'states transitions' (two integers), got {' '.join(header)!r}"
            )
        n, m = int(header[0]), int(header[1])
        header_line = lines.lineno
        # arrays grow with the lines read (a corrupt header must not allocate its count)
        size = min(m, 1 << 16)
        src = np.empty(size, dtype=np.int64)
        dst = np.empty(size, dtype=np.int64)
        at = np.empty(size, dtype=np.int64)  # line numbers, for errors about the chain
        vals: Any = np.empty(size, dtype=object if exact else np.float64)
        k = 0
        for line in it:
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 3:
                hint = " (4 columns: an MDP, not a chain)" if len(parts) == 4 else ""
                raise lines.error(f"expected 'source target value', got {line.strip()!r}{hint}")
            if k >= m:
                raise lines.error(f"more transitions than the {m} announced in the header")
            try:
                i, j = parse_index(parts[0]), parse_index(parts[1])
            except ValueError:
                raise lines.error(f"state indices must be integers, got {line.strip()!r}") from None
            for s in (i, j):
                if not 0 <= s < n:
                    raise lines.error(f"state {s} out of range 0..{n - 1}")
            try:
                v = parse_number(parts[2], exact)
            except ValueError as exc:
                raise lines.error(f"bad value {parts[2]!r}: {exc}") from None
            if k == size:
                size = min(m, 2 * size)
                src, dst, at, vals = (np.resize(src, size), np.resize(dst, size),
                                      np.resize(at, size), np.resize(vals, size))
            src[k], dst[k], at[k], vals[k] = i, j, lines.lineno, v
            k += 1
        if k != m:
            raise ModelFormatError(
                f"{path}, line {header_line}: the header announces {m} transitions, "
                f"the file has {k}"
            )
    no_repeated_transition(path, n, src[:k], dst[:k], at[:k])
    return n, src, dst, vals, at


def _parse_lab(path: Path, n: int) -> dict[str, list[int]]:
    with FileLines(path) as lines:
        it = iter(lines)
        names: dict[int, str] = {}
        for line in it:
            if not line.strip():
                continue
            pos = 0
            text = line.strip()
            while pos < len(text):
                mt = _LAB_HEADER.match(text, pos)
                if mt is None:
                    raise lines.error(
                        f"expected label declarations like 0=\"init\" 1=\"deadlock\", got {text!r}"
                    )
                index = int(mt.group(1))
                if index in names:
                    raise lines.error(
                        f"label index {index} is declared twice ({names[index]!r} and "
                        f"{mt.group(2)!r}); give every label its own index"
                    )
                if mt.group(2) in names.values():
                    first = next(k for k, v in names.items() if v == mt.group(2))
                    raise lines.error(
                        f"label {mt.group(2)!r} is declared twice (indices {first} and "
                        f"{index}); declare every label once")
                names[index] = mt.group(2)
                pos = mt.end()
            break
        out: dict[str, list[int]] = {name: [] for name in names.values()}
        state_line: dict[int, int] = {}  # the line of each state listed
        for line in it:
            if not line.strip():
                continue
            head, sep, rest = line.partition(":")
            if not sep:
                raise lines.error(f"expected 'state: label-index ...', got {line.strip()!r}")
            try:
                s = parse_index(head.strip())
                idx = [parse_index(x) for x in rest.split()]
            except ValueError:
                raise lines.error(f"expected integers in {line.strip()!r}") from None
            if not 0 <= s < n:
                raise lines.error(f"state {s} out of range 0..{n - 1}")
            if s in state_line:
                raise lines.error(f"state {s} is listed a second time (first on line "
                                  f"{state_line[s]}); give each state one line")
            state_line[s] = lines.lineno
            if len(set(idx)) != len(idx):
                raise lines.error(f"a label index is repeated in {line.strip()!r}")
            for x in idx:
                if x not in names:
                    raise lines.error(f"label index {x} was not declared in the first line")
                out[names[x]].append(s)
    if "init" in out and not out["init"]:
        raise ModelFormatError(
            f"{path}: label 'init' is declared but no state carries it; list the initial "
            "states on lines 'state: index' (or drop the label: then state 0 is initial)")
    return out


def _sta_value(tok: str) -> Any:
    t = tok.strip()
    if t == "true":
        return True
    if t == "false":
        return False
    try:
        return int(t)
    except ValueError:
        return float(t)


def _parse_sta(path: Path, n: int) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    with FileLines(path) as lines:
        it = iter(lines)
        variables: tuple[str, ...] | None = None
        for line in it:
            t = line.strip()
            if not t:
                continue
            if not (t.startswith("(") and t.endswith(")")):
                raise lines.error(f"expected the variable list '(x,y,...)', got {t!r}")
            variables = tuple(v.strip() for v in t[1:-1].split(",") if v.strip())
            break
        if variables is None:
            raise ModelFormatError(f"{path}: empty file; expected '(x,y,...)' then 'i:(...)'")
        vals: list[tuple[Any, ...] | None] = [None] * n
        for line in it:
            t = line.strip()
            if not t:
                continue
            head, sep, rest = t.partition(":")
            rest = rest.strip()
            if not sep or not (rest.startswith("(") and rest.endswith(")")):
                raise lines.error(f"expected 'state:(v1,v2,...)', got {t!r}")
            try:
                s = parse_index(head.strip())
                inner = rest[1:-1]
                row = tuple(_sta_value(x) for x in inner.split(",")) if inner.strip() else ()
            except ValueError:
                raise lines.error(f"bad state index or value in {t!r}") from None
            if not 0 <= s < n:
                raise lines.error(f"state {s} out of range 0..{n - 1}")
            if len(row) != len(variables):
                raise lines.error(f"{len(row)} values for {len(variables)} variables")
            vals[s] = row
        missing = [i for i, v in enumerate(vals) if v is None]
        if missing:
            raise ModelFormatError(f"{path}: no valuation for state {missing[0]}")
    return variables, [v for v in vals if v is not None]


def _parse_srew(path: Path, n: int, exact: bool) -> tuple[str | None, list[Any]]:
    name: str | None = None
    with FileLines(path) as lines:
        it = iter(lines)
        header: list[str] | None = None
        for line in it:
            t = line.strip()
            if not t:
                continue
            if t.startswith("#"):
                mt = _SREW_NAME.match(t)
                if mt:
                    name = mt.group(1)
                continue
            header = t.split()
            break
        if header is None:
            raise ModelFormatError(f"{path}: empty file; expected the header 'states nonzeros'")
        if len(header) != 2 or not all(h.isascii() and h.isdigit() for h in header):
            raise lines.error("expected the header 'states nonzeros' (two integers)")
        if int(header[0]) != n:
            raise lines.error(f"reward file is for {header[0]} states, the model has {n}")
        announced, header_line = int(header[1]), lines.lineno
        values: dict[int, Any] = {}
        for line in it:
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 2:
                raise lines.error(f"expected 'state value', got {line.strip()!r}")
            try:
                s = parse_index(parts[0])
                v = parse_number(parts[1], exact)
            except ValueError as exc:
                raise lines.error(f"bad line {line.strip()!r}: {exc}") from None
            if not 0 <= s < n:
                raise lines.error(f"state {s} out of range 0..{n - 1}")
            if s in values:
                raise lines.error(f"state {s} has a second reward; give each state one line")
            values[s] = v
        if len(values) != announced:
            raise ModelFormatError(
                f"{path}, line {header_line}: the header announces {announced} rewards, "
                f"the file has {len(values)}"
            )
    zero = parse_number("0", exact)
    return name, [values.get(s, zero) for s in range(n)]


def read_prism_explicit(
    tra: str | os.PathLike[str],
    *,
    lab: str | os.PathLike[str] | Literal[False] | None = None,
    sta: str | os.PathLike[str] | Literal[False] | None = None,
    srew: _PathOrNames | Literal[False] | None = None,
    model_type: Literal["ctmc", "dtmc"] = "ctmc",
    exact: bool = False,
) -> CTMC | DTMC:
    """Read a chain from PRISM explicit files.

    Parameters
    ----------
    tra : path
        Transitions: a header ``n m``, then ``m`` lines ``i j value`` (rates
        for a CTMC, probabilities for a DTMC).  CTMC self-loops are ignored
        (they do not change a CTMC) except
        for Storm-compatible bisimulation: they are kept in ``CTMC.loops``.
    lab, sta, srew : path, optional
        Labels (``0="init" 1="deadlock"`` then ``i: 0 1``), state
        valuations (``(x,y)`` then ``i:(1,true)``) and state rewards (``n nnz``
        then ``i r``; a ``# Reward structure "name"`` comment names it).
        ``None`` (default): use ``<stem>.lab``/``.sta``/``.srew`` (or
        ``<stem>1.srew``, ``<stem>2.srew``, ...) beside ``tra`` when they
        exist; ``False``: do not read.  ``srew`` may also map structure
        names to paths, ``{"cost": "a.srew"}``: those names are used (not the
        files' comments).
    model_type : {'ctmc', 'dtmc'}
    exact : bool
        Read values as exact rationals (decimals at their decimal value).

    Returns
    -------
    CTMC or DTMC
        The initial distribution is uniform over the ``init`` states (state
        0 when there is no ``init`` label).

    Raises
    ------
    ModelFormatError
        Naming the file, the line and the reason.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "m.tra").write_text("2 2\\n0 1 3\\n1 0 0.5\\n")
    >>> read_prism_explicit(d / "m.tra").matrix.toarray().tolist()
    [[-3.0, 3.0], [0.5, -0.5]]
    """
    tra = Path(tra)
    if model_type not in ("ctmc", "dtmc"):
        raise ModelFormatError(f"model_type must be 'ctmc' or 'dtmc', got {model_type!r}")
    try:
        return _read_explicit(tra, lab, sta, srew, model_type, exact)
    except MemoryError:  # e.g. a corrupt header announcing 10**13 states
        raise ModelFormatError(
            f"{tra}: not enough memory for the chain its header 'states transitions' "
            "announces; check the first line"
        ) from None


def _read_explicit(
    tra: Path,
    lab: str | os.PathLike[str] | Literal[False] | None,
    sta: str | os.PathLike[str] | Literal[False] | None,
    srew: _PathOrNames | Literal[False] | None,
    model_type: str,
    exact: bool,
) -> CTMC | DTMC:
    """The body of :func:`read_prism_explicit` (which turns a MemoryError into a clear error)."""
    n, src, dst, vals, at = _parse_tra(tra, exact)
    stem = tra.with_suffix("")

    def beside(arg: Any, suffix: str) -> Path | None:
        if arg is False:
            return None
        if arg is None:
            p = stem.with_name(stem.name + suffix)
            return p if p.exists() else None
        return Path(arg)

    lab_p, sta_p = beside(lab, ".lab"), beside(sta, ".sta")
    labels = _parse_lab(lab_p, n) if lab_p else {}
    variables: tuple[str, ...] = ()
    valuations = None
    if sta_p:
        variables, valuations = _parse_sta(sta_p, n)
    srew_paths: dict[str | None, Path] = {}
    named_by_caller = isinstance(srew, Mapping)
    if srew is None:
        single = stem.with_name(stem.name + ".srew")
        if single.exists():
            srew_paths[None] = single
        k = 1
        while (p := stem.with_name(f"{stem.name}{k}.srew")).exists():
            srew_paths[f"{stem.name}{k}"] = p
            k += 1
    elif isinstance(srew, Mapping):
        srew_paths = {name: Path(p) for name, p in srew.items()}
    elif srew is not False:
        srew_paths[None] = Path(srew)
    rewards: dict[str, Any] = {}
    seen: dict[str, Path] = {}
    for given, p in srew_paths.items():
        inner, values = _parse_srew(p, n, exact)
        # the caller's names win over the comments (the mapping's keys were ignored)
        name = (given if named_by_caller and given else inner or given) or p.stem
        if name in rewards:
            raise ModelFormatError(
                f"{p}: reward structure {name!r} is also in {seen[name]}; give each .srew "
                "file its own structure name"
            )
        rewards[name] = values
        seen[name] = p
    try:
        if model_type == "ctmc":
            return CTMC.from_rates((n, src, dst, vals), labels=labels, rewards=rewards,
                                   exact=exact, variables=variables, valuations=valuations)
        from ._chain import _Edges

        return DTMC(_Edges(n, src, dst, vals), labels=labels, rewards=rewards, exact=exact,
                    variables=variables, valuations=valuations)
    except ChainError as exc:
        raise located(tra, exc, src, dst, at) from None


def _support_uniform(chain: CTMC | DTMC) -> list[int]:
    init = chain.initial.tolist()
    support = [i for i, p in enumerate(init) if p > 0]
    other = next((i for i in support if init[i] != init[support[0]]), None)
    if other is not None:
        first = support[0]
        raise ModelFormatError(
            "PRISM explicit and DRN files express only a uniform initial distribution over "
            "the 'init' states; this chain's initial distribution is not uniform on its support "
            f"(state {first} has {init[first]}, state {other} has {init[other]}; a lumping "
            "quotient has such a distribution when its blocks hold unequal numbers of initial "
            "states)"
        )
    return support


def write_prism_explicit(
    chain: CTMC | DTMC,
    tra: str | os.PathLike[str],
    *,
    lab: bool = True,
    sta: bool = True,
    srew: bool = True,
) -> list[Path]:
    """Write a chain as PRISM explicit files (atomically, as a set).

    Writes ``tra`` and, beside it, ``<stem>.lab`` (labels; ``init`` is the
    support of the initial distribution), ``<stem>.sta`` (if the chain has
    valuations) and the state rewards (``<stem>.srew`` for one structure,
    ``<stem>1.srew``, ``<stem>2.srew``, ... for several, each naming its
    structure in a ``#`` comment).  Every file is written to a temporary file
    first and they are renamed only when all are written, so an error leaves the
    earlier files under these names as they were.  CTMCs are written as rate matrices
    (off-diagonal rates and the self-loops of :attr:`CTMC.loops`).  A
    ``.sta`` or ``.srew`` file beside ``tra`` that this write does not produce
    but the reader would pick up (left by an earlier write of another chain
    to the same name) is deleted, unless ``sta=False``/``srew=False``.  Floats
    are written with their shortest round-trip representation, exact values
    as finite decimals or ``p/q``.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    ModelFormatError
        If the initial distribution is not uniform on its support, a
        label name contains a double quote, or a reward structure's name is
        empty or contains a double quote.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from markov import paper_example_2
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> [p.name for p in write_prism_explicit(paper_example_2(), d / "ex2.tra")]
    ['ex2.tra', 'ex2.lab']
    >>> print((d / "ex2.tra").read_text().splitlines()[0])
    8 17
    """
    tra = Path(tra)
    stem = tra.with_suffix("")
    support = _support_uniform(chain)
    for name in chain.labels:
        if '"' in name or "\n" in name:
            raise ModelFormatError(f"label {name!r} contains a double quote or a newline; "
                                   "rename it")
    if srew:
        for name in chain.rewards:
            if not name or '"' in name or "\n" in name:
                raise ModelFormatError(
                    f"reward structure {name!r} cannot be named in a .srew file (empty, or a "
                    "double quote or newline in it); rename it")
    if sta and chain.valuations is not None:
        _check_sta_writable(chain.variables, chain.valuations)
    if isinstance(chain, CTMC):
        _, src, dst, val = chain.rate_edges()
    else:
        _, src, dst, val = chain.to_edges()

    def w_tra(fh: IO[str]) -> None:
        fh.write(f"{chain.n} {src.shape[0]}\n")
        for i, j, v in zip(src.tolist(), dst.tolist(), val.tolist(), strict=True):
            fh.write(f"{i} {j} {fmt_number(v)}\n")

    group: list[tuple[Path, Callable[[IO[str]], None]]] = [(tra, w_tra)]
    if lab:
        names = ["init"] + [x for x in chain.labels if x != "init"]
        per_state: list[list[int]] = [[] for _ in range(chain.n)]
        for k, name in enumerate(names):
            states = support if name == "init" else chain.labels[name].tolist()
            for s in states:
                per_state[s].append(k)

        def w_lab(fh: IO[str]) -> None:
            fh.write(" ".join(f'{k}="{name}"' for k, name in enumerate(names)) + "\n")
            for s, ks in enumerate(per_state):
                if ks:
                    fh.write(f"{s}: {' '.join(map(str, ks))}\n")

        group.append((stem.with_name(stem.name + ".lab"), w_lab))
    if sta and chain.valuations is not None:
        vals = chain.valuations

        def fmt_sta(x: Any) -> str:
            if isinstance(x, bool | np.bool_):
                return "true" if x else "false"
            return fmt_number(x) if isinstance(x, float) else str(x)

        def w_sta(fh: IO[str]) -> None:
            fh.write("(" + ",".join(chain.variables) + ")\n")
            for s, row in enumerate(vals):
                fh.write(f"{s}:(" + ",".join(fmt_sta(x) for x in row) + ")\n")

        group.append((stem.with_name(stem.name + ".sta"), w_sta))
    if srew and chain.rewards:
        many = len(chain.rewards) > 1
        for k, (name, rew) in enumerate(chain.rewards.items(), start=1):
            nz = [(s, v) for s, v in enumerate(rew.tolist()) if v != 0]

            def w_srew(fh: IO[str], name: str = name, nz: list[tuple[int, Any]] = nz) -> None:
                fh.write(f'# Reward structure "{name}"\n# State rewards\n')
                fh.write(f"{chain.n} {len(nz)}\n")
                for s, v in nz:
                    fh.write(f"{s} {fmt_number(v)}\n")

            group.append((stem.with_name(f"{stem.name}{k if many else ''}.srew"), w_srew))
    atomic_write_group(group)
    written = [p for p, _ in group]
    _remove_stale(stem, written, sta=sta, srew=srew)
    return written


def _check_sta_writable(variables: tuple[str, ...],
                        valuations: tuple[tuple[Any, ...], ...]) -> None:
    """Refuse, before anything is written, valuations a ``.sta`` file cannot hold so
    that the reader gets them back: ints, booleans and finite floats, under names
    without separators (a networkx chain's node names were written, then refused)."""
    for name in variables:
        if not name or any(c in name for c in ",()") or any(c.isspace() for c in name):
            raise ModelFormatError(
                f"state variable {name!r} cannot be written to a .sta file (empty, or a comma, "
                "parenthesis or space in it); rename it or pass sta=False")
    for s, row in enumerate(valuations):
        for x in row:
            ok = isinstance(x, bool | int | np.integer | np.bool_) or (
                isinstance(x, float | np.floating) and bool(np.isfinite(x)))
            if not ok:
                raise ModelFormatError(
                    f"valuation of state {s}: {x!r} cannot be written to a .sta file (ints, "
                    "booleans and finite floats only); pass sta=False to leave the .sta out")


def _remove_stale(stem: Path, written: list[Path], *, sta: bool, srew: bool) -> None:
    """Delete the ``.sta``/``.srew`` files beside ``stem`` that this write did not produce
    but :func:`read_prism_explicit` would read with it (left by an earlier write of
    another chain to the same name: its rewards would be read as this chain's)."""
    keep = set(written)
    stale: list[Path] = []
    if sta:
        stale.append(stem.with_name(stem.name + ".sta"))
    if srew:
        stale.append(stem.with_name(stem.name + ".srew"))
        k = 1
        while (p := stem.with_name(f"{stem.name}{k}.srew")).exists():
            stale.append(p)
            k += 1
    for p in stale:
        if p not in keep and p.is_file():
            p.unlink()
