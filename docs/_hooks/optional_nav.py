"""mkdocs hook: drop nav entries whose page does not exist (yet).

Several pages of the site (benchmark tables, file formats, proofs) are written
by other parts of the project; the nav lists them all, and this hook removes
the ones missing from ``docs/`` so that ``mkdocs build --strict`` passes at
every stage. External links (``http...``) are kept.
"""

from __future__ import annotations

import os
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


def on_config(config: Any) -> Any:
    """Remove nav entries that point to pages not present in ``docs_dir``."""
    if config.get("nav"):
        config["nav"] = _prune(list(config["nav"]), config["docs_dir"])
    return config
