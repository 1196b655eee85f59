"""The documentation site builds with ``mkdocs build --strict`` (warnings are errors).

This covers the API reference generated from the docstrings (mkdocstrings
reports docstring sections that disagree with signatures), broken links
between pages, and the nav. It builds into a temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    problems = [line for line in proc.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert proc.returncode == 0, "\n".join(problems) or proc.stderr[-3000:]
    site = tmp_path / "site"
    for page in ("index.html", "theory/index.html", "api/index.html", "user-guide/index.html"):
        assert (site / page).is_file(), page
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("coarsest_lumping", "reduce_network", "check_equivalence", "paper_example_2"):
        assert name in api, f"API reference lacks {name}"


def test_nav_hook_drops_missing_pages(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "optional_nav", ROOT / "docs" / "_hooks" / "optional_nav.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "a.md").write_text("# a")
    nav = [{"A": "a.md"}, {"B": "missing.md"}, {"G": [{"C": "gone.md"}]}, {"L": "https://x.org"}]
    config = mod.on_config({"nav": nav, "docs_dir": str(tmp_path)})
    assert config["nav"] == [{"A": "a.md"}, {"L": "https://x.org"}]
    # pages that exist but are not in the nav are appended, titled by their heading
    (tmp_path / "benchmarks-nn.md").write_text("intro\n# NN benchmarks\n")
    (tmp_path / "notes.md").write_text("no heading")
    nav = [{"A": "a.md"}, {"Benchmarks": [{"X": "gone.md"}]}]
    config = mod.on_config({"nav": nav, "docs_dir": str(tmp_path)})
    assert config["nav"] == [
        {"A": "a.md"},
        {"Benchmarks": [{"NN benchmarks": "benchmarks-nn.md"}]},
        {"More": [{"Notes": "notes.md"}]},
    ]
