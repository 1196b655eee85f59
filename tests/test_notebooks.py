"""Every notebook in docs/ runs top to bottom, with its assertion cells.

The notebooks check their own results (``assert`` cells derived from the
paper, from exact evaluation or from the unreduced model); a failing
assertion or any other error fails the test. They run with ``docs/`` as the
working directory (the notebooks read test data through relative paths);
figures are written to a temporary folder instead of ``docs/figures``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

DOCS = Path(__file__).resolve().parent.parent / "docs"

# name -> timeout per cell in seconds. Each notebook takes more than a few
# seconds (torch/matplotlib imports alone), so all are marked slow.
NOTEBOOKS = {
    "tour_ctmc": 300,
    "tour_nn": 300,
    "section5_fig4": 600,
    "leo_box": 300,
}


def test_every_notebook_is_listed() -> None:
    assert sorted(p.stem for p in DOCS.glob("*.ipynb")) == sorted(NOTEBOOKS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    timeout = NOTEBOOKS[name]
    nb = nbformat.read(DOCS / f"{name}.ipynb", as_version=4)
    asserts = sum("assert " in c.source for c in nb.cells if c.cell_type == "code")
    assert asserts >= 1, f"{name}: a notebook must check its results with assert cells"
    monkeypatch.setenv("LUMPKIT_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(DOCS)}},
    )
    start = time.perf_counter()
    client.execute()
    print(f"{name}: {time.perf_counter() - start:.1f} s")
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", (name, out)
    assert os.path.isdir(tmp_path)
