"""Rule conditions: parse the ``when`` tree, type-check each test, normalise to DNF.

A condition is written either as a string ``"customer.tenure_years ge 2"`` or as a mapping
``{field: customer.tenure_years, op: ge, value: 2}``; conditions combine with ``all``,
``any`` and ``not``. Semantics are three-valued: a test on a field the context lacks is
*unknown*, and neither it nor its negation matches (only ``exists`` looks at absence).
Negations are pushed down to the tests, so the engine only ever sees flat conjunctions.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, Iterable, Literal, Union

from . import pack_limits
from .context import field_kind, known_paths

__all__ = ["Atom", "Node", "parse_when", "parse_when_all", "to_dnf", "check_branches", "OPS", "ConditionError",
           "negate", "did_you_mean"]

OPS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "exists", "contains", "not_contains")
_SYMBOLS = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
#: other engines' names, only for "did you mean" (a pack says what it means: never accepted)
_OP_ALIASES = {"lte": "le", "gte": "ge", "neq": "ne", "equals": "eq", "is": "eq", "nin": "not_in",
               "not in": "not_in", "notin": "not_in", "has": "contains", "includes": "contains",
               "matches": "contains", "exist": "exists"}
_NEGATE = {
    "eq": "ne", "ne": "eq", "lt": "ge", "ge": "lt", "gt": "le", "le": "gt",
    "in": "not_in", "not_in": "in", "contains": "not_contains", "not_contains": "contains",
}
_ALLOWED: dict[str, tuple[str, ...]] = {
    "number": ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "exists"),
    "string": ("eq", "ne", "in", "not_in", "exists", "contains", "not_contains"),
    "bool": ("eq", "ne", "exists"),
    "list": ("contains", "not_contains", "exists"),
    "datetime": ("exists",),
}
ValueKind = Literal["number", "string", "bool", "list", "any"]
#: kept for callers that read them here; the caps themselves live in ``pack_limits``
MAX_BRANCHES = pack_limits.MAX_BRANCHES
MAX_IN_VALUES = pack_limits.MAX_IN_VALUES
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ConditionError(ValueError):
    """A condition is invalid; ``line`` is where it was written, if known."""

    def __init__(self, message: str, line: int | None = None, path: str = ""):
        self.line, self.path = line, path
        super().__init__(message)


@dataclass(frozen=True)
class Atom:
    """One test: ``field op value``. ``kind`` is the value kind the field must have."""

    field: str
    op: str
    value: Any = dc_field(hash=False, compare=True)
    kind: ValueKind = "string"
    line: int | None = dc_field(default=None, hash=False, compare=False)
    #: identity of the test (line-independent), used to share tests across rules
    key: tuple[str, str, str] = dc_field(init=False, repr=False, hash=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.field, self.op, repr(self.value)))

    def __hash__(self) -> int:
        return hash(self.key)

    def text(self) -> str:
        if self.op == "exists":
            return f"{self.field} {'exists' if self.value else 'is missing'}"
        sym = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}.get(self.op, self.op)
        return f"{self.field} {sym} {self.value!r}" if isinstance(self.value, str) else f"{self.field} {sym} {self.value}"


@dataclass(frozen=True)
class All:
    children: tuple["Node", ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple["Node", ...]


@dataclass(frozen=True)
class Not:
    child: "Node"


Node = Union[Atom, All, AnyOf, Not]


def negate(atom: Atom) -> Atom:
    """The test that holds exactly when ``atom`` is false on a present value."""
    if atom.op == "exists":
        return Atom(atom.field, "exists", not atom.value, atom.kind, atom.line)
    return Atom(atom.field, _NEGATE[atom.op], atom.value, atom.kind, atom.line)


def _line(node: Any, key: Any = None) -> int | None:
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if key is None:
            return int(lc.line) + 1
        if isinstance(key, int):
            return int(lc.item(key)[0]) + 1
        return int(lc.key(key)[0]) + 1
    except Exception:
        return None


@functools.cache
def _yaml_scalar() -> Any:
    """ruamel's safe loader, made on first use (importing ruamel costs start-up time)."""
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True)


_NUMBER = re.compile(r"^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_SLUG = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")
_KEYWORDS = {"true": True, "false": False, "True": True, "False": False, "null": None, "~": None}


def _parse_scalar(text: str) -> Any:
    """A condition's value as YAML would read it; plain numbers and words skip the YAML parser."""
    from io import StringIO

    if _NUMBER.match(text):
        if len(text) > 40:  # int() refuses 4300+ digits; no threshold needs 40
            raise ValueError(f"the number {text[:20]}... has {len(text)} characters")
        return float(text) if any(c in text for c in ".eE") else int(text)
    if text in _KEYWORDS:
        return _KEYWORDS[text]
    if _SLUG.match(text) and text.lower() not in ("yes", "no", "on", "off", "y", "n"):
        return text
    try:
        return _yaml_scalar().load(StringIO(text))
    except Exception:
        return text


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _suggest(path: str) -> str:
    return did_you_mean(path, known_paths())


def _atom(raw: Any, line: int | None, where: str) -> Atom:
    if isinstance(raw, str):
        parts = raw.strip().split(None, 2)
        if len(parts) < 2:
            raise ConditionError(f"condition {raw!r} is not 'field op value'", line, where)
        fld, op = parts[0], parts[1]
        try:
            value: Any = _parse_scalar(parts[2]) if len(parts) == 3 else None
        except ValueError as exc:
            raise ConditionError(f"value of {fld} {op}: {exc}", line, where) from None
    elif isinstance(raw, dict):
        unknown = set(raw) - {"field", "op", "value"}
        if unknown or "field" not in raw or "op" not in raw:
            raise ConditionError(
                "a condition mapping has exactly 'field', 'op' and (except for exists) 'value'"
                + (f"; unknown key(s): {', '.join(sorted(map(str, unknown)))}" if unknown else ""),
                line, where,
            )
        fld, op, value = str(raw["field"]), str(raw["op"]), raw.get("value")
    else:
        raise ConditionError(f"expected a condition, 'all', 'any' or 'not', got {type(raw).__name__}", line, where)
    op = _SYMBOLS.get(op, op)
    if op not in OPS:
        hint = f" (did you mean {_OP_ALIASES[op]!r}?)" if op in _OP_ALIASES else did_you_mean(op, OPS)
        raise ConditionError(f"unknown operator {op!r}{hint}; use one of {', '.join(OPS)}", line, where)
    if isinstance(value, list) and len(value) > pack_limits.MAX_IN_VALUES:  # before copying it
        raise ConditionError(f"{op!r} takes at most {pack_limits.MAX_IN_VALUES} values", line, where)
    return _typed(fld, op, _plain(value), line, where)


def _plain(value: Any) -> Any:
    """Plain Python values (ruamel's scalar subclasses carry formatting we do not want)."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def _check_value(fld: str, value: Any, line: int | None, where: str) -> None:
    """Numbers the engine compares exactly, strings without control characters."""
    if isinstance(value, bool):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConditionError(f"value of {fld} must be a finite number, got {value}", line, where)
    if isinstance(value, (int, float)) and abs(value) > pack_limits.MAX_EXACT_NUMBER:
        raise ConditionError(f"value of {fld} is beyond +-(2**53 - 1) ({pack_limits.MAX_EXACT_NUMBER}): durable-rules "
                             f"cannot compare it exactly", line, where)
    if isinstance(value, str) and _CONTROL.search(value):
        raise ConditionError(f"value of {fld} contains a control character: {value!r}", line, where)


def _value_kind(value: Any) -> ValueKind | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _typed(fld: str, op: str, value: Any, line: int | None, where: str) -> Atom:
    kind: str | None = field_kind(fld)  # an open-map key takes the kind of its test's value
    if kind is None:
        raise ConditionError(f"unknown field {fld!r}{_suggest(fld)}", line, where)
    if op == "exists":
        if value is None:
            value = True
        if not isinstance(value, bool):
            raise ConditionError(f"'exists' takes true or false, got {value!r}", line, where)
        # An open-map key's kind comes from the typed tests on it (RuleBook aligns it).
        return Atom(fld, op, value, "any" if kind == "open" else _as_value_kind(kind), line)
    if value is None:
        raise ConditionError(f"operator {op!r} on {fld} needs a value", line, where)
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise ConditionError(f"{op!r} takes a non-empty list, got {value!r}", line, where)
        kinds = {_value_kind(v) for v in value}
        if len(kinds) != 1 or None in kinds:
            raise ConditionError(f"{op!r} values must all be numbers or all strings, got {value!r}", line, where)
        vkind = kinds.pop()
        for v in value:
            _check_value(fld, v, line, where)
        value = tuple(value)
    else:
        vkind = _value_kind(value)
        if vkind is None:
            raise ConditionError(f"value of {fld} {op} must be a number, string or boolean, got {value!r}", line, where)
        _check_value(fld, value, line, where)
    assert vkind is not None  # both branches above raise otherwise
    if kind == "open":
        kind = vkind if op not in ("contains", "not_contains") else "string"
        if vkind == "bool" and op not in ("eq", "ne"):
            raise ConditionError(f"operator {op!r} does not apply to a boolean value", line, where)
        if vkind == "number" and op in ("contains", "not_contains"):
            raise ConditionError(f"operator {op!r} takes a string value", line, where)
    allowed = _ALLOWED[kind]
    if op not in allowed:
        raise ConditionError(f"operator {op!r} does not apply to {fld} ({kind}); use {', '.join(allowed)}", line, where)
    expected = "string" if kind == "list" else kind
    if vkind != expected:
        raise ConditionError(f"{fld} is a {expected}, but the value {value!r} is a {vkind}", line, where)
    if kind == "string" and op in ("contains", "not_contains"):
        _check_pattern(fld, value, line, where)
    return Atom(fld, op, value, _as_value_kind(kind), line)


def _check_pattern(fld: str, pattern: str, line: int | None, where: str) -> None:
    """A ``contains`` on text becomes a durable-rules regex: ASCII only (the engine matches
    bytes, and its case folding is ASCII-only), not empty, and short (see ``pack_limits``)."""
    if not pattern:
        raise ConditionError(f"'contains' on {fld} takes a non-empty text", line, where)
    if not pattern.isascii():
        raise ConditionError(f"'contains' on {fld} takes an ASCII text; {pattern!r} is not (the engine matches "
                             "bytes): test the whole value with eq or in instead", line, where)
    if len(pattern) > pack_limits.MAX_PATTERN_CHARS:
        raise ConditionError(f"'contains' on {fld} takes at most {pack_limits.MAX_PATTERN_CHARS} characters, "
                             f"got {len(pattern)}", line, where)


def _as_value_kind(kind: str) -> ValueKind:
    if kind == "datetime":
        return "string"
    return kind  # type: ignore[return-value]


def parse_when(raw: Any, where: str = "when", line: int | None = None) -> Node:
    """Parse a ``when`` tree from YAML data (ruamel nodes keep their line numbers); raise the
    first problem (:func:`parse_when_all` reports them all)."""
    node, errors = parse_when_all(raw, where, line)
    if errors:
        raise errors[0]
    assert node is not None
    return node


def parse_when_all(raw: Any, where: str = "when", line: int | None = None) -> tuple[Node | None, list[ConditionError]]:
    """Parse a ``when`` tree, checking every test: the tree (None if anything is wrong) and
    every problem found. Nesting and the number of tests are capped (``pack_limits``)."""
    parser = _Parser()
    node = parser.parse(raw, where, line, 0)
    return (node if not parser.errors else None), parser.errors


class _Parser:
    def __init__(self) -> None:
        self.errors: list[ConditionError] = []
        self.tests = 0

    def parse(self, raw: Any, where: str, line: int | None, depth: int) -> Node | None:
        if depth > pack_limits.MAX_CONDITION_DEPTH:
            self.errors.append(ConditionError(
                f"conditions nested deeper than {pack_limits.MAX_CONDITION_DEPTH} levels of all/any/not", line, where))
            return None
        if isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) in ("all", "any", "not"):
            (key,) = raw
            sub, sub_line = raw[key], _line(raw, key) or line
            if key == "not":
                child = self.parse(sub, f"{where}.not", sub_line, depth + 1)
                return None if child is None else Not(child)
            return self.children(key, sub, f"{where}.{key}", sub_line, depth)
        if isinstance(raw, list):  # a plain list means all of it
            return self.children("all", raw, where, line, depth)
        self.tests += 1
        if self.tests > pack_limits.MAX_CONDITION_TESTS:
            if self.tests == pack_limits.MAX_CONDITION_TESTS + 1:
                self.errors.append(ConditionError(
                    f"more than {pack_limits.MAX_CONDITION_TESTS} tests in one rule; split the rule", line, where))
            return None
        try:
            return _atom(raw, _line(raw) if isinstance(raw, dict) else line, where)
        except ConditionError as exc:
            self.errors.append(exc)
            return None

    def children(self, key: str, sub: Any, where: str, line: int | None, depth: int) -> Node | None:
        if not isinstance(sub, list) or not sub:
            self.errors.append(ConditionError(f"'{key}' takes a non-empty list of conditions", line, where))
            return None
        children = [self.parse(item, f"{where}[{i}]", _line(sub, i) or line, depth + 1) for i, item in enumerate(sub)]
        if any(c is None for c in children):
            return None
        done = tuple(c for c in children if c is not None)
        return All(done) if key == "all" else AnyOf(done)


def to_dnf(node: Node, negated: bool = False) -> list[tuple[Atom, ...]]:
    """Disjunctive normal form: a list of conjunctions, negations pushed into the tests.

    Raises :class:`ConditionError` as soon as an intermediate form holds more than four
    times ``MAX_BRANCHES`` alternatives (nothing is truncated: a rule is never changed).
    """
    if isinstance(node, Atom):
        return [(negate(node) if negated else node,)]
    if isinstance(node, Not):
        return to_dnf(node.child, not negated)
    conj = isinstance(node, All) != negated  # De Morgan
    parts = [to_dnf(c, negated) for c in node.children]
    if not conj:
        out = _unique([branch for p in parts for branch in p])
    else:
        out = [()]
        for p in parts:
            out = _unique([a + b for a in out for b in p])
    return out


def _unique(branches: list[tuple[Atom, ...]]) -> list[tuple[Atom, ...]]:
    result: list[tuple[Atom, ...]] = []
    seen: set[tuple[Any, ...]] = set()
    for branch in branches:
        uniq = tuple(dict.fromkeys(branch))
        key = tuple(sorted(a.key for a in uniq))
        if key not in seen:
            seen.add(key)
            result.append(uniq)
    if len(result) > pack_limits.MAX_BRANCHES * 4:
        raise ConditionError(f"condition expands to more than {pack_limits.MAX_BRANCHES} alternatives; split the rule")
    return result


def check_branches(branches: list[tuple[Atom, ...]], where: str, line: int | None) -> list[ConditionError]:
    """What DNF may still produce that the engine cannot run: too many alternatives, or a
    negated pattern match on text (``not_contains``, written or from a ``not``)."""
    if len(branches) > pack_limits.MAX_BRANCHES:
        return [ConditionError(f"condition expands to more than {pack_limits.MAX_BRANCHES} alternatives; "
                               "split the rule", line, where)]
    errors: list[ConditionError] = []
    seen: set[tuple[str, str, str]] = set()
    for branch in branches:
        for atom in branch:
            if atom.op == "not_contains" and atom.kind == "string" and atom.key not in seen:
                seen.add(atom.key)
                errors.append(ConditionError(
                    f"{atom.field} cannot be tested for not containing {atom.value!r} (directly or under 'not'): "
                    "durable-rules cannot negate a pattern match on text; test whole values with ne or not_in",
                    atom.line or line, where))
    return errors


def fields_of(branches: Iterable[tuple[Atom, ...]]) -> set[str]:
    return {a.field for b in branches for a in b}
