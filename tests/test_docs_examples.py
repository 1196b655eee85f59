"""The Python examples of README.md and docs/user-guide.md run as written.

The blocks of a page run in order in one namespace, as a reader would type
them, in a scratch folder that holds the files they name (``model.tra``,
``model.onnx``, ``embedded.prism``: copies of test data) and a link to
``tests/``.  Where a line ends with a comment that is a Python value
(``res.blocks  # ((0,), (1, 2))``), the value of the line (or what it
prints) must be that value.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"


def python_blocks(page: Path) -> list[str]:
    """The ```` ```python ```` blocks of a Markdown page, in order."""
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


def _stated_value(comment: str) -> tuple[bool, Any]:
    """``(True, value)`` when a comment is a Python value (numbers, tuples, Fractions)."""
    try:
        return True, eval(comment, {"__builtins__": {}, "Fraction": Fraction})
    except Exception:
        return False, None


def run_block(source: str, namespace: dict[str, Any]) -> list[str]:
    """Run ``source`` statement by statement; return the claims it checked."""
    lines = source.splitlines()
    checked = []
    for stmt in ast.parse(source).body:
        code = compile(ast.Module(body=[stmt], type_ignores=[]), "<docs>", "exec")
        last = lines[(stmt.end_lineno or stmt.lineno) - 1]
        comment = last.split("#", 1)[1].strip() if "#" in last else ""
        expr = stmt.value if isinstance(stmt, ast.Expr) else None
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) \
                and expr.func.id == "print" and comment[:1] in tuple("([{-0123456789'\""):
            buf = io.StringIO()  # a print whose comment shows the printed text
            with contextlib.redirect_stdout(buf):
                exec(code, namespace)
            assert buf.getvalue().strip() == comment, f"{last}: printed {buf.getvalue()!r}"
            checked.append(last.strip())
            continue
        stated, value = _stated_value(comment) if expr is not None and comment else (False, None)
        if not stated:
            exec(code, namespace)
            continue
        assert expr is not None
        got = eval(compile(ast.Expression(body=expr), "<docs>", "eval"), namespace)
        assert got == value, f"{last}: got {got!r}"
        checked.append(last.strip())
    return checked


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from markov import paper_example_2, write_prism_explicit

    write_prism_explicit(paper_example_2(), tmp_path / "model.tra")
    shutil.copy(DATA / "nn" / "onnx" / "mnist2x10.onnx", tmp_path / "model.onnx")
    shutil.copy(DATA / "qvbench" / "embedded" / "embedded.prism", tmp_path / "embedded.prism")
    os.symlink(ROOT / "tests", tmp_path / "tests")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_example() -> None:
    (block,) = python_blocks(ROOT / "README.md")
    assert run_block(block, {}), "the README example states its output"


@pytest.mark.slow
def test_user_guide_examples_in_order(scratch: Path) -> None:
    pytest.importorskip("stormpy")
    pytest.importorskip("onnx")
    namespace: dict[str, Any] = {}
    checked = []
    for block in python_blocks(ROOT / "docs" / "user-guide.md"):
        checked += run_block(block, namespace)
    assert any("res.blocks" in c for c in checked)
    assert (scratch / "model.reduced.onnx").is_file()
    assert (scratch / "model.certificate.json").is_file()


def test_stated_values_are_compared() -> None:
    # the checker itself: a wrong stated value fails, a prose comment is skipped
    assert run_block("x = 2   # two\nx + 1   # 3\n", {}) == ["x + 1   # 3"]
    with pytest.raises(AssertionError):
        run_block("(1, 2)   # (1, 3)\n", {})
    with pytest.raises(AssertionError):
        run_block("print(Fraction(1, 2))   # 1/3\n", {"Fraction": Fraction})
