"""``lumpkit demo`` runs in-process and reports the paper's results.

Expected values are derived independently of the code under test: the
partition and factors of Example 2 are the paper's, the stationary
distribution is solved here with numpy from the generator, the Fig. 3
weights and the erratum outputs are computed by hand.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from lumpkit._cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo_json() -> dict:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = main(["demo", "--json"])
    assert status == 0
    return json.loads(buf.getvalue())


@pytest.fixture(scope="module")
def demo_text() -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = main(["demo"])
    assert status == 0
    return buf.getvalue()


def test_demo_text_report(demo_text: str) -> None:
    out = demo_text
    # Example 2 as stated in the paper: classes and rho.
    assert "4 blocks {1} {2,3,4} {5,6,7} {8}" in out
    assert "rho = 1, 1, 2, 2, 1, 2, 2, 1" in out
    assert "uniform inside blocks: yes (exact)" in out
    # Fig. 3: three hidden neurons become two, proved equal by z3.
    assert "hidden neurons 3 -> 2" in out
    assert "equal on every input of R^2" in out
    assert "certificate checked independently: valid" in out
    # Erratum: refuted with a counterexample, sound reduction proved.
    assert re.search(r"counterexample x = \S+: original o = \S+, Def. 6 reduction o = 0", out)
    assert "proved equivalent" in out
    assert "all checks passed" in out


def _shown_sessions(page: Path) -> list[str]:
    """The output shown after ``$ lumpkit demo`` in the console blocks of ``page``."""
    text = page.read_text(encoding="utf-8")
    blocks = re.findall(r"```console\n\$ lumpkit demo\n(.*?)```", text, flags=re.S)
    return [b for b in blocks if b.strip()]


@pytest.mark.parametrize("page", ["README.md", "docs/cli.md"])
def test_pages_show_what_demo_prints(page: str, demo_text: str) -> None:
    # the README and the command-line page say that only the times vary
    def times_out(text: str) -> str:
        return re.sub(r"\d+\.\d+ s\b", "<time> s", text).strip()

    sessions = _shown_sessions(ROOT / page)
    assert sessions, f"{page} shows no demo output"
    for shown in sessions:
        assert times_out(shown) == times_out(demo_text)


def test_example_2_stationary_matches_numpy(demo_json: dict) -> None:
    e = demo_json["example_2"]
    assert e["blocks"] == [[1], [2, 3, 4], [5, 6, 7], [8]]
    assert e["rho"] == ["1", "1", "2", "2", "1", "2", "2", "1"]
    # Oracle: the generator from its rates, solved with numpy (pi Q = 0, sum 1).
    rates = {
        (0, 1): 2,
        (0, 2): 1,
        (0, 3): 1,
        (1, 4): 2,
        (2, 3): 1,
        (2, 5): 1,
        (3, 2): 1,
        (3, 6): 1,
        (4, 5): 1,
        (4, 7): 1,
        (5, 6): 1,
        (5, 7): 1,
        (6, 7): 2,
        (7, 0): 1,
        (7, 4): 2,
        (7, 5): 1,
        (7, 6): 1,
    }
    q = np.zeros((8, 8))
    for (i, j), r in rates.items():
        q[i, j] = r
    q -= np.diag(q.sum(axis=1))
    a = np.vstack([q.T, np.ones(8)])
    pi = np.linalg.lstsq(a, np.r_[np.zeros(8), 1.0], rcond=None)[0]
    got = np.array([float(Fraction(p)) for p in e["stationary"]])
    assert np.allclose(got, pi, atol=1e-12)
    masses = [sum(pi[s - 1] for s in blk) for blk in e["blocks"]]
    got_q = [float(Fraction(p)) for p in e["stationary_quotient"]]
    assert np.allclose(got_q, masses, atol=1e-12)


def test_fig3_weights_by_hand(demo_json: dict) -> None:
    f = demo_json["fig3"]
    assert (f["hidden_before"], f["hidden_after"]) == (3, 2)
    assert f["rho"] == [["1", "1/2"], ["1"]]
    # v keeps its outgoing weights plus 2 times t's: (1 + 2*3, -2 + 2*1); w unchanged.
    assert f["reduced_output_weights"] == [["7", "-1"], ["0", "1"]]
    assert f["equivalent"] and f["certificate_valid"]


def test_erratum_counterexample_by_hand(demo_json: dict) -> None:
    x = demo_json["erratum"]
    (xv,) = (Fraction(v) for v in x["input"])
    # original: o = ReLU(x) - ReLU(2x) = -ReLU(x); Def. 6 reduction: o = 0.
    assert [Fraction(v) for v in x["original_output"]] == [-max(xv, Fraction(0))]
    assert [Fraction(v) for v in x["def6_reduced_output"]] == [Fraction(0)]
    assert xv > 0
    assert x["sound_reduction_equivalent"]


def test_demo_json_reports_its_time(demo_json: dict) -> None:
    """The JSON report carries the run time (how fast it is, is shown by
    running ``lumpkit demo``, not asserted here: CI machines are shared)."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()) as buf:
        assert main(["demo", "--json"]) == 0
    seconds = json.loads(buf.getvalue())["seconds"]
    assert isinstance(seconds, float) and seconds > 0
