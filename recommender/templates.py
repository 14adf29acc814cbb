"""Customer-facing scripts: ``{customer.tenure_years}``-style placeholders, filled safely.

This is deliberately not ``str.format``: a placeholder is a dotted context path and
nothing else (no attribute access, indexing or format specs), checked against the context
model when the pack loads. ``{{`` and ``}}`` are literal braces.

- ``{path|fallback}`` gives text for a missing value.
- ``{path:day/days}`` writes a count with its noun: "1 day", "3 days" (never "day(s)").
- ``[ ... ]`` is an optional segment: it vanishes, with its words and punctuation, when a
  placeholder inside it has no value (and no fallback): ``Thank you[, {customer.name}].``
  reads "Thank you, Ada." or "Thank you." ``[[`` and ``]]`` are literal brackets.

Only what the context says is said: a script never shows "None" or an empty slot.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Placeholder", "placeholders", "required", "render", "tidy", "TemplateError", "format_value"]

_TOKEN = re.compile(r"\{\{|\}\}|\[\[|\]\]|\{([^{}]*)\}|[{}\[\]]")
_SPACES = re.compile(r"  +")
_SPACE_BEFORE = re.compile(r" +([,.;:!?])")
_DOUBLED = re.compile(r"([,;:])(?: *[,;:])+")
_COMMA_STOP = re.compile(r"[,;:] *([.!?])")
_NOUN = re.compile(r"^[A-Za-z][A-Za-z' -]*$")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class TemplateError(ValueError):
    """A script is malformed (unbalanced brace, placeholder that is not a field path)."""


@dataclass(frozen=True)
class Placeholder:
    path: str
    fallback: str | None
    #: ``(singular, plural)`` for a count written with its noun
    noun: tuple[str, str] | None = None


@dataclass(frozen=True)
class Optional_:
    """An optional segment: dropped whole when one of its placeholders has nothing to say."""

    parts: tuple["str | Placeholder", ...]


Part = "str | Placeholder | Optional_"


def _placeholder(inner: str) -> Placeholder:
    head, sep, fallback = inner.partition("|")
    path, colon, noun = head.partition(":")
    path = path.strip()
    if not _PATH.match(path):
        raise TemplateError(f"placeholder {{{inner}}} must be a dotted context field path")
    forms: tuple[str, str] | None = None
    if colon:
        one, slash, many = noun.partition("/")
        if not slash or not _NOUN.match(one.strip()) or not _NOUN.match(many.strip()):
            raise TemplateError(f"placeholder {{{inner}}}: write a count as {{path:singular/plural}}, e.g. {{interaction.delay_days:day/days}}")
        forms = (one.strip(), many.strip())
    return Placeholder(path, fallback if sep else None, forms)


@functools.lru_cache(maxsize=4096)
def _parse(template: str) -> tuple[Any, ...]:
    stack: list[list[Any]] = [[]]
    opened: list[int] = []
    pos = 0
    for m in _TOKEN.finditer(template):
        stack[-1].append(template[pos:m.start()])
        tok = m.group(0)
        if tok in ("{{", "}}", "[[", "]]"):
            stack[-1].append(tok[0])
        elif tok in ("{", "}"):
            raise TemplateError(f"unbalanced {tok!r} at character {m.start() + 1}; write {tok * 2} for a literal brace")
        elif tok == "[":
            if opened:
                raise TemplateError(f"optional segments do not nest (character {m.start() + 1})")
            opened.append(m.start())
            stack.append([])
        elif tok == "]":
            if not opened:
                raise TemplateError(f"unbalanced ']' at character {m.start() + 1}; write ]] for a literal bracket")
            opened.pop()
            inner = tuple(p for p in stack.pop() if p != "")
            if not any(isinstance(p, Placeholder) for p in inner):
                raise TemplateError(f"the optional segment ending at character {m.start() + 1} has no placeholder")
            stack[-1].append(Optional_(inner))
        else:
            stack[-1].append(_placeholder(m.group(1)))
        pos = m.end()
    if opened:
        raise TemplateError(f"unbalanced '[' at character {opened[0] + 1}; write [[ for a literal bracket")
    stack[-1].append(template[pos:])
    return tuple(p for p in stack[0] if p != "")


def placeholders(template: str) -> list[Placeholder]:
    out: list[Placeholder] = []
    for p in _parse(template):
        if isinstance(p, Placeholder):
            out.append(p)
        elif isinstance(p, Optional_):
            out.extend(q for q in p.parts if isinstance(q, Placeholder))
    return out


def required(template: str) -> list[Placeholder]:
    """Placeholders outside optional segments (their absence leaves a gap or a fallback)."""
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


def _fill(part: Placeholder, value: Any) -> str | None:
    """The text for one placeholder, or None when the context has nothing to say."""
    if value is None or value == [] or value == "":
        return part.fallback
    text = value if value.__class__ is str else format_value(value)
    if part.noun is not None:
        one = isinstance(value, (int, float)) and not isinstance(value, bool) and value == 1
        text = f"{text} {part.noun[0] if one else part.noun[1]}"
    return text


def tidy(text: str) -> str:
    """Mend the seams a vanished segment or fallback leaves: spaces, stray commas."""
    if "  " in text:
        text = _SPACES.sub(" ", text)
    text = _SPACE_BEFORE.sub(r"\1", text)
    text = _DOUBLED.sub(r"\1", text)
    text = _COMMA_STOP.sub(r"\1", text)
    text = text.strip().lstrip(",;: ")
    return text[:1].upper() + text[1:] if text else text


def render(template: str, lookup: Callable[[str], Any]) -> tuple[str, list[str]]:
    """Fill ``template``; return the text and the paths that had no value and no fallback
    outside optional segments (inside one, the segment simply goes)."""
    out: list[str] = []
    missing: list[str] = []
    for part in _parse(template):
        if part.__class__ is str:
            out.append(part)
        elif part.__class__ is Placeholder:
            text = _fill(part, lookup(part.path))
            if text is None:
                missing.append(part.path)
            out.append(text or "")
        else:
            seg: list[str] = []
            for sub in part.parts:
                if sub.__class__ is str:
                    seg.append(sub)
                    continue
                text = _fill(sub, lookup(sub.path))
                if text is None:
                    break
                seg.append(text)
            else:
                out.append("".join(seg))
    return tidy("".join(out)), missing
