"""Exact verification of a partition, and the exact repair step.

The compiled core hashes sums modulo a prime.  This module checks its answer
in exact integer arithmetic (Python ints where int64 could overflow) in one
pass over the edges: for every block ``C``, every block ``B`` and all nodes
``v`` of ``C`` the sums ``S(B, v) = sum_{u in B} w(u, v)`` must be equal
(plain) or positive multiples of each other with one factor per node
(proportional).  Where they are not, the offending blocks are split by the
exact signature of their nodes and refinement starts again.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = ["VerifyOutcome", "exact_block_sums", "verify_partition"]

_INT64_SAFE_PRODUCT = 2**31


@dataclass(frozen=True)
class VerifyOutcome:
    """Result of one exact verification pass."""

    ok: bool
    #: rho numerators / denominators per node (a_rep, a_v), proportional only
    rho_num: np.ndarray | None
    rho_den: np.ndarray | None
    #: refined initial labels when not ok
    new_labels: np.ndarray | None


def exact_block_sums(
    n: int, src: np.ndarray, dst: np.ndarray, ints: np.ndarray, block_of: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-zero exact sums ``S(B, v)`` as parallel arrays ``(B, v, S)``, sorted by ``(B, v)``.

    ``ints`` are integer edge weights (int64 or object array of Python ints).
    """
    if src.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, ints[:0]
    key = block_of[src] * np.int64(n) + dst
    order = np.argsort(key, kind="stable")
    ks = key[order]
    starts = np.flatnonzero(np.concatenate(([True], ks[1:] != ks[:-1])))
    sums = np.add.reduceat(ints[order], starts)
    ukey = ks[starts]
    nz = np.asarray(sums != 0, dtype=bool)
    ukey = ukey[nz]
    return ukey // n, ukey % n, sums[nz]


def verify_partition(
    n: int,
    src: np.ndarray,
    dst: np.ndarray,
    ints: np.ndarray,
    block_of: np.ndarray,
    proportional: bool,
) -> VerifyOutcome:
    """Check stability of ``block_of`` exactly; on failure return refined labels."""
    nb = int(block_of.max()) + 1 if n else 0
    sizes = np.bincount(block_of, minlength=nb)
    B, v, S = exact_block_sums(n, src, dst, ints, block_of)
    C = block_of[v]
    gkey = C * np.int64(max(nb, 1)) + B
    o = np.argsort(gkey, kind="stable")  # within a group: v ascending (input sorted by (B, v))
    B, v, S, C, gkey = B[o], v[o], S[o], C[o], gkey[o]
    m = gkey.shape[0]
    if m:
        gstart_mask = np.concatenate(([True], gkey[1:] != gkey[:-1]))
    else:
        gstart_mask = np.zeros(0, dtype=bool)
    gstarts = np.flatnonzero(gstart_mask)
    gcount = np.diff(np.concatenate((gstarts, [m])))
    gid = np.cumsum(gstart_mask) - 1  # group of every entry
    gC = C[gstarts]
    bad_group = gcount != sizes[gC]
    first_of = gstarts[gid]  # index of the group's first entry (the block's smallest node)

    rho_num = rho_den = None
    if not proportional:
        unequal = np.asarray(S != S[first_of], dtype=bool)
        if unequal.any():
            bad_group[gid[unequal]] = True
    else:
        # the block's first (smallest-B) group fixes each node's scale a_v
        cstart_mask = np.concatenate(([True], gC[1:] != gC[:-1])) if gstarts.size else gstart_mask
        cfirst_group = np.flatnonzero(cstart_mask)
        ckey = np.cumsum(cstart_mask) - 1  # per group: index into cfirst_group
        # a_v for every node: S(B*, v) from the first group of its block
        a_of_node = np.zeros(n, dtype=S.dtype) if S.dtype != object else np.zeros(n, dtype=object)
        has_scale = np.zeros(n, dtype=bool)
        for_first = gid == cfirst_group[ckey[gid]] if m else np.zeros(0, dtype=bool)
        a_of_node[v[for_first]] = S[for_first]
        has_scale[v[for_first]] = True
        a_v = a_of_node[v]
        rep_first_entry = gstarts[cfirst_group[ckey[gid]]]  # first entry of block's first group
        a_r = S[rep_first_entry]
        s_r = S[first_of]
        missing_scale = ~has_scale[v]
        if missing_scale.any():
            bad_group[gid[missing_scale]] = True
        big = False
        if S.dtype != object:
            big = bool(np.abs(S).max() >= _INT64_SAFE_PRODUCT) if m else False
        if S.dtype == object or big:
            lhs = S.astype(object) * a_r.astype(object)
            rhs = s_r.astype(object) * a_v.astype(object)
            sign_ok = np.asarray((a_v.astype(object) > 0) == (a_r.astype(object) > 0), dtype=bool)
        else:
            lhs = S * a_r
            rhs = s_r * a_v
            sign_ok = (a_v > 0) == (a_r > 0)
        wrong = np.asarray(lhs != rhs, dtype=bool) | ~sign_ok
        wrong &= ~missing_scale
        if wrong.any():
            bad_group[gid[wrong]] = True
        if not bad_group.any():
            # rho(v) = a_rep / a_v; nodes without entries: rho = 1
            num = np.ones(n, dtype=object)
            den = np.ones(n, dtype=object)
            # the representative's scale per block
            rep_scale = np.zeros(nb, dtype=object)
            rep_scale[C[rep_first_entry]] = a_r
            sel = has_scale
            num[sel] = rep_scale[block_of[sel]]
            den[sel] = a_of_node[sel]
            rho_num, rho_den = num, den

    if not bad_group.any():
        return VerifyOutcome(True, rho_num, rho_den, None)

    # ---- repair: split every failing block by its nodes' exact signatures
    bad_blocks = np.unique(gC[bad_group])
    in_bad = np.zeros(nb, dtype=bool)
    in_bad[bad_blocks] = True
    sel = np.flatnonzero(in_bad[C])
    sig: dict[int, list[tuple[int, int]]] = {}
    for k in sel.tolist():  # entries sorted by (C, B, v): signatures come out sorted by B
        sig.setdefault(int(v[k]), []).append((int(B[k]), int(S[k])))
    new_labels = block_of.astype(np.int64).copy()
    next_label = nb
    seen: dict[tuple[int, tuple[object, ...]], int] = {}
    for node in np.flatnonzero(in_bad[block_of]).tolist():
        entries = sig.get(node, [])
        if proportional and entries:
            scale = abs(entries[0][1])
            key: tuple[object, ...] = tuple((b, Fraction(s, scale)) for b, s in entries)
        else:
            key = tuple(entries)
        label_key = (int(block_of[node]), key)
        if label_key not in seen:
            seen[label_key] = next_label
            next_label += 1
        new_labels[node] = seen[label_key]
    return VerifyOutcome(False, None, None, new_labels)
