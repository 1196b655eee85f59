"""Read any supported model file, chosen by its extension."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lumpcore import ModelFormatError

from ._chain import CTMC, DTMC
from ._drn import read_drn
from ._explicit import read_prism_explicit
from ._storm import read_prism

__all__ = ["read_model"]

_PRISM_SUFFIXES = (".prism", ".sm", ".pm", ".nm", ".jani")


def read_model(
    path: str | os.PathLike[str],
    constants: Mapping[str, Any] | None = None,
    *,
    exact: bool = False,
    model_type: str = "ctmc",
) -> CTMC | DTMC:
    """Read a chain from ``.tra`` (with ``.lab``/``.sta``/``.srew`` beside it),
    ``.drn``, or a PRISM-language/JANI model (``.prism``, ``.sm``, ``.pm``,
    ``.jani``; needs stormpy).

    Parameters
    ----------
    path : path
    constants : mapping, optional
        Undefined constants of a PRISM/JANI model (``{"N": 4}``).
    exact : bool
        Exact rationals (stormpy's exact builder for PRISM/JANI).
    model_type : {'ctmc', 'dtmc'}
        For ``.tra`` files, which do not say.

    Raises
    ------
    ModelFormatError
        For an unknown extension, constants given for a file that has
        none, or a malformed file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from markov import paper_example_2, write_drn
    >>> p = write_drn(paper_example_2(), pathlib.Path(tempfile.mkdtemp()) / "ex2.drn")
    >>> read_model(p)
    CTMC(8 states, 17 transitions, float, labels=['first', 'init', 'last'])
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such model file")
    suffix = p.suffix.lower()
    if suffix in _PRISM_SUFFIXES:
        return read_prism(p, constants, exact=exact)
    if constants:
        raise ModelFormatError(
            f"{p}: constants ({', '.join(constants)}) apply to PRISM/JANI models only"
        )
    if suffix == ".tra":
        if model_type not in ("ctmc", "dtmc"):
            raise ModelFormatError(f"model_type must be 'ctmc' or 'dtmc', got {model_type!r}")
        return read_prism_explicit(p, model_type=model_type, exact=exact)  # type: ignore[arg-type]
    if suffix == ".drn":
        return read_drn(p, exact=exact)
    raise ModelFormatError(
        f"{p}: unknown model format {suffix!r}; use .tra (+ .lab), .drn, .prism/.sm or .jani"
    )
