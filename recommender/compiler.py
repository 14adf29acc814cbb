"""Compile DNF branches into durable-rules rulesets that stay inside the engine's limits.

durable-rules builds one chain of alpha nodes per ``$and`` and shares identical prefixes,
i.e. a trie of tests. Measured limits (see ``docs/engine.md``): more than 512 distinct tests
under one node hang ``create_ruleset``; more than 64 tests true at once under one node fail
with error 303; at most 4095 rules per ruleset; at most 255 properties per fact. The
compiler orders each branch's tests (discriminating equality tests first, so rules share
prefixes), then packs branches into as many rulesets ("units") as needed, checking a
conservative bound for every trie node as each branch is inserted. The fact sent to a unit
carries only the fields its rules test, under short generated keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from .conditions import Atom

__all__ = ["Unit", "compile_branches", "encode_value", "LIMITS"]

#: Margins below the engine's measured limits.
LIMITS = {"children": 400, "true_at_once": 56, "rules": 4000, "fields": 200}
_REGEX_META = set("%.*+?|()[]{}")
_JANITOR_KEY = "j"


@dataclass
class _Node:
    children: dict[tuple[Any, ...], "_Node"] = field(default_factory=dict)
    #: per field: number of children that can be true together ("eq" children count once)
    eq_fields: dict[str, int] = field(default_factory=dict)
    other: int = 0

    def bound(self) -> int:
        return len(self.eq_fields) + self.other

    def would_fit(self, atom: Atom) -> bool:
        if len(self.children) + 1 > LIMITS["children"]:
            return False
        extra = 0
        if _exclusive(atom):
            extra = 0 if atom.field in self.eq_fields else 1
        else:
            extra = 1
        return self.bound() + extra <= LIMITS["true_at_once"]

    def add(self, atom: Atom) -> "_Node":
        key = atom.key
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = _Node()
            if _exclusive(atom):
                self.eq_fields[atom.field] = self.eq_fields.get(atom.field, 0) + 1
            else:
                self.other += 1
        return child


def _exclusive(atom: Atom) -> bool:
    """Equality tests on one field with distinct values are never true together."""
    return atom.op == "eq"


def _order(atom: Atom) -> tuple[Any, ...]:
    # Discriminators first: equality on strings/booleans, then numbers, then membership,
    # then the rest. A stable order makes rules that share tests share trie prefixes.
    rank = {"eq": 0 if atom.kind != "number" else 1, "contains": 2}.get(atom.op, 3)
    if atom.op in ("lt", "le", "gt", "ge"):
        rank = 4
    if atom.op == "exists":
        rank = 5
    return (rank, atom.field, atom.op, repr(atom.value))


@dataclass
class Unit:
    """One durable-rules ruleset: its definition and how to build its fact."""

    name: str
    definition: dict[str, Any]
    #: (fact key, context path, value kind) for every field this unit's rules test
    fields: list[tuple[str, str, str]]
    #: action name -> payload (what the caller wants back when that action fires)
    actions: dict[str, Any]
    _root: _Node = field(default_factory=_Node, repr=False)
    _keys: dict[str, str] = field(default_factory=dict, repr=False)

    def fits(self, tests: Sequence[Atom]) -> bool:
        if len(self.actions) + 1 > LIMITS["rules"]:
            return False
        new_fields = {a.field for a in tests} - set(self._keys) - {"$s"}
        if len(self._keys) + len(new_fields) > LIMITS["fields"]:
            return False
        node = self._root
        for atom in tests:
            child = node.children.get(atom.key)
            if child is None:
                return node.would_fit(atom)
            node = child
        return True

    def add(self, action: str, tests: Sequence[Atom], payload: Any) -> None:
        node = self._root
        for atom in tests:
            node = node.add(atom)
        conds = [self._test(a) for a in tests]
        self.definition[action] = {"all": [{"m": conds[0] if len(conds) == 1 else {"$and": conds}}]}
        self.actions[action] = payload

    def _key(self, atom: Atom) -> str:
        key = self._keys.get(atom.field)
        if key is None:
            key = self._keys[atom.field] = f"f{len(self._keys)}"
            self.fields.append((key, atom.field, atom.kind))
        return key

    def _test(self, atom: Atom) -> dict[str, Any]:
        if atom.field == "$s":  # the guard added by expand(): "not the engine's state fact"
            return {"$nex": {"$s": 1}}
        k, v, op = self._key(atom), atom.value, atom.op
        if op == "eq":
            return {k: v}
        if op == "ne":
            return {"$neq": {k: v}}
        if op in ("lt", "le", "gt", "ge"):
            return {{"lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}[op]: {k: v}}
        if op == "exists":
            return {"$ex" if v else "$nex": {k: 1}}
        if op == "contains" and atom.kind == "list":
            return {"$iany": {k: {"$i": v}}}
        if op == "not_contains" and atom.kind == "list":
            # Empty lists are sent as [""] (see encode_value), so $iall sees one item.
            return {"$iall": {k: {"$neq": {"$i": v}}}}
        if op == "contains":
            return {"$mt": {k: ".*" + "".join("%" + c if c in _REGEX_META else c for c in v) + ".*"}}
        raise ValueError(f"operator {op!r} reached the compiler unexpanded")  # pragma: no cover

    def definition_json(self) -> str:
        return dumps(self.definition)


def expand(branch: Sequence[Atom]) -> list[list[Atom]]:
    """Rewrite ``in``/``not_in`` into what durable supports: alternatives and conjunctions.

    Also guards a conjunction made only of ``exists: false`` tests, which would match the
    engine's own state fact and re-fire forever.
    """
    out: list[list[Atom]] = [[]]
    for atom in branch:
        if atom.op == "in":
            out = [b + [Atom(atom.field, "eq", v, atom.kind, atom.line)] for b in out for v in atom.value]
        elif atom.op == "not_in":
            out = [b + [Atom(atom.field, "ne", v, atom.kind, atom.line) for v in atom.value] for b in out]
        else:
            out = [b + [atom] for b in out]
    result = []
    for tests in out:
        tests = sorted(dict.fromkeys(tests), key=_order)
        if all(a.op == "exists" and a.value is False for a in tests):
            tests.append(Atom("$s", "exists", False, "number"))
        result.append(tests)
    return result


def compile_branches(items: Iterable[tuple[Any, Sequence[Atom]]], prefix: str = "u") -> list[Unit]:
    """Pack ``(payload, branch)`` pairs into units; first fit, in order."""
    units: list[Unit] = []
    n = 0
    for payload, branch in items:
        for tests in expand(branch):
            unit = next((u for u in units if u.fits(tests)), None)
            if unit is None:
                unit = Unit(name=f"{prefix}{len(units)}", definition={}, fields=[], actions={})
                units.append(unit)
            unit.add(f"a{n}", tests, payload)
            n += 1
    for unit in units:
        unit.definition[_JANITOR_KEY] = {"all": [{"m": {"$ex": {_JANITOR_KEY: 1}}}]}
    return units


# -- JSON that durable's C parser reads exactly -------------------------------------

def _num(v: float | int) -> str:
    if isinstance(v, int):
        if -(2**53) <= v <= 2**53:
            return str(v)
        v = float(v)  # int64 saturates silently in the engine; floats compare correctly
    r = repr(v)
    # The C parser rejects exponent form without a '.', which repr gives for 1e-05 or 1e+16.
    return r.replace("e", ".0e", 1) if "e" in r and "." not in r else r


def encode_value(v: Any) -> str:
    """One value as engine-safe JSON (exact numbers, empty lists as ``[""]``)."""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return _num(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(encode_value(x) for x in v) + "]" if v else '[""]'
    raise TypeError(f"cannot send {type(v).__name__} to the engine")


def dumps(obj: Any) -> str:
    """JSON of a ruleset definition with engine-safe numbers."""
    if isinstance(obj, dict):
        return "{" + ",".join(json.dumps(str(k), ensure_ascii=False) + ":" + dumps(v) for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(dumps(v) for v in obj) + "]"
    return encode_value(obj) if not isinstance(obj, (list, tuple)) else dumps(list(obj))
