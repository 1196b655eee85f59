"""How many threads a compiled pass gets (shared by lumpcore's and nnreduce's passes)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba

__all__ = ["threads_for"]

#: fewer entries than this: one thread (launching a parallel loop costs more than the work,
#: and test workers already share the cores)
PARALLEL_MIN = 1 << 18


@contextmanager
def threads_for(entries: int) -> Iterator[None]:
    """Run the compiled passes inside on one thread for small inputs, on all threads otherwise."""
    if entries >= PARALLEL_MIN:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)
