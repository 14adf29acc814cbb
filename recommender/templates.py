"""Customer-facing scripts: ``{customer.tenure_years}``-style placeholders, filled safely.

This is deliberately not ``str.format``: a placeholder is a dotted context path and
nothing else (no attribute access, indexing or format specs), checked against the context
model when the pack loads. ``{path|fallback}`` gives text for a missing value, ``{{`` and
``}}`` are literal braces.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Placeholder", "placeholders", "render", "TemplateError", "format_value"]

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_SPACES = re.compile(r"  +")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class TemplateError(ValueError):
    """A script is malformed (unbalanced brace, placeholder that is not a field path)."""


@dataclass(frozen=True)
class Placeholder:
    path: str
    fallback: str | None


@functools.lru_cache(maxsize=4096)
def _parse(template: str) -> tuple[str | Placeholder, ...]:
    parts: list[str | Placeholder] = []
    pos = 0
    for m in _TOKEN.finditer(template):
        parts.append(template[pos:m.start()])
        tok = m.group(0)
        if tok in ("{{", "}}"):
            parts.append(tok[0])
        elif tok in ("{", "}"):
            raise TemplateError(f"unbalanced {tok!r} at character {m.start() + 1}; write {tok * 2} for a literal brace")
        else:
            inner = m.group(1)
            path, sep, fallback = inner.partition("|")
            path = path.strip()
            if not _PATH.match(path):
                raise TemplateError(f"placeholder {{{inner}}} must be a dotted context field path")
            parts.append(Placeholder(path, fallback if sep else None))
        pos = m.end()
    parts.append(template[pos:])
    return tuple(p for p in parts if p != "")


def placeholders(template: str) -> list[Placeholder]:
    return [p for p in _parse(template) if isinstance(p, Placeholder)]


def format_value(value: Any) -> str:
    """Human formatting: 5.0 -> '5', 1.5 -> '1.5', 2.345 -> '2.35', lists joined, booleans as yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.2f}".rstrip("0").rstrip(".")
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def render(template: str, lookup: Callable[[str], Any]) -> tuple[str, list[str]]:
    """Fill ``template``; return the text and the paths that had no value and no fallback."""
    out: list[str] = []
    missing: list[str] = []
    for part in _parse(template):
        if part.__class__ is str:
            out.append(part)
            continue
        value = lookup(part.path)  # type: ignore[union-attr]
        if value is None or value == [] or value == "":
            if part.fallback is None:  # type: ignore[union-attr]
                missing.append(part.path)  # type: ignore[union-attr]
            out.append(part.fallback or "")  # type: ignore[union-attr]
        else:
            out.append(value if value.__class__ is str else format_value(value))
    text = "".join(out)
    if "  " in text:
        text = _SPACES.sub(" ", text)
    return text.strip(), missing
