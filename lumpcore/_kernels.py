"""Compiled inner loops of the refinement engine (numba, cached on disk).

Everything here works on *residues modulo the Mersenne prime* ``P = 2**61 - 1``
of integer edge weights.  The map from integers to residues is a ring
homomorphism, so equal sums always get equal residues and the partition
computed here is never finer than the true coarsest one; the rare hash
collision (distinct sums with equal residues) can only merge too much, and is
caught and repaired by the exact verification in :mod:`lumpcore._verify`.

The refinement is the splitter-based algorithm of Valmari & Franceschinis:
a worklist of splitter blocks; processing a splitter ``B`` accumulates, for
every node ``v`` with an edge from ``B``, the residue of ``sum_{u in B} w(u, v)``
and splits every touched block by that key (untouched nodes have key 0).
When a block not on the worklist splits, every piece but the largest becomes a
splitter (stability with respect to the largest follows by subtraction), which
gives ``O(m log n)`` edge visits.  In proportional mode the key of ``v`` is the
sum divided by ``v``'s *scale*, the first non-zero sum ``v`` ever received; the
scale is a fixed linear functional (a union of current blocks), so keys stay
linear and the subtraction argument still holds.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

__all__ = [
    "MIX128",
    "P61",
    "csr_by_source",
    "csr_terms_float",
    "csr_terms_int",
    "decompose_floats",
    "first_seen_labels",
    "refine_exact128",
    "refine_modular",
    "residues_of_dyadic",
    "residues_of_int64",
    "verify_crt",
    "verify_i128_plain",
    "verify_int64",
]

#: The Mersenne prime 2**61 - 1 used for hashing sums.
P61 = (1 << 61) - 1

_P = np.uint64(P61)
_M31 = np.uint64((1 << 31) - 1)
_M30 = np.uint64((1 << 30) - 1)
_S31 = np.uint64(31)
_S30 = np.uint64(30)
_S61 = np.uint64(61)
_ONE = np.uint64(1)


@njit(cache=True)
def _addmod(a: np.uint64, b: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    s = a + b
    if s >= _P:
        s -= _P
    return s


@njit(cache=True)
def _mulmod(a: np.uint64, b: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    # a, b < 2**61.  Split into 30/31-bit halves; 2**61 = 1 (mod P).
    au = a >> _S31
    al = a & _M31
    bu = b >> _S31
    bl = b & _M31
    mid = al * bu + au * bl
    r = ((au * bu) << _ONE) + (mid >> _S30) + ((mid & _M30) << _S31) + al * bl
    r = (r & _P) + (r >> _S61)
    r = (r & _P) + (r >> _S61)
    if r >= _P:
        r -= _P
    return r


@njit(cache=True)
def _invmod(a: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    # Fermat: a**(P-2); a != 0.
    e = _P - np.uint64(2)
    result = _ONE
    base = a
    while e > 0:
        if e & _ONE:
            result = _mulmod(result, base)
        base = _mulmod(base, base)
        e >>= _ONE
    return result


@njit(cache=True)
def residues_of_int64(x: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Residues mod ``P61`` of an int64 array (negative values handled)."""
    out = np.empty(x.shape[0], dtype=np.uint64)
    p = np.int64(P61)
    for i in range(x.shape[0]):
        r = x[i] % p
        if r < 0:
            r += p
        out[i] = np.uint64(r)
    return out


@njit(cache=True, inline="always")
def source_indptr(n: int, src: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Row pointers of the edges grouped by source (``indptr[v]`` .. ``indptr[v+1]``)."""
    indptr = np.zeros(n + 1, dtype=np.int64)
    for e in range(src.shape[0]):
        indptr[src[e] + 1] += 1
    for v in range(n):
        indptr[v + 1] += indptr[v]
    return indptr


@njit(cache=True, inline="always")
def _largest_piece(piece_start: np.ndarray, piece_end: np.ndarray,
                   npieces: int) -> int:  # pragma: no cover - compiled
    """Index of the largest of the pieces a block splits into (the first on ties)."""
    largest = 0
    for q in range(1, npieces):
        if piece_end[q] - piece_start[q] > piece_end[largest] - piece_start[largest]:
            largest = q
    return largest


@njit(cache=True)
def refine_modular(  # pragma: no cover - compiled
    n: int,
    indptr: np.ndarray,
    targets: np.ndarray,
    values: np.ndarray,
    init_block: np.ndarray,
    num_init_blocks: int,
    proportional: bool,
) -> tuple[np.ndarray, int, int]:
    """Coarsest partition refining ``init_block`` stable for sums along edges.

    ``indptr/targets/values`` is a CSR matrix by *source*: processing a
    splitter ``B`` visits the edges leaving ``B`` and accumulates their values
    (uint64 residues) at the targets, i.e. it computes ``sum_{u in B} w(u, v)``.
    ``init_block`` holds block ids ``0 .. num_init_blocks-1``.

    Returns ``(block_of, splits, rounds)``.
    """
    # ---- partition data structure: nodes grouped by block in `elems`
    cap = n + 1
    bstart = np.zeros(cap, dtype=np.int64)
    bend = np.zeros(cap, dtype=np.int64)
    block_of = init_block.copy()
    counts = np.zeros(num_init_blocks + 1, dtype=np.int64)
    for v in range(n):
        counts[block_of[v] + 1] += 1
    for b in range(num_init_blocks):
        counts[b + 1] += counts[b]
    elems = np.empty(n, dtype=np.int64)
    pos = np.empty(n, dtype=np.int64)
    fill = counts[:num_init_blocks].copy()
    for v in range(n):
        b = block_of[v]
        elems[fill[b]] = v
        pos[v] = fill[b]
        fill[b] += 1
    for b in range(num_init_blocks):
        bstart[b] = counts[b]
        bend[b] = counts[b + 1]
    nblocks = num_init_blocks

    # ---- worklist: every initial block is a splitter
    work = np.empty(cap, dtype=np.int64)
    in_work = np.zeros(cap, dtype=np.bool_)
    wtop = 0
    for b in range(num_init_blocks):
        work[wtop] = b
        wtop += 1
        in_work[b] = True

    # ---- per-splitter scratch
    acc = np.zeros(n, dtype=np.uint64)
    mark = np.zeros(n, dtype=np.bool_)
    touched = np.empty(n, dtype=np.int64)
    keys = np.empty(n, dtype=np.uint64)
    tblock = np.empty(n, dtype=np.int64)
    inv_scale = np.zeros(n, dtype=np.uint64)  # 0 = no scale yet
    piece_start = np.empty(n + 1, dtype=np.int64)
    piece_end = np.empty(n + 1, dtype=np.int64)
    small_order = np.empty(32, dtype=np.int64)
    tcount = np.zeros(cap, dtype=np.int64)
    tfirst = np.zeros(cap, dtype=np.uint64)
    tsame = np.zeros(cap, dtype=np.bool_)
    tblocks = np.empty(n + 1, dtype=np.int64)

    splits = 0
    rounds = 0
    # (an id on the worklist is processed with its *current* members)
    while wtop > 0:
        wtop -= 1
        B = work[wtop]
        in_work[B] = False
        rounds += 1

        # 1. accumulate sums from the splitter
        nt = 0
        for i in range(bstart[B], bend[B]):
            u = elems[i]
            for e in range(indptr[u], indptr[u + 1]):
                v = targets[e]
                if not mark[v]:
                    mark[v] = True
                    acc[v] = values[e]
                    touched[nt] = v
                    nt += 1
                else:
                    acc[v] = _addmod(acc[v], values[e])
        if nt == 0:
            continue

        # 2. keys
        for k in range(nt):
            v = touched[k]
            a = acc[v]
            if proportional:
                if a != 0:
                    if inv_scale[v] == 0:
                        inv_scale[v] = _invmod(a)
                    a = _mulmod(a, inv_scale[v])
            keys[k] = a
            tblock[k] = block_of[v]
            mark[v] = False

        # 3. most touched blocks cannot split (one key on all their nodes):
        #    keep only the nodes of blocks that may split
        nblk = 0
        for k in range(nt):
            C = tblock[k]
            if tcount[C] == 0:
                tblocks[nblk] = C
                nblk += 1
                tfirst[C] = keys[k]
                tsame[C] = True
            elif keys[k] != tfirst[C]:
                tsame[C] = False
            tcount[C] += 1
        nsel = 0
        for k in range(nt):
            C = tblock[k]
            if (not tsame[C]) or (tcount[C] < bend[C] - bstart[C] and tfirst[C] != 0):
                touched[nsel] = touched[k]
                keys[nsel] = keys[k]
                tblock[nsel] = C
                nsel += 1
        for q in range(nblk):
            tcount[tblocks[q]] = 0
        nt = nsel
        if nt == 0:
            continue

        # 4. sort the remaining touched nodes by (block, key)
        if nt <= 32:
            order = small_order[:nt]
            for k in range(nt):
                order[k] = k
            for k in range(1, nt):
                x = order[k]
                bx = tblock[x]
                kx = keys[x]
                j = k - 1
                while j >= 0 and (
                    tblock[order[j]] > bx or (tblock[order[j]] == bx and keys[order[j]] > kx)
                ):
                    order[j + 1] = order[j]
                    j -= 1
                order[j + 1] = x
        else:
            order = np.argsort(keys[:nt], kind="mergesort")
            order = order[np.argsort(tblock[:nt][order], kind="mergesort")]

        k = 0
        while k < nt:
            C = tblock[order[k]]
            k2 = k
            while k2 < nt and tblock[order[k2]] == C:
                k2 += 1
            size_c = bend[C] - bstart[C]
            ntouched = k2 - k
            # count distinct non-zero keys among the touched nodes of C
            has_zero = ntouched < size_c
            ngroups_nz = 0
            prev = np.uint64(0)
            first = True
            for j in range(k, k2):
                kv = keys[order[j]]
                if kv == 0:
                    has_zero = True
                elif first or kv != prev:
                    ngroups_nz += 1
                    prev = kv
                    first = False
            ngroups = ngroups_nz + (1 if has_zero else 0)
            if ngroups > 1:
                # move each non-zero key group to the tail of C's range
                tail = bend[C]
                npieces = 0
                j = k
                while j < k2:
                    kv = keys[order[j]]
                    if kv == 0:
                        j += 1
                        continue
                    j2 = j
                    gend = tail
                    while j2 < k2 and keys[order[j2]] == kv:
                        v = touched[order[j2]]
                        tail -= 1
                        p = pos[v]
                        w = elems[tail]
                        elems[tail] = v
                        pos[v] = tail
                        elems[p] = w
                        pos[w] = p
                        j2 += 1
                    piece_start[npieces] = tail
                    piece_end[npieces] = gend
                    npieces += 1
                    j = j2
                if has_zero:
                    piece_start[npieces] = bstart[C]
                    piece_end[npieces] = tail
                    npieces += 1
                largest = _largest_piece(piece_start, piece_end, npieces)
                # the largest piece keeps the id C (its nodes are labelled C
                # already); the others get new ids, so relabelling costs only
                # the smaller pieces
                for q in range(npieces):
                    if q == largest:
                        bstart[C] = piece_start[q]
                        bend[C] = piece_end[q]
                        continue
                    bid = nblocks
                    nblocks += 1
                    splits += 1
                    bstart[bid] = piece_start[q]
                    bend[bid] = piece_end[q]
                    for i in range(piece_start[q], piece_end[q]):
                        block_of[elems[i]] = bid
                    in_work[bid] = True
                    work[wtop] = bid
                    wtop += 1
            k = k2
    return block_of, splits, rounds


_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


@njit(cache=True)
def _mul_abs128(a: np.uint64, b: np.uint64) -> tuple[np.uint64, np.uint64]:  # pragma: no cover
    # exact 128-bit product of two values < 2**63, as (hi, lo)
    a1 = a >> _S32
    a0 = a & _M32
    b1 = b >> _S32
    b0 = b & _M32
    p00 = a0 * b0
    p01 = a0 * b1
    p10 = a1 * b0
    p11 = a1 * b1
    mid = (p00 >> _S32) + (p01 & _M32) + (p10 & _M32)
    lo = (p00 & _M32) | ((mid & _M32) << _S32)
    hi = p11 + (p01 >> _S32) + (p10 >> _S32) + (mid >> _S32)
    return hi, lo


@njit(cache=True)
def _prod_eq(x: np.int64, y: np.int64, u: np.int64, v: np.int64) -> bool:  # pragma: no cover
    # exact test x*y == u*v for int64 values of magnitude < 2**62
    s1 = (x < 0) != (y < 0)
    s2 = (u < 0) != (v < 0)
    z1 = x == 0 or y == 0
    z2 = u == 0 or v == 0
    if z1 or z2:
        return z1 and z2
    if s1 != s2:
        return False
    h1, l1 = _mul_abs128(np.uint64(abs(x)), np.uint64(abs(y)))
    h2, l2 = _mul_abs128(np.uint64(abs(u)), np.uint64(abs(v)))
    return h1 == h2 and l1 == l2


@njit(cache=True)
def _block_members(  # pragma: no cover - compiled
    n: int, block_of: np.ndarray, nblocks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per block: size, representative (smallest node), and the nodes grouped
    contiguously (``elems[start[c]:start[c+1]]``), for the verification passes."""
    sizes = np.zeros(nblocks, dtype=np.int64)
    rep = np.full(nblocks, -1, dtype=np.int64)
    for v in range(n):
        c = block_of[v]
        sizes[c] += 1
        if rep[c] < 0:
            rep[c] = v
    start = np.zeros(nblocks + 1, dtype=np.int64)
    for c in range(nblocks):
        start[c + 1] = start[c] + sizes[c]
    fill = start[:nblocks].copy()
    elems = np.empty(n, dtype=np.int64)
    for v in range(n):
        c = block_of[v]
        elems[fill[c]] = v
        fill[c] += 1
    return sizes, rep, start, elems


@njit(cache=True)
def verify_int64(  # pragma: no cover - compiled
    n: int,
    indptr: np.ndarray,
    targets: np.ndarray,
    ints: np.ndarray,
    block_of: np.ndarray,
    nblocks: int,
    proportional: bool,
) -> tuple[bool, bool, np.ndarray, np.ndarray, np.ndarray]:
    """Exact stability check in int64 arithmetic (sums must fit: caller ensures it).

    Every block is used as a splitter once, so the pass is linear in the
    edges.  Returns ``(ok, collision, scale, rep_scale, sign)`` where, in
    proportional mode, ``rho[v] = rep_scale[v] / scale[v]`` (both 1 for
    all-zero nodes) and ``sign`` is the sign of each node's scale.  ``ok`` is
    false with ``collision`` false when the only defect is that some block
    mixes scales of both signs (the hashed core cannot see signs).
    """
    sizes, rep, start, elems = _block_members(n, block_of, nblocks)

    acc = np.zeros(n, dtype=np.int64)
    mark = np.zeros(n, dtype=np.bool_)
    touched = np.empty(n, dtype=np.int64)
    cnt = np.zeros(nblocks, dtype=np.int64)
    scale = np.zeros(n, dtype=np.int64)
    scale_from = np.full(n, -1, dtype=np.int64)
    ok = True
    collision = False
    for B in range(nblocks):
        nt = 0
        for i in range(start[B], start[B + 1]):
            u = elems[i]
            for e in range(indptr[u], indptr[u + 1]):
                v = targets[e]
                if not mark[v]:
                    mark[v] = True
                    acc[v] = 0
                    touched[nt] = v
                    nt += 1
                acc[v] += ints[e]
        # drop zero sums: a touched node with sum 0 counts as untouched
        for k in range(nt):
            v = touched[k]
            if acc[v] != 0:
                cnt[block_of[v]] += 1
                if proportional and scale_from[v] < 0:
                    scale[v] = acc[v]
                    scale_from[v] = B
        for k in range(nt):
            v = touched[k]
            c = block_of[v]
            r = rep[c]
            if acc[v] != 0 and cnt[c] != sizes[c]:
                ok = False
                collision = True
            elif acc[v] != 0:
                ar = acc[r]  # r has a non-zero entry too (cnt == size)
                if not proportional:
                    if acc[v] != ar:
                        ok = False
                        collision = True
                else:
                    if scale_from[v] != scale_from[r]:
                        ok = False
                        collision = True
                    elif (scale[v] > 0) != (scale[r] > 0):
                        ok = False  # the hashed core cannot see signs: split by sign
                    elif not _prod_eq(acc[v], scale[r], ar, scale[v]):
                        ok = False
                        collision = True
        for k in range(nt):
            v = touched[k]
            mark[v] = False
            cnt[block_of[v]] = 0
        if collision:
            break
    rep_scale = np.ones(n, dtype=np.int64)
    if proportional:
        for v in range(n):
            if scale_from[v] < 0:
                scale[v] = 1
            else:
                rep_scale[v] = scale[rep[block_of[v]]]
    sign = np.sign(scale)
    return ok, collision, scale, rep_scale, sign


@njit(cache=True)
def csr_by_source(  # pragma: no cover - compiled
    n: int, src: np.ndarray, dst: np.ndarray, res: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Counting sort of the edges by source: ``(indptr, targets, residues, perm)``.

    Stable, so the order of edges with one source is their input order;
    ``perm[p]`` is the input index of the edge stored at position ``p``.
    """
    m = src.shape[0]
    indptr = source_indptr(n, src)
    fill = indptr[:n].copy()
    targets = np.empty(m, dtype=np.int64)
    values = np.empty(m, dtype=np.uint64)
    perm = np.empty(m, dtype=np.int64)
    for e in range(m):
        p = fill[src[e]]
        fill[src[e]] = p + 1
        targets[p] = dst[e]
        values[p] = res[e]
        perm[p] = e
    return indptr, targets, values, perm


@njit(cache=True)
def residues_of_dyadic(  # pragma: no cover - compiled
    mant: np.ndarray, shift: np.ndarray
) -> np.ndarray:
    """Residues mod ``P61`` of ``mant * 2**shift`` (``shift >= 0``) without big integers.

    ``2**61 = 1 (mod P61)``, so ``2**shift = 2**(shift mod 61)``.
    """
    out = np.empty(mant.shape[0], dtype=np.uint64)
    p = np.int64(P61)
    for i in range(mant.shape[0]):
        r = mant[i] % p
        if r < 0:
            r += p
        out[i] = _mulmod(np.uint64(r), np.uint64(1) << np.uint64(shift[i] % 61))
    return out


@njit(cache=True)
def _sign_mixed_radix(  # pragma: no cover - compiled
    res: np.ndarray, primes: np.ndarray, cinv: np.ndarray, half_digits: np.ndarray,
    digits: np.ndarray,
) -> int:
    """Sign (-1, 0, 1) of the integer with residues ``res`` in ``(-M/2, M/2)``.

    Mixed-radix digits ``d`` give ``X = d0 + d1 p0 + d2 p0 p1 + ...`` in
    ``[0, M)``; ``X`` is negative in the symmetric range iff ``X > (M-1)/2``,
    decided by comparing digits with those of ``(M-1)/2`` from the top.
    """
    k = primes.shape[0]
    zero = True
    for i in range(k):
        if res[i] != 0:
            zero = False
            break
    if zero:
        return 0
    for i in range(k):
        p = primes[i]
        x = res[i]
        for j in range(i):
            x = ((x - digits[j]) % p) * cinv[j, i] % p
        digits[i] = x
    for i in range(k - 1, -1, -1):
        if digits[i] > half_digits[i]:
            return -1
        if digits[i] < half_digits[i]:
            return 1
    return 1


@njit(cache=True)
def verify_crt(  # pragma: no cover - compiled
    n: int,
    indptr: np.ndarray,
    targets: np.ndarray,
    mant: np.ndarray,
    shift: np.ndarray,
    block_of: np.ndarray,
    nblocks: int,
    proportional: bool,
    primes: np.ndarray,
    pow2: np.ndarray,
    cinv: np.ndarray,
    half_digits: np.ndarray,
) -> tuple[bool, bool, np.ndarray, np.ndarray, np.ndarray]:
    """Exact stability check for dyadic weights ``mant * 2**shift`` by residues.

    The caller chooses the primes so that their product exceeds twice the
    largest possible magnitude of every compared quantity (sums, and in
    proportional mode products of two sums); then equal residues modulo all
    primes mean equal integers (Chinese remainder theorem), and signs come
    from the mixed-radix representation.  Same structure as
    :func:`verify_int64`.  Returns ``(ok, collision, scale_res, rep_scale_res,
    sign)``: the residues of each node's scale and of its block
    representative's scale, and the sign of each node's scale.
    """
    k = primes.shape[0]
    sizes, rep, start, elems = _block_members(n, block_of, nblocks)

    acc = np.zeros((n, k), dtype=np.int64)
    nonzero = np.zeros(n, dtype=np.bool_)
    mark = np.zeros(n, dtype=np.bool_)
    touched = np.empty(n, dtype=np.int64)
    cnt = np.zeros(nblocks, dtype=np.int64)
    scale = np.zeros((n, k), dtype=np.int64)
    scale_sign = np.zeros(n, dtype=np.int64)
    scale_from = np.full(n, -1, dtype=np.int64)
    digits = np.empty(k, dtype=np.int64)
    ok = True
    collision = False
    for B in range(nblocks):
        nt = 0
        for i in range(start[B], start[B + 1]):
            u = elems[i]
            for e in range(indptr[u], indptr[u + 1]):
                v = targets[e]
                if not mark[v]:
                    mark[v] = True
                    for j in range(k):
                        acc[v, j] = 0
                    touched[nt] = v
                    nt += 1
                s = shift[e]
                mv = mant[e]
                for j in range(k):
                    p = primes[j]
                    r = mv % p
                    if r < 0:
                        r += p
                    acc[v, j] = (acc[v, j] + r * pow2[j, s]) % p
        for t in range(nt):
            v = touched[t]
            nz = False
            for j in range(k):
                if acc[v, j] != 0:
                    nz = True
                    break
            nonzero[v] = nz
            if nz:
                cnt[block_of[v]] += 1
                if proportional and scale_from[v] < 0:
                    for j in range(k):
                        scale[v, j] = acc[v, j]
                    scale_from[v] = B
                    scale_sign[v] = _sign_mixed_radix(
                        acc[v], primes, cinv, half_digits, digits
                    )
        for t in range(nt):
            v = touched[t]
            if not nonzero[v]:
                continue
            c = block_of[v]
            r = rep[c]
            if cnt[c] != sizes[c]:
                ok = False
                collision = True
                continue
            if not proportional:
                for j in range(k):
                    if acc[v, j] != acc[r, j]:
                        ok = False
                        collision = True
                        break
            else:
                if scale_from[v] != scale_from[r]:
                    ok = False
                    collision = True
                    continue
                if scale_sign[v] != scale_sign[r]:
                    ok = False  # the hashed core cannot see signs: split by sign
                    continue
                for j in range(k):
                    p = primes[j]
                    if (acc[v, j] * scale[r, j]) % p != (acc[r, j] * scale[v, j]) % p:
                        ok = False
                        collision = True
                        break
        for t in range(nt):
            v = touched[t]
            mark[v] = False
            nonzero[v] = False
            cnt[block_of[v]] = 0
        if collision:
            break
    rep_scale = np.zeros((n, k), dtype=np.int64)
    if proportional:
        for v in range(n):
            if scale_from[v] < 0:
                for j in range(k):
                    scale[v, j] = 1
                    rep_scale[v, j] = 1
            else:
                r = rep[block_of[v]]
                for j in range(k):
                    rep_scale[v, j] = scale[r, j]
    return ok, collision, scale, rep_scale, scale_sign


_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_S64 = np.uint64(64)


@njit(cache=True)
def verify_i128_plain(  # pragma: no cover - compiled
    n: int,
    indptr: np.ndarray,
    targets: np.ndarray,
    mant: np.ndarray,
    shift: np.ndarray,
    block_of: np.ndarray,
    nblocks: int,
) -> bool:
    """Exact stability check (plain mode) for dyadic weights with 128-bit sums.

    Each weight is ``mant * 2**shift`` with ``|mant| < 2**53``; the caller
    guarantees that every sum of absolute values is below ``2**126``, so
    two's-complement 128-bit accumulation (two uint64 limbs) is exact.
    """
    sizes, rep, start, elems = _block_members(n, block_of, nblocks)

    hi = np.zeros(n, dtype=np.uint64)
    lo = np.zeros(n, dtype=np.uint64)
    mark = np.zeros(n, dtype=np.bool_)
    touched = np.empty(n, dtype=np.int64)
    cnt = np.zeros(nblocks, dtype=np.int64)
    zero = np.uint64(0)
    one = np.uint64(1)
    for B in range(nblocks):
        nt = 0
        for i in range(start[B], start[B + 1]):
            u = elems[i]
            for e in range(indptr[u], indptr[u + 1]):
                v = targets[e]
                if not mark[v]:
                    mark[v] = True
                    hi[v] = zero
                    lo[v] = zero
                    touched[nt] = v
                    nt += 1
                m = mant[e]
                a = np.uint64(-m) if m < 0 else np.uint64(m)
                s = np.uint64(shift[e])
                if s == 0:
                    tlo = a
                    thi = zero
                elif s < _S64:
                    tlo = a << s
                    thi = a >> (_S64 - s)
                else:
                    tlo = zero
                    thi = a << (s - _S64)
                if m < 0:
                    tlo = (tlo ^ _M64) + one
                    thi = thi ^ _M64
                    if tlo == zero:
                        thi = thi + one
                nlo = lo[v] + tlo
                carry = one if nlo < tlo else zero
                hi[v] = hi[v] + thi + carry
                lo[v] = nlo
        for t in range(nt):
            v = touched[t]
            if hi[v] != zero or lo[v] != zero:
                cnt[block_of[v]] += 1
        ok = True
        for t in range(nt):
            v = touched[t]
            if hi[v] == zero and lo[v] == zero:
                continue
            c = block_of[v]
            r = rep[c]
            if cnt[c] != sizes[c] or hi[v] != hi[r] or lo[v] != lo[r]:
                ok = False
                break
        for t in range(nt):
            v = touched[t]
            mark[v] = False
            cnt[block_of[v]] = 0
        if not ok:
            return False
    return True


@njit(cache=True)
def decompose_floats(  # pragma: no cover - compiled
    w: np.ndarray, dst: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, int, int, float, int]:
    """Exact dyadic form of float64 weights: ``w[i] = mant[i] * 2**(shift[i] + emin)``.

    Mantissas are odd (trailing zero bits moved into the exponent), so nice
    numbers stay small.  Returns ``(mant, shift, emin, max_term_bits,
    max_abs_in_sum, max_in_degree)`` where ``max_term_bits`` bounds the bit
    length of every ``|mant| << shift`` and the last two describe the largest
    sum of absolute weights into one node and the largest number of non-zero
    weights into one node.
    """
    m = w.shape[0]
    mant = np.zeros(m, dtype=np.int64)
    expo = np.zeros(m, dtype=np.int64)
    big = 1 << 40
    emin = big
    for i in range(m):
        x = w[i]
        if x == 0.0:
            continue
        fm, fe = math.frexp(x)
        mm = np.int64(fm * 9007199254740992.0)  # 2**53, exact
        e = fe - 53
        # trailing zero bits: the lowest set bit is a power of two, exact in float
        tz = math.frexp(float(mm & -mm))[1] - 1
        mm >>= tz
        e += tz
        mant[i] = mm
        expo[i] = e
        if e < emin:
            emin = e
    absin = np.zeros(n, dtype=np.float64)
    deg = np.zeros(n, dtype=np.int64)
    max_bits = 0
    for i in range(m):
        if mant[i] == 0:
            continue
        s = expo[i] - emin
        expo[i] = s
        a = mant[i] if mant[i] > 0 else -mant[i]
        b = math.frexp(float(a))[1]  # bit length (a < 2**53 is exact in float)
        if b + s > max_bits:
            max_bits = b + s
        d = dst[i]
        absin[d] += abs(w[i])
        deg[d] += 1
    absmax = 0.0
    degmax = 0
    for v in range(n):
        if absin[v] > absmax:
            absmax = absin[v]
        if deg[v] > degmax:
            degmax = deg[v]
    if emin == big:
        emin = 0
    return mant, expo, emin, max_bits, absmax, degmax


@njit(cache=True)
def first_seen_labels(labels: np.ndarray, bound: int) -> np.ndarray:  # pragma: no cover
    """Renumber non-negative labels below ``bound`` as 0, 1, ... by first occurrence."""
    newid = np.full(bound, -1, dtype=np.int64)
    out = np.empty(labels.shape[0], dtype=np.int64)
    nxt = 0
    for i in range(labels.shape[0]):
        x = labels[i]
        if newid[x] < 0:
            newid[x] = nxt
            nxt += 1
        out[i] = newid[x]
    return out


# ------------------------------------------------------------------------------------
# Plain mode with exact 128-bit keys: no hashing modulo P61, no verification pass.
#
# Every weight is an integer (in units of a common power of two) whose 128-bit
# two's-complement form is stored per edge; the caller guarantees that every
# sum of absolute weights into one node is below 2**125, so every block sum is
# exact in 128 bits.  The refinement groups nodes by these exact sums (a 64-bit
# mix of the two limbs only orders them; equal mixes are checked limb by limb),
# so each split is the exact one and the result is the exact coarsest stable
# partition.  Should two different sums ever share a mix, the kernel says so
# and the caller falls back to the hashed refinement with exact verification.

#: Odd multiplier mixing the high limb into the ordering key.
MIX128 = 0x9E3779B97F4A7C15
_ALONE = np.uint64(1) << np.uint64(63)  # flag on a node's block id: the block is a singleton


@njit(cache=True)
def _term128(mant: np.int64, s: np.int64) -> tuple[np.uint64, np.uint64]:  # pragma: no cover
    # two's-complement 128-bit form (hi, lo) of mant * 2**s, |mant| < 2**63, s + bits < 127
    zero = np.uint64(0)
    a = np.uint64(-mant) if mant < 0 else np.uint64(mant)
    su = np.uint64(s)
    if s == 0:
        tlo = a
        thi = zero
    elif s < 64:
        tlo = a << su
        thi = a >> (_S64 - su)
    else:
        tlo = zero
        thi = a << (su - _S64)
    if mant < 0:
        tlo = (tlo ^ _M64) + _ONE
        thi = thi ^ _M64
        if tlo == zero:
            thi = thi + _ONE
    return thi, tlo


@njit(cache=True)
def _split_float(b: np.int64) -> tuple[np.int64, np.int64]:  # pragma: no cover - compiled
    # float64 with bits b (not +-0): odd signed mantissa and exponent, x = mant * 2**ex
    ebits = (b >> 52) & 0x7FF
    mm = b & 0xFFFFFFFFFFFFF
    ex = np.int64(-1074)
    if ebits != 0:
        mm |= np.int64(1) << 52
        ex = ebits - 1075
    tz = np.int64(trailing_zeros(mm))  # type: ignore[call-arg]
    mm >>= tz
    ex += tz
    if b < 0:
        mm = -mm
    return mm, ex


@njit(cache=True)
def csr_terms_float(  # pragma: no cover - compiled
    n: int, src: np.ndarray, dst: np.ndarray, wbits: np.ndarray, edges: np.ndarray,
    total: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Exact float64 weights as 128-bit integer terms in a CSR matrix by source.

    ``wbits`` are the weights' bits (``w.view(np.int64)``).  The caller
    allocates the large outputs with numpy (which puts them on huge pages;
    numba's own allocations fault page by page, which costs as much as the
    pass): ``edges`` uint64 of shape ``(len(wbits), 3)``, ``total`` zero
    uint64 of shape ``(n, 2)``.  Each weight is
    ``w[e] = mant * 2**(shift + emin)`` with ``emin`` the smallest exponent of
    a non-zero weight; the term of edge ``e`` is ``mant * 2**shift``.  Zero
    weights are dropped.  Returns ``(indptr, edges, total, bits)``: ``edges[p]
    = (target, hi, lo)`` (one record per stored edge, the term's two
    two's-complement limbs), ``total[v] = (hi, lo)`` the exact sum of the
    terms into ``v``, and ``bits`` a bound (log2) on every sum of absolute
    terms into one node; terms and totals are meaningful only when
    ``bits < 125`` (the caller checks).  One pass finds the exponent range,
    one scatters (stable counting sort by source) and sums the totals (in
    input order: sequential when the input is sorted by target, as a chain's
    rate matrix read backwards is).
    """
    m = wbits.shape[0]
    w = wbits.view(np.float64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    absin = np.zeros(n, dtype=np.float64)
    big = np.int64(1) << 40
    emin = big
    kept = 0
    for e in range(m):
        b = wbits[e]
        if (b << 1) == 0:
            continue
        mm, ex = _split_float(b)
        if ex < emin:
            emin = ex
        indptr[src[e] + 1] += 1
        absin[dst[e]] += abs(w[e])
        kept += 1
    for v in range(n):
        indptr[v + 1] += indptr[v]
    absmax = 0.0
    for v in range(n):
        if absin[v] > absmax:
            absmax = absin[v]
    if emin == big:
        emin = np.int64(0)
    bits = 1.0
    if absmax > 0:
        bits = math.log2(absmax) - emin + 2.0
    edges = edges[:kept]
    if bits >= 125.0:
        return indptr, edges, total, bits
    fill = indptr[:n].copy()
    for e in range(m):
        b = wbits[e]
        if (b << 1) == 0:
            continue
        mm, ex = _split_float(b)
        s = src[e]
        p = fill[s]
        fill[s] = p + 1
        d = dst[e]
        th, tl = _term128(mm, ex - emin)
        edges[p, 0] = np.uint64(d)
        edges[p, 1] = th
        edges[p, 2] = tl
        nlo = total[d, 1] + tl
        total[d, 0] = total[d, 0] + th + np.uint64(nlo < tl)
        total[d, 1] = nlo
    return indptr, edges, total, bits


@njit(cache=True)
def csr_terms_int(  # pragma: no cover - compiled
    n: int, src: np.ndarray, dst: np.ndarray, w: np.ndarray, edges: np.ndarray,
    total: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """:func:`csr_terms_float` for int64 weights (the terms are the weights)."""
    m = w.shape[0]
    indptr = np.zeros(n + 1, dtype=np.int64)
    absin = np.zeros(n, dtype=np.float64)
    kept = 0
    for e in range(m):
        if w[e] != 0:
            indptr[src[e] + 1] += 1
            absin[dst[e]] += abs(float(w[e]))
            kept += 1
    for v in range(n):
        indptr[v + 1] += indptr[v]
    absmax = 0.0
    for v in range(n):
        if absin[v] > absmax:
            absmax = absin[v]
    bits = math.log2(absmax) + 2.0 if absmax > 0 else 1.0
    edges = edges[:kept]
    fill = indptr[:n].copy()
    for e in range(m):
        x = w[e]
        if x == 0:
            continue
        s = src[e]
        p = fill[s]
        fill[s] = p + 1
        d = dst[e]
        th, tl = _term128(x, np.int64(0))
        edges[p, 0] = np.uint64(d)
        edges[p, 1] = th
        edges[p, 2] = tl
        nlo = total[d, 1] + tl
        total[d, 0] = total[d, 0] + th + np.uint64(nlo < tl)
        total[d, 1] = nlo
    return indptr, edges, total, bits


@njit(cache=True)
def _group_equal_keys(  # pragma: no cover - compiled
    order: np.ndarray, a: int, b: int, keys: np.ndarray, gid: np.ndarray, gcount: np.ndarray,
    gfirst: np.ndarray, tmp: np.ndarray,
) -> None:
    """Reorder ``order[a:b]`` so that entries with equal ``keys[order[.]]`` are
    contiguous (groups in order of first appearance): an open-addressing hash
    table of the distinct keys (grown as needed), then a counting sort.
    ``gid, gcount, gfirst, tmp`` are scratch of length at least ``b - a + 1``."""
    size = 1024
    tk = np.empty(size, dtype=np.uint64)
    tg = np.full(size, -1, dtype=np.int64)
    ng = 0
    for t in range(a, b):
        x = keys[order[t]]
        if 2 * (ng + 1) > size:  # grow and re-insert the distinct keys
            size *= 4
            tk = np.empty(size, dtype=np.uint64)
            tg = np.full(size, -1, dtype=np.int64)
            for g in range(ng):
                y = keys[order[gfirst[g]]]
                h = np.int64((y * np.uint64(MIX128)) >> np.uint64(20)) & (size - 1)
                while tg[h] >= 0:
                    h = (h + 1) & (size - 1)
                tk[h] = y
                tg[h] = g
        h = np.int64((x * np.uint64(MIX128)) >> np.uint64(20)) & (size - 1)
        while tg[h] >= 0 and tk[h] != x:
            h = (h + 1) & (size - 1)
        if tg[h] < 0:
            tk[h] = x
            tg[h] = ng
            gfirst[ng] = t
            gcount[ng] = 0
            ng += 1
        g = tg[h]
        gid[t - a] = g
        gcount[g] += 1
    acc = 0
    for g in range(ng):
        c = gcount[g]
        gcount[g] = acc
        acc += c
    for t in range(a, b):
        g = gid[t - a]
        tmp[gcount[g]] = order[t]
        gcount[g] += 1
    for t in range(b - a):
        order[a + t] = tmp[t]


@njit(cache=True)
def refine_exact128(  # pragma: no cover - compiled
    n: int,
    indptr: np.ndarray,
    edges: np.ndarray,
    total: np.ndarray,
    init_block: np.ndarray,
    num_init_blocks: int,
    mix: np.uint64,
    ws: np.ndarray,
    uws: np.ndarray,
    binfo: np.ndarray,
    row: np.ndarray,
    elems: np.ndarray,
) -> tuple[np.ndarray, int, int, bool]:
    """Coarsest stable partition (plain mode) with exact 128-bit sums as keys.

    Same splitter algorithm as :func:`refine_modular`; the key of a node is
    its exact sum ``sum_{u in B} w(u, v)`` as two uint64 limbs (``edges`` and
    ``total`` as returned by :func:`csr_terms_float`).  Nodes are
    ordered by ``lo + mix * hi`` (mod 2**64) within their block and every
    group of equal order keys is checked to have equal limbs.

    The first splitter is the set of all nodes, whose sums are the given
    ``total`` (no edge visits); the worklist then holds every initial block
    but the largest.  This is sound by the subtraction argument: stability
    with respect to all nodes and to every other block gives stability with
    respect to the largest one.

    The work arrays come from the caller, allocated by numpy (on huge pages;
    numba's own allocations fault page by page, which costs a good part of
    the refinement): ``ws`` int64 of shape ``(17, n + 2)``, ``uws`` uint64
    of shape ``(3, n + 1)``, ``binfo`` zero int64 of shape ``(n + 1, 8)``,
    ``row`` zero uint64 of shape ``(n, 4)`` and ``elems`` int64 of shape
    ``(n, 3)`` (the nodes grouped by block, each with its range of edges, so
    that a splitter's edges are found without a lookup in ``indptr``).
    ``block_of`` is a view of ``ws``.

    Returns ``(block_of, splits, rounds, ok)``; ``ok`` is false only if two
    different sums had the same order key (the partition is then not to be
    used).
    """
    # per block, side by side (one cache line per block looked up): range in
    # `elems`, and the scratch of one splitter round (touched count, first key,
    # whether all keys equal it, slot), and whether the block is on the worklist
    bstart = binfo[:, 0]
    bend = binfo[:, 1]
    tcount = binfo[:, 2]
    tfhi = binfo[:, 3]  # (the limbs' bits as int64)
    tflo = binfo[:, 4]
    tsame = binfo[:, 5]
    tslot = binfo[:, 6]
    in_work = binfo[:, 7]
    tslot[:] = -1
    block_of = ws[0, :n]
    block_of[:] = init_block
    counts = np.zeros(num_init_blocks + 1, dtype=np.int64)
    for v in range(n):
        counts[block_of[v] + 1] += 1
    for b in range(num_init_blocks):
        counts[b + 1] += counts[b]
    pos = ws[2, :n]
    fill = counts[:num_init_blocks].copy()
    for v in range(n):
        b = block_of[v]
        elems[fill[b], 0] = v
        elems[fill[b], 1] = indptr[v]
        elems[fill[b], 2] = indptr[v + 1]
        pos[v] = fill[b]
        fill[b] += 1
    for b in range(num_init_blocks):
        bstart[b] = counts[b]
        bend[b] = counts[b + 1]
    nblocks = num_init_blocks

    work = ws[3]
    wtop = 0
    largest0 = 0
    for b in range(num_init_blocks):
        if counts[b + 1] - counts[b] > counts[largest0 + 1] - counts[largest0]:
            largest0 = b
    for b in range(num_init_blocks):
        if b != largest0:
            work[wtop] = b
            wtop += 1
            in_work[b] = 1

    zero = np.uint64(0)
    # per node, side by side (one cache line per visited edge): the sum (hi, lo),
    # the round that last touched the node, and the node's block (with the flag
    # _ALONE while that block is a singleton)
    for v in range(n):
        b = block_of[v]
        row[v, 3] = np.uint64(b) | (_ALONE if counts[b + 1] - counts[b] == 1 else zero)
    touched = ws[4]
    tblock = ws[5]
    order = ws[6]
    piece_start = ws[7]
    piece_end = ws[8]
    tblocks = ws[9]
    sstart = ws[10]
    sfill = ws[11]
    sblock = ws[12]
    khi = uws[0]
    klo = uws[1]
    keys = uws[2]

    splits = 0
    rounds = 0
    first = n > 0
    while first or wtop > 0:
        rounds += 1
        stamp = np.uint64(rounds)
        nt = 0
        if first:  # the splitter of all nodes: the sums are the totals
            first = False
            for v in range(n):
                if total[v, 0] != zero or total[v, 1] != zero:
                    row[v, 0] = total[v, 0]
                    row[v, 1] = total[v, 1]
                    touched[nt] = v
                    nt += 1
            B = -1
        else:
            wtop -= 1
            B = work[wtop]
            in_work[B] = 0

        # 1. exact sums from the splitter (128-bit two's complement)
        for i in range(bstart[B] if B >= 0 else 0, bend[B] if B >= 0 else 0):
            for e in range(elems[i, 1], elems[i, 2]):
                v = int(edges[e, 0])
                th = edges[e, 1]
                tl = edges[e, 2]
                # branch-free (no branch waits for the cache miss on row[v]):
                # the sums are zero between rounds; a node is listed once
                touched[nt] = v
                nt += int(row[v, 2] != stamp)
                row[v, 2] = stamp
                nlo = row[v, 1] + tl
                row[v, 0] = row[v, 0] + th + np.uint64(nlo < tl)
                row[v, 1] = nlo
        if nt == 0:
            continue

        # 2. keys; 3. drop the blocks that cannot split (one exact key on all nodes)
        #    (singleton blocks cannot split: their nodes are dropped at once,
        #    without looking up the block)
        nblk = 0
        nkeep = 0
        for k0 in range(nt):
            v = touched[k0]
            h = row[v, 0]
            lw = row[v, 1]
            row[v, 0] = zero
            row[v, 1] = zero
            bv = row[v, 3]
            if bv & _ALONE:
                continue
            k = nkeep
            nkeep += 1
            touched[k] = v
            khi[k] = h
            klo[k] = lw
            C = np.int64(bv)
            tblock[k] = C
            hs = np.int64(h)
            ls = np.int64(lw)
            if tcount[C] == 0:
                tblocks[nblk] = C
                nblk += 1
                tfhi[C] = hs
                tflo[C] = ls
                tsame[C] = 1
            elif hs != tfhi[C] or ls != tflo[C]:
                tsame[C] = 0
            tcount[C] += 1
        nt = nkeep
        nsel = 0
        nslot = 0
        for k in range(nt):
            C = tblock[k]
            if tsame[C] == 0 or (
                tcount[C] < bend[C] - bstart[C] and (tfhi[C] != 0 or tflo[C] != 0)
            ):
                touched[nsel] = touched[k]
                khi[nsel] = khi[k]
                klo[nsel] = klo[k]
                keys[nsel] = klo[k] + mix * khi[k]
                tblock[nsel] = C
                if tslot[C] < 0:
                    tslot[C] = nslot
                    sfill[nslot] = 0
                    sblock[nslot] = C
                    nslot += 1
                sfill[tslot[C]] += 1
                nsel += 1
        for q in range(nblk):
            tcount[tblocks[q]] = 0
        nt = nsel
        if nt == 0:
            continue
        # 4. group the remaining nodes by block (counting sort), then order each
        #    block's nodes by key
        sstart[0] = 0
        for q in range(nslot):
            sstart[q + 1] = sstart[q] + sfill[q]
            sfill[q] = sstart[q]
        for k in range(nt):
            q = tslot[tblock[k]]
            order[sfill[q]] = k
            sfill[q] += 1
        for q in range(nslot):
            a = sstart[q]
            b = sstart[q + 1]
            if b - a <= 16:
                for k in range(a + 1, b):
                    x = order[k]
                    kx = keys[x]
                    j = k - 1
                    while j >= a and keys[order[j]] > kx:
                        order[j + 1] = order[j]
                        j -= 1
                    order[j + 1] = x
            elif b - a <= 256:
                seg = order[a:b].copy()
                idx = np.argsort(keys[seg])
                for j in range(b - a):
                    order[a + j] = seg[idx[j]]
            else:  # equal keys only need to be contiguous: group by hashing
                _group_equal_keys(order, a, b, keys, ws[13], ws[14], ws[15], ws[16])

        for q in range(nslot):
            C = sblock[q]
            tslot[C] = -1
            k = sstart[q]
            k2 = sstart[q + 1]
            size_c = bend[C] - bstart[C]
            # exact check of the key groups; count the groups
            has_zero = (k2 - k) < size_c
            ngroups_nz = 0
            j = k
            while j < k2:
                x0 = order[j]
                kv = keys[x0]
                h0 = khi[x0]
                l0 = klo[x0]
                j2 = j + 1
                while j2 < k2 and keys[order[j2]] == kv:
                    x = order[j2]
                    if khi[x] != h0 or klo[x] != l0:
                        return block_of, splits, rounds, False
                    j2 += 1
                if h0 == zero and l0 == zero:
                    has_zero = True
                elif kv == zero:
                    return block_of, splits, rounds, False  # a non-zero sum keyed as 0
                else:
                    ngroups_nz += 1
                j = j2
            ngroups = ngroups_nz + (1 if has_zero else 0)
            if ngroups > 1:
                tail = bend[C]
                npieces = 0
                j = k
                while j < k2:
                    kv = keys[order[j]]
                    if kv == zero:
                        j += 1
                        continue
                    j2 = j
                    gend = tail
                    while j2 < k2 and keys[order[j2]] == kv:
                        v = touched[order[j2]]
                        tail -= 1
                        p = pos[v]
                        wv = elems[tail, 0]
                        w1 = elems[tail, 1]
                        w2 = elems[tail, 2]
                        elems[tail, 0] = v
                        elems[tail, 1] = elems[p, 1]
                        elems[tail, 2] = elems[p, 2]
                        pos[v] = tail
                        elems[p, 0] = wv
                        elems[p, 1] = w1
                        elems[p, 2] = w2
                        pos[wv] = p
                        j2 += 1
                    piece_start[npieces] = tail
                    piece_end[npieces] = gend
                    npieces += 1
                    j = j2
                if has_zero:
                    piece_start[npieces] = bstart[C]
                    piece_end[npieces] = tail
                    npieces += 1
                largest = _largest_piece(piece_start, piece_end, npieces)
                for q2 in range(npieces):
                    if q2 == largest:
                        bstart[C] = piece_start[q2]
                        bend[C] = piece_end[q2]
                        if piece_end[q2] - piece_start[q2] == 1:
                            row[elems[piece_start[q2], 0], 3] = np.uint64(C) | _ALONE
                        continue
                    bid = nblocks
                    nblocks += 1
                    splits += 1
                    bstart[bid] = piece_start[q2]
                    bend[bid] = piece_end[q2]
                    ub = np.uint64(bid)
                    if piece_end[q2] - piece_start[q2] == 1:
                        ub |= _ALONE
                    for i in range(piece_start[q2], piece_end[q2]):
                        block_of[elems[i, 0]] = bid
                        row[elems[i, 0], 3] = ub
                    in_work[bid] = 1
                    work[wtop] = bid
                    wtop += 1
    return block_of, splits, rounds, True
