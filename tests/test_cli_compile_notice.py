"""The command line says when numba compiles (a first run is otherwise silent for tens of
seconds) and stays quiet when the compiled code comes from numba's cache."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from lumpkit._cli import COMPILE_NOTICE, compile_notice


def test_notice_once_per_run_and_only_when_compiling() -> None:
    @njit
    def first(x: int) -> int:
        return x + 1

    @njit
    def second(x: float) -> float:
        return x * 2.0

    buf = io.StringIO()
    with compile_notice(buf):
        assert first(1) == 2
        assert second(1.5) == 3.0  # a second compilation: still one line
    assert buf.getvalue() == COMPILE_NOTICE + "\n"
    quiet = io.StringIO()
    with compile_notice(quiet):
        assert first(2) == 3  # compiled already
    assert quiet.getvalue() == ""
    after = io.StringIO()
    with compile_notice(after):
        pass
    first(np.int8(3))  # outside the context: the listener is gone
    assert after.getvalue() == ""


@pytest.mark.slow
def test_first_cli_run_says_it_compiles_and_the_next_does_not(tmp_path: Path) -> None:
    """An empty numba cache (``NUMBA_CACHE_DIR``) makes every kernel compile."""
    from nnreduce import Activation, Dense, Network, save_network

    w = np.array([[1.0, -2.0], [2.0, -4.0], [0.5, 3.0]])
    save_network(Network((Dense(w, [1.0, 2.0, 0.0]), Activation("relu"),
                      Dense([[1.0, 1.0, 1.0]], [0.0])), (2,)), tmp_path / "m.npz")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "lumpkit", "nn", "reduce", str(tmp_path / "m.npz"), "--json"]
    runs = [subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["neurons_after"] == 2  # stdout stays one JSON object
    assert runs[0].stderr.splitlines().count(COMPILE_NOTICE) == 1
    assert COMPILE_NOTICE not in runs[1].stderr
