"""Compile DNF branches into durable-rules rulesets that stay inside the engine's limits.

durable-rules builds one chain of alpha nodes per ``$and`` and shares identical prefixes,
i.e. a trie of tests. Measured limits (see ``docs/engine.md``): more than 512 distinct tests
under one node hang ``create_ruleset``; an assert walks the trie depth-first with an explicit
stack of 64 nodes, so more tests true at once than that fail with error 303 (siblings still
waiting higher up the path count too); at most 4095 rules per ruleset; at most 255
properties per fact.

Measured costs shape the packing (``bench/README.md``): every node visited evaluates every
child test on the fact's properties, and draining fired actions scans the ruleset's whole
action table once per fired rule. So the compiler

1. orders each branch's tests (discriminating equality tests first) so rules that share tests
   share trie prefixes;
2. sorts all branches by their ordered tests, so rules with a common prefix are adjacent;
3. fills rulesets ("units") one after another, closing a unit when it reaches
   ``LIMITS["unit_rules"]`` rules (short action tables: cheap drains) or when the next branch
   would break a limit: <= ``LIMITS["children"]`` distinct tests under a node, and a bound of
   the assert's stack (tests true at once, summed along the path) <= ``LIMITS["true_at_once"]``;
4. gives branches with exactly the same tests one shared action (every fired action costs a
   drain call, whatever it reports);
5. where many threshold tests on one field hang under the same node (``x >= 10``,
   ``x >= 12``, ... all true together for a large ``x``), groups them under implied *guard*
   tests (``x >= 10`` for the group ``x >= 10 .. x >= 30``): the stack holds the guards plus
   one group instead of every threshold, so far more rules fit in a unit, and a small value
   skips whole groups. A guard is implied by every test under it, so answers do not change.

Fact keys (``f0``, ``f1``, ...) are shared by all units of one compilation, so units that
test the same fields receive the same fact; a unit's fact carries only the fields it tests.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from .conditions import Atom
from .context import MAX_EXACT_INT

__all__ = ["Unit", "compile_branches", "encode_value", "LIMITS"]

#: Margins below the engine's measured limits, plus the unit size that keeps drains short.
LIMITS = {"children": 400, "true_at_once": 56, "rules": 4000, "fields": 200, "unit_rules": 256}
_REGEX_META = set("%.*+?|()[]{}")
_JANITOR_KEY = "j"
_LOWER = {"ge", "gt"}   # x >= t: true on [t, inf)
_UPPER = {"le", "lt"}   # x <= t: true on (-inf, t]


@dataclass
class _FieldTests:
    """The child tests of one node on one field, enough to bound how many hold at once."""

    lower: list[Any] = field(default_factory=list)   # thresholds of ge/gt, sorted
    upper: list[Any] = field(default_factory=list)   # thresholds of le/lt, sorted
    points: list[Any] = field(default_factory=list)  # numeric eq values, sorted
    exclusive: int = 0                               # eq on strings/bools: at most one holds
    other: int = 0                                   # ne, contains, exists...: any may hold

    def width(self) -> int:
        """Most of these tests that one value can satisfy (closed intervals: never too low)."""
        n = self.other + (1 if self.exclusive else 0)
        if not (self.lower or self.upper or self.points):
            return n
        if not self.upper and not self.points:
            return n + len(self.lower)
        if not self.lower and not self.points:
            return n + len(self.upper)
        best = 0
        nu = len(self.upper)
        for x in (*self.lower, *self.upper, *self.points):
            c = bisect_right(self.lower, x) + nu - bisect_left(self.upper, x)
            if self.points:
                c += bisect_right(self.points, x) - bisect_left(self.points, x)
            best = max(best, c)
        return n + best

    def add(self, atom: Atom) -> None:
        op = atom.op
        if op in _LOWER:
            insort(self.lower, atom.value)
        elif op in _UPPER:
            insort(self.upper, atom.value)
        elif op == "eq" and atom.kind == "number":
            insort(self.points, atom.value)
        elif op == "eq":
            self.exclusive += 1
        else:
            self.other += 1

    def remove(self, atom: Atom) -> None:
        op = atom.op
        if op in _LOWER:
            self.lower.remove(atom.value)
        elif op in _UPPER:
            self.upper.remove(atom.value)
        elif op == "eq" and atom.kind == "number":
            self.points.remove(atom.value)
        elif op == "eq":
            self.exclusive -= 1
        else:
            self.other -= 1


@dataclass
class _Node:
    children: dict[tuple[Any, ...], "_Node"] = field(default_factory=dict)
    tests: dict[str, _FieldTests] = field(default_factory=dict)
    #: tests among the children that can hold at once
    width: int = 0
    #: most nodes on the assert's stack while this node's subtree is walked
    need: int = 0


def _need(width: int, child_need: int) -> int:
    """Stack use below a node: its true children are pushed, then each is walked in turn
    while the siblings pushed before it wait on the stack."""
    if width == 0:
        return 0
    return max(width, width - 1 + child_need)


def _vkey(v: Any) -> tuple[Any, ...]:
    if isinstance(v, bool):
        return (2, repr(v))
    if isinstance(v, (int, float)):
        return (0, v)
    if isinstance(v, str):
        return (1, v)
    return (2, repr(v))


def _order(atom: Atom) -> tuple[Any, ...]:
    # Discriminators first: equality on strings/booleans, then numbers, then membership,
    # then the rest. A stable order makes rules that share tests share trie prefixes.
    rank = {"eq": 0 if atom.kind != "number" else 1, "contains": 2}.get(atom.op, 3)
    if atom.op in ("lt", "le", "gt", "ge"):
        rank = 4
    if atom.op == "exists":
        rank = 5
    return (rank, atom.field, atom.op, _vkey(atom.value))


@dataclass
class Unit:
    """One durable-rules ruleset: its definition and how to build its fact."""

    name: str
    definition: dict[str, Any]
    #: (fact key, context path, value kind) for every field this unit's rules test
    fields: list[tuple[str, str, str]]
    #: action name -> payload (what the caller wants back when that action fires)
    actions: dict[str, Any]
    #: action name -> payloads of further branches with exactly the same tests: one action
    #: fires for all of them (see ``compile_branches``)
    shared: dict[str, list[Any]] = field(default_factory=dict)
    _root: _Node = field(default_factory=_Node, repr=False)
    #: (path, kind) -> fact key, shared by every unit of one compilation
    _keys: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    _own: set[str] = field(default_factory=set, repr=False)
    _leaves: dict[tuple[Any, ...], str] = field(default_factory=dict, repr=False)

    def action_for(self, tests: Sequence[Atom]) -> str | None:
        """The action of an earlier branch with exactly these tests, if any."""
        return self._leaves.get(tuple(a.key for a in tests))

    def share(self, action: str, payload: Any) -> None:
        """Let ``action`` also report ``payload`` (a branch with the same tests)."""
        self.shared.setdefault(action, []).append(payload)

    def fits(self, tests: Sequence[Atom]) -> bool:
        """Whether ``tests`` can join this unit without breaking a limit (no change made)."""
        return self._plan(tests) is not None

    def _plan(self, tests: Sequence[Atom]) -> list[tuple[_Node, int, int]] | None:
        """New (node, width, need) along the path if ``tests`` were inserted, or None."""
        if len(self.actions) + 1 > LIMITS["rules"]:
            return None
        new_fields = {self._keys.get((a.field, a.kind)) or (a.field, a.kind) for a in tests if a.field != "$s"}
        if len(self._own | new_fields) > LIMITS["fields"]:
            return None
        path: list[_Node] = []
        node = self._root
        depth = 0
        for atom in tests:
            child = node.children.get(atom.key)
            if child is None:
                break
            path.append(node)
            node = child
            depth += 1
        else:
            return []  # the same tests as an existing rule: nothing new in the trie
        if len(node.children) + 1 > LIMITS["children"]:
            return None
        atom = tests[depth]
        ft = node.tests.get(atom.field)
        if ft is None:
            ft = _FieldTests()
            before = 0
        else:
            before = ft.width()
        ft.add(atom)
        try:
            width = node.width - before + ft.width()
        finally:
            ft.remove(atom)
        below = 1 if depth + 1 < len(tests) else 0  # a new chain: one test per level
        need = _need(width, max([c.need for c in node.children.values()] + [below]))
        plan = [(node, width, need)]
        for parent in reversed(path):
            child_need = max(need, max(c.need for c in parent.children.values()))
            need = _need(parent.width, child_need)
            plan.append((parent, parent.width, need))
        if need > LIMITS["true_at_once"]:
            return None
        return plan

    def add(self, action: str, tests: Sequence[Atom], payload: Any) -> None:
        plan = self._plan(tests)
        if plan is None:
            raise ValueError("these tests do not fit this unit; check fits() first")
        node = self._root
        for atom in tests:
            child = node.children.get(atom.key)
            if child is None:
                child = node.children[atom.key] = _Node()
                node.tests.setdefault(atom.field, _FieldTests()).add(atom)
            node = child
        for n, width, need in plan:
            n.width, n.need = width, need
        # a freshly inserted chain: every new node below the branching point has one child
        node = self._root
        chain: list[_Node] = []
        for atom in tests:
            node = node.children[atom.key]
            chain.append(node)
        for n in reversed(chain):
            if n.children and n.width == 0:
                n.width = 1
                n.need = max(1, max(c.need for c in n.children.values()))
        conds = [self._test(a) for a in tests]
        self.definition[action] = {"all": [{"m": conds[0] if len(conds) == 1 else {"$and": conds}}]}
        self.actions[action] = payload
        self._leaves.setdefault(tuple(a.key for a in tests), action)

    def _key(self, atom: Atom) -> str:
        spec = (atom.field, atom.kind)
        key = self._keys.get(spec)
        if key is None:
            key = self._keys[spec] = f"f{len(self._keys)}"
        if key not in self._own:
            self._own.add(key)
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


def expand(branch: Sequence[Atom], keep_order: bool = False) -> list[list[Atom]]:
    """Rewrite ``in``/``not_in`` into what durable supports: alternatives and conjunctions.

    Tests are put in trie order (``_order``) unless ``keep_order``. Also guards a conjunction
    made only of ``exists: false`` tests, which would match the engine's own state fact and
    re-fire forever.
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
        tests = list(dict.fromkeys(tests)) if keep_order else sorted(dict.fromkeys(tests), key=_order)
        if all(a.op == "exists" and a.value is False for a in tests):
            tests.append(Atom("$s", "exists", False, "number"))
        result.append(tests)
    return result


GUARD_MIN = 12  # distinct thresholds of one field and direction under a node before guards


def _guard(entries: list[tuple[list[Atom], Any]], depth: int = 0) -> None:
    """Insert guard tests (in place) wherever many thresholds share a prefix (see above)."""
    groups: dict[tuple[Any, ...], list[tuple[list[Atom], Any]]] = {}
    for entry in entries:
        if len(entry[0]) > depth:
            groups.setdefault(entry[0][depth].key, []).append(entry)
    atoms = {key: members[0][0][depth] for key, members in groups.items()}
    bands: dict[tuple[str, bool], list[Atom]] = {}
    for a in atoms.values():
        if a.kind == "number" and a.op in ("ge", "gt", "le", "lt") and not isinstance(a.value, bool):
            bands.setdefault((a.field, a.op in ("ge", "gt")), []).append(a)
    guards: dict[tuple[Any, ...], Atom] = {}
    for (fld, lower), band in bands.items():
        values = sorted({a.value for a in band})
        if len(values) < GUARD_MIN:
            continue
        size = max(2, math.isqrt(len(values) - 1) + 1)
        chunks = [values[i:i + size] for i in range(0, len(values), size)]
        edge = {v: (chunk[0] if lower else chunk[-1]) for chunk in chunks for v in chunk}
        for a in band:
            guards[a.key] = Atom(fld, "ge" if lower else "le", edge[a.value], "number")
    for key, members in groups.items():
        guard = guards.get(key)
        if guard is not None and guard.key != key:
            for tests, _ in members:
                tests.insert(depth, guard)
            _guard(members, depth + 2)
        else:
            _guard(members, depth + 1)


def compile_branches(items: Iterable[tuple[Any, Sequence[Atom]]], prefix: str = "u",
                     keep_order: bool = False) -> list[Unit]:
    """Pack ``(payload, branch)`` pairs into units: sorted by tests, filled one by one.

    Branches with exactly the same tests share one action (``Unit.shared``): a fired action
    costs a drain call, whatever it reports.

    ``keep_order`` keeps each branch's tests in the given order (a caller that lays out its
    own trie, e.g. a search tree of ranges); by default they are put in trie order.
    """
    entries = [(tests, payload) for payload, branch in items for tests in expand(branch, keep_order)]
    if not keep_order:
        _guard(entries)
    entries.sort(key=lambda e: [_order(a) for a in e[0]])
    keys: dict[tuple[str, str], str] = {}
    units: list[Unit] = []
    unit: Unit | None = None
    n = 0
    for tests, payload in entries:
        if unit is not None:
            same = unit.action_for(tests)
            if same is not None:  # sorted: equal test lists are adjacent
                unit.share(same, payload)
                continue
        if unit is None or len(unit.actions) >= LIMITS["unit_rules"] or not unit.fits(tests):
            unit = Unit(name=f"{prefix}{len(units)}", definition={}, fields=[], actions={}, _keys=keys)
            units.append(unit)
            if not unit.fits(tests):  # pragma: no cover - a single branch always fits an empty unit
                raise ValueError(f"a rule's tests exceed the engine's limits on their own: {tests}")
        unit.add(f"a{n}", tests, payload)
        n += 1
    for unit in units:
        unit.definition[_JANITOR_KEY] = {"all": [{"m": {"$ex": {_JANITOR_KEY: 1}}}]}
    return units


# -- JSON that durable's C parser reads exactly -------------------------------------

_encode_str = json.encoder.encode_basestring  # what json.dumps(s, ensure_ascii=False) does, in C


def _num(v: float | int) -> str:
    if isinstance(v, int):
        if -MAX_EXACT_INT <= v <= MAX_EXACT_INT:
            return str(v)
        v = float(v)  # int64 saturates silently in the engine; floats compare correctly
    r = repr(v)
    # The C parser rejects exponent form without a '.', which repr gives for 1e-05 or 1e+16.
    return r.replace("e", ".0e", 1) if "e" in r and "." not in r else r


def encode_value(v: Any) -> str:
    """One value as engine-safe JSON (exact numbers, empty lists as ``[""]``)."""
    t = type(v)
    if t is float:
        r = repr(v)
        return r.replace("e", ".0e", 1) if "e" in r and "." not in r else r
    if t is str:
        return _encode_str(v)
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return _num(v)
    if isinstance(v, str):
        return _encode_str(v)
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
