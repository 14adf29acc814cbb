"""Bundled example contexts for ``recommender demo`` (one JSON file per example)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

HERE = Path(__file__).parent


def example_profiles() -> dict[str, dict[str, Any]]:
    """The business profiles some examples run under (``"profiles"`` in their file), by
    business id: a small business's own scale is part of what they show."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(HERE.glob("*.json")):
        out.update(json.loads(path.read_text(encoding="utf-8")).get("profiles", {}))
    return out


def load_examples() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Yield ``(name, title, context)`` for every ``*.json`` example, in file-name order."""
    for path in sorted(HERE.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        yield path.stem, data["title"], data["context"]
