"""Rule conditions: parse the ``when`` tree, type-check each test, normalise to DNF.

A condition is written either as a string ``"customer.tenure_years ge 2"`` or as a mapping
``{field: customer.tenure_years, op: ge, value: 2}``; conditions combine with ``all``,
``any`` and ``not``. Semantics are three-valued: a test on a field the context lacks is
*unknown*, and neither it nor its negation matches (only ``exists`` looks at absence).
Negations are pushed down to the tests, so the engine only ever sees flat conjunctions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, Iterable, Literal, Union

from ruamel.yaml import YAML

from .context import field_kind, known_paths

__all__ = ["Atom", "Node", "parse_when", "to_dnf", "OPS", "ConditionError", "negate"]

OPS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "exists", "contains", "not_contains")
_SYMBOLS = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
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
MAX_BRANCHES = 64
MAX_IN_VALUES = 50


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


_yaml_scalar = YAML(typ="safe", pure=True)


_NUMBER = re.compile(r"^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_SLUG = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")
_KEYWORDS = {"true": True, "false": False, "True": True, "False": False, "null": None, "~": None}


def _parse_scalar(text: str) -> Any:
    """A condition's value as YAML would read it; plain numbers and words skip the YAML parser."""
    from io import StringIO

    if _NUMBER.match(text):
        return float(text) if any(c in text for c in ".eE") else int(text)
    if text in _KEYWORDS:
        return _KEYWORDS[text]
    if _SLUG.match(text) and text.lower() not in ("yes", "no", "on", "off", "y", "n"):
        return text
    try:
        return _yaml_scalar.load(StringIO(text))
    except Exception:
        return text


def _suggest(path: str) -> str:
    import difflib

    close = difflib.get_close_matches(path, known_paths(), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _atom(raw: Any, line: int | None, where: str) -> Atom:
    if isinstance(raw, str):
        parts = raw.strip().split(None, 2)
        if len(parts) < 2:
            raise ConditionError(f"condition {raw!r} is not 'field op value'", line, where)
        fld, op = parts[0], parts[1]
        value: Any = _parse_scalar(parts[2]) if len(parts) == 3 else None
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
        raise ConditionError(f"unknown operator {op!r}; use one of {', '.join(OPS)}", line, where)
    return _typed(fld, op, _plain(value), line, where)


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


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
        if len(value) > MAX_IN_VALUES:
            raise ConditionError(f"{op!r} takes at most {MAX_IN_VALUES} values", line, where)
        kinds = {_value_kind(v) for v in value}
        if len(kinds) != 1 or None in kinds:
            raise ConditionError(f"{op!r} values must all be numbers or all strings, got {value!r}", line, where)
        vkind = kinds.pop()
        value = tuple(value)
    else:
        vkind = _value_kind(value)
        if vkind is None:
            raise ConditionError(f"value of {fld} {op} must be a number, string or boolean, got {value!r}", line, where)
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
    return Atom(fld, op, value, _as_value_kind(kind), line)


def _as_value_kind(kind: str) -> ValueKind:
    if kind == "datetime":
        return "string"
    return kind  # type: ignore[return-value]


def parse_when(raw: Any, where: str = "when", line: int | None = None) -> Node:
    """Parse a ``when`` tree from YAML data (ruamel nodes keep their line numbers)."""
    if isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) in ("all", "any", "not"):
        (key,) = raw
        sub, sub_line = raw[key], _line(raw, key) or line
        if key == "not":
            return Not(parse_when(sub, f"{where}.not", sub_line))
        if not isinstance(sub, list) or not sub:
            raise ConditionError(f"'{key}' takes a non-empty list of conditions", sub_line, f"{where}.{key}")
        children = tuple(
            parse_when(item, f"{where}.{key}[{i}]", _line(sub, i) or sub_line) for i, item in enumerate(sub)
        )
        return All(children) if key == "all" else AnyOf(children)
    if isinstance(raw, list):
        return parse_when({"all": raw}, where, line)
    return _atom(raw, _line(raw) if isinstance(raw, dict) else line, where)


def to_dnf(node: Node, negated: bool = False) -> list[tuple[Atom, ...]]:
    """Disjunctive normal form: a list of conjunctions, negations pushed into the tests."""
    if isinstance(node, Atom):
        return [(negate(node) if negated else node,)]
    if isinstance(node, Not):
        return to_dnf(node.child, not negated)
    conj = isinstance(node, All) != negated  # De Morgan
    parts = [to_dnf(c, negated) for c in node.children]
    if not conj:
        out = [branch for p in parts for branch in p]
    else:
        out = [()]
        for p in parts:
            out = [a + b for a in out for b in p]
            if len(out) > MAX_BRANCHES * 4:
                break
    result: list[tuple[Atom, ...]] = []
    seen: set[tuple[Any, ...]] = set()
    for branch in out:
        uniq = tuple(dict.fromkeys(branch))
        key = tuple(sorted(a.key for a in uniq))
        if key not in seen:
            seen.add(key)
            result.append(uniq)
    return result


def fields_of(branches: Iterable[tuple[Atom, ...]]) -> set[str]:
    return {a.field for b in branches for a in b}
