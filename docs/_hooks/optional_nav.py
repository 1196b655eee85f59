"""mkdocs hook: keep the nav in step with the pages that exist.

Several pages of the site (benchmark tables, file formats, proofs) are written
by other parts of the project. The nav in ``mkdocs.yml`` lists the expected
ones; this hook

* drops an entry whose page does not exist (yet), so that
  ``mkdocs build --strict`` passes at every stage, and
* appends pages that exist but are not in the nav: ``benchmarks-*.md`` to the
  "Benchmarks" section, anything else to "More", titled by their first
  ``# `` heading, so that no page is unreachable.

External links (``http...``) are kept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _prune(items: list[Any], docs_dir: str) -> list[Any]:
    kept: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            new: dict[str, Any] = {}
            for title, target in item.items():
                if isinstance(target, list):
                    sub = _prune(target, docs_dir)
                    if sub:
                        new[title] = sub
                elif isinstance(target, str) and (
                    target.startswith(("http://", "https://"))
                    or os.path.exists(os.path.join(docs_dir, target))
                ):
                    new[title] = target
            if new:
                kept.append(new)
        elif isinstance(item, str):
            if os.path.exists(os.path.join(docs_dir, item)):
                kept.append(item)
    return kept


def _targets(items: list[Any]) -> set[str]:
    found: set[str] = set()
    for item in items:
        if isinstance(item, str):
            found.add(item)
        elif isinstance(item, dict):
            for target in item.values():
                if isinstance(target, list):
                    found |= _targets(target)
                elif isinstance(target, str):
                    found.add(target)
    return found


def _title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("-", " ").capitalize()


def _section(nav: list[Any], title: str) -> list[Any]:
    for item in nav:
        if isinstance(item, dict) and isinstance(item.get(title), list):
            section: list[Any] = item[title]
            return section
    section = []
    nav.append({title: section})
    return section


def _add_unlisted(nav: list[Any], docs_dir: str) -> list[Any]:
    listed = _targets(nav)
    for page in sorted(Path(docs_dir).glob("*.md")):
        if page.name in listed:
            continue
        group = "Benchmarks" if page.name.startswith("benchmarks-") else "More"
        _section(nav, group).append({_title(page): page.name})
    return nav


def on_config(config: Any) -> Any:
    """Drop nav entries whose page is missing; add existing pages the nav lacks."""
    if config.get("nav"):
        nav = _prune(list(config["nav"]), config["docs_dir"])
        config["nav"] = _add_unlisted(nav, config["docs_dir"])
    return config
