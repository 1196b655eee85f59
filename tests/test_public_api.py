"""The public surface of every lumpkit package stays small and documented.

* No public-looking module: every module or subpackage inside a package must
  start with ``_`` (the package ``__init__`` is the API index).
* Every package has a docstring and a sorted ``__all__`` whose names exist.
* Every public function and class in ``__all__`` has a docstring, and so do
  the public methods and properties a class defines itself.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

PACKAGES = ["lumpcore", "markov", "nnreduce", "proofs", "lumpkit"]


def _public_modules(pkg: ModuleType) -> list[str]:
    """Names of modules/subpackages of ``pkg`` that do not start with ``_``.

    Uses :func:`pkgutil.iter_modules`, which lists without importing (so
    ``lumpkit.__main__`` is not run)."""
    bad = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            bad.append(f"{pkg.__name__}.{info.name}")
    return bad


@pytest.mark.parametrize("name", PACKAGES)
def test_no_public_looking_modules(name: str) -> None:
    pkg = importlib.import_module(name)
    bad = _public_modules(pkg)
    assert not bad, (
        f"public-looking module(s) {bad}: rename to a leading underscore and re-export "
        f"the public names from {name}/__init__.py"
    )


@pytest.mark.parametrize("name", PACKAGES)
def test_package_docstring_and_sorted_all(name: str) -> None:
    pkg = importlib.import_module(name)
    assert (pkg.__doc__ or "").strip(), f"{name}/__init__.py needs a docstring"
    assert hasattr(pkg, "__all__"), f"{name} has no __all__"
    names = list(pkg.__all__)
    assert names == sorted(names), f"{name}.__all__ is not sorted: {names}"
    assert len(set(names)) == len(names), f"{name}.__all__ has duplicates"
    missing = [x for x in names if not hasattr(pkg, x)]
    assert not missing, f"{name}.__all__ lists names that do not exist: {missing}"


def _undocumented(pkg: ModuleType) -> list[str]:
    out = []
    for x in pkg.__all__:
        obj = getattr(pkg, x)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if not (obj.__doc__ or "").strip():
            out.append(f"{pkg.__name__}.{x}")
        if inspect.isclass(obj) and obj.__module__.split(".")[0] in PACKAGES:
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                target = member
                if isinstance(member, classmethod | staticmethod):
                    target = member.__func__
                elif isinstance(member, property):
                    target = member.fget
                if not callable(target) and not isinstance(member, property):
                    continue
                if not (getattr(target, "__doc__", None) or "").strip():
                    out.append(f"{pkg.__name__}.{x}.{attr}")
    return out


@pytest.mark.parametrize("name", PACKAGES)
def test_public_names_have_docstrings(name: str) -> None:
    pkg = importlib.import_module(name)
    bad = _undocumented(pkg)
    assert not bad, f"missing docstrings: {bad}"


def test_walker_catches_a_public_module(tmp_path: pytest.TempPathFactory) -> None:
    """The check itself: a package with a public-looking module is reported."""
    import sys

    root = tmp_path  # type: ignore[assignment]
    pkgdir = root / "fakepkg_for_api_test"  # type: ignore[operator]
    pkgdir.mkdir()
    (pkgdir / "__init__.py").write_text('"""Fake."""\n__all__ = []\n')
    (pkgdir / "_private.py").write_text("")
    (pkgdir / "public.py").write_text("")
    sys.path.insert(0, str(root))
    try:
        pkg = importlib.import_module("fakepkg_for_api_test")
        assert _public_modules(pkg) == ["fakepkg_for_api_test.public"]
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("fakepkg_for_api_test", None)
