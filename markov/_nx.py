"""networkx DiGraph in and out (for drawing and teaching)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lumpcore import ModelFormatError

from ._chain import CTMC, DTMC, ChainError, _Edges, as_chain

__all__ = ["from_networkx", "to_networkx"]


def to_networkx(chain: CTMC | DTMC) -> Any:
    """The chain as a ``networkx.DiGraph``.

    Nodes are the states ``0..n-1`` with attributes ``labels`` (frozenset),
    ``initial`` (probability) and one attribute per reward structure
    (``reward:<name>``).  Edges carry ``rate`` (CTMC: the rate matrix,
    self-loops of ``CTMC.loops`` included) or ``prob`` (DTMC).  ``G.graph["kind"]`` is
    ``"ctmc"`` or ``"dtmc"``.  Values keep their type (float or Fraction).

    Examples
    --------
    >>> from markov import paper_example_2
    >>> G = to_networkx(paper_example_2())
    >>> G.number_of_nodes(), G.number_of_edges(), G.edges[0, 1]["rate"]
    (8, 17, Fraction(2, 1))
    """
    import networkx as nx

    chain = as_chain(chain)
    g = nx.DiGraph(kind=chain.kind)
    labs = chain.state_labels()
    init = chain.initial.tolist()
    rews = {k: v.tolist() for k, v in chain.rewards.items()}
    for s in range(chain.n):
        attrs: dict[str, Any] = {"labels": labs[s], "initial": init[s]}
        for k, v in rews.items():
            attrs[f"reward:{k}"] = v[s]
        g.add_node(s, **attrs)
    if isinstance(chain, CTMC):
        _, src, dst, val = chain.rate_edges()
        key = "rate"
    else:
        _, src, dst, val = chain.to_edges()
        key = "prob"
    for i, j, v in zip(src.tolist(), dst.tolist(), val.tolist(), strict=True):
        g.add_edge(i, j, **{key: v})
    return g


def from_networkx(graph: Any, kind: str | None = None, *, exact: bool | None = None) -> CTMC | DTMC:
    """Build a chain from a ``networkx.DiGraph`` written by :func:`to_networkx`
    (or by hand: edges with ``rate`` for a CTMC, ``prob`` for a DTMC).

    Node attributes ``labels`` (iterable of names, or one name),
    ``initial`` and ``reward:<name>`` are optional; when some nodes have
    ``initial``, the others have initial probability 0 (when none has it,
    the chain's default applies: uniform over ``init``, else the first
    node).  Nodes are numbered in ``graph.nodes`` order.

    Examples
    --------
    >>> import networkx as nx
    >>> G = nx.DiGraph()
    >>> G.add_edge("up", "down", rate=0.5); G.add_edge("down", "up", rate=2.0)
    >>> c = from_networkx(G, "ctmc")
    >>> c.matrix.toarray().tolist()
    [[-0.5, 0.5], [2.0, -2.0]]
    """
    if not hasattr(graph, "is_directed") or not graph.is_directed():
        raise ModelFormatError(f"expected a networkx DiGraph, got {type(graph).__name__}")
    kind = kind or graph.graph.get("kind")
    if kind not in ("ctmc", "dtmc"):
        raise ModelFormatError("say kind='ctmc' or kind='dtmc' (or set G.graph['kind'])")
    key = "rate" if kind == "ctmc" else "prob"
    nodes = list(graph.nodes)
    index = {v: i for i, v in enumerate(nodes)}
    n = len(nodes)
    src, dst, val = [], [], []
    for u, v, data in graph.edges(data=True):
        if key not in data:
            raise ModelFormatError(f"edge ({u!r}, {v!r}) has no {key!r} attribute")
        src.append(index[u])
        dst.append(index[v])
        val.append(data[key])
    labels: dict[str, list[int]] = {}
    # nodes without an 'initial' attribute have initial probability 0 when any node has
    # one (they were all ignored, and the mass put on the first node, before)
    given_initial = any("initial" in data for _, data in graph.nodes(data=True))
    initial: list[Any] | None = [] if given_initial else None
    rewards: dict[str, list[Any]] = {}
    for v, data in graph.nodes(data=True):
        names = data.get("labels", ())
        if isinstance(names, str):  # one label name, not the set of its characters
            names = (names,)
        for lab in names:
            labels.setdefault(str(lab), []).append(index[v])
        if initial is not None:
            initial.append(data.get("initial", 0))
        for k, x in data.items():
            if k.startswith("reward:"):
                rewards.setdefault(k[len("reward:"):], [0] * n)[index[v]] = x
    use_exact = exact if exact is not None else any(
        not isinstance(x, float | int) for x in val
    )
    vals: Any
    if use_exact:
        vals = np.empty(len(val), dtype=object)
        vals[:] = val
    else:
        vals = np.asarray(val, dtype=np.float64)
    named = nodes != list(range(n))
    extra: dict[str, Any] = {}
    if named:
        extra = {"variables": ("node",), "valuations": [(str(v),) for v in nodes]}
    s_arr, d_arr = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    try:
        if kind == "ctmc":
            return CTMC.from_rates((n, s_arr, d_arr, vals), labels=labels, initial=initial,
                                   rewards=rewards, exact=use_exact, **extra)
        return DTMC(_Edges(n, s_arr, d_arr, vals), labels=labels, initial=initial,
                    rewards=rewards, exact=use_exact, **extra)
    except ChainError as exc:
        raise ModelFormatError(f"networkx graph: {exc}") from None
