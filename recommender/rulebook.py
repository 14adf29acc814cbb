"""A rulebook: the packs in force for one business, checked together and compiled once.

Everything derivable from the packs is computed here at load time (gesture index, field
getters, the compiled matcher, the version hash), so a request does no set-up work.
"""

from __future__ import annotations

import hashlib
import operator
import threading
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable, Sequence

from .conditions import Atom, ValueKind, did_you_mean
from .context import Context, field_kind, field_nullable
from .engine import Matcher
from .cache import compile_units  # compile_branches, kept on disk (recommender.cache)
from .errors import PackProblem, RulePackError
from .explain import BranchText, ScriptText, SharedParts, rule_texts, script_texts
from .packs import Gesture, Pack, Rule, located, rulebook_problems
from .templates import placeholders

__all__ = ["RuleBook", "getter"]

_OPEN = ("customer.preferences.", "customer.attributes.", "interaction.attributes.")


def _align_kinds(rule: Rule, kinds: dict[str, ValueKind]) -> Rule:
    if not any(a.op == "exists" and a.field in kinds and a.kind != kinds[a.field] for b in rule.branches for a in b):
        return rule
    branches = tuple(
        tuple(replace(a, kind=kinds[a.field]) if a.op == "exists" and a.field in kinds else a for a in b)
        for b in rule.branches
    )
    return rule.model_copy(update={"branches": branches})


@dataclass(frozen=True, eq=False)  # hashed by identity: a key of the shared-parts memo
class _Absence:
    """A nullable field's missing-inputs check (see :meth:`RuleBook.blocked_by_absence`)."""

    #: "the other tests of each branch that tests the field" (None: no such branch)
    rest: Matcher | None
    #: the row positions ``rest`` reads, in its field order
    positions: list[int]
    #: rules that test only this field: blocked whenever it is absent
    always: frozenset[int]
    #: sets of row positions (bit masks), one of which must be all present for ``rest`` to
    #: be worth asking (None: always ask)
    needs: tuple[int, ...] | None
    #: whether some of those positions hold lists (a memo key takes them as tuples)
    lists: bool = False

    def fired(self, values: list[Any]) -> tuple[int, ...]:
        assert self.rest is not None
        return tuple(self.rest.match_row(values)[0])

    def fired_shared(self, values: list[Any], shared: SharedParts) -> tuple[int, ...]:
        """:meth:`fired`, kept in ``shared`` per values (what fires depends on nothing else)."""
        key = [tuple(v) if type(v) is list else v for v in values] if self.lists else values
        return shared.get(self, key, partial(self.fired, values))


def getter(path: str) -> Callable[[Context], Any]:
    """A fast accessor for a dotted context path (missing -> None)."""
    for prefix in _OPEN:
        if path.startswith(prefix):
            key = path[len(prefix):]
            get_map = operator.attrgetter(prefix[:-1])
            return lambda ctx: get_map(ctx).get(key)
    return operator.attrgetter(path)


@dataclass
class RuleBook:
    packs: list[Pack]
    gestures: dict[str, Gesture]
    rules: list[Rule]
    version: str
    matcher: Matcher
    getters: dict[str, Callable[[Context], Any]]
    #: positions in ``matcher.fields`` of fields a context can lack (absence is worth reporting)
    nullable_positions: list[int] = field(default_factory=list)
    #: each rule's fixed explanation wording per branch, by rule id (see :func:`explain.rule_texts`)
    texts: dict[str, tuple[BranchText, ...]] = field(default_factory=dict)
    #: each gesture's script, by gesture id
    scripts: dict[str, ScriptText] = field(default_factory=dict)
    #: explanation parts shared between requests (see :class:`explain.BranchText`)
    shared: SharedParts | None = field(default_factory=SharedParts, repr=False)
    _row: Callable[[Context], Sequence[Any]] | None = field(default=None, repr=False)
    _atoms: Matcher | None = field(default=None, repr=False)
    _absence: dict[str, _Absence] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(cls, packs: Sequence[Pack]) -> "RuleBook":
        """Check packs together (ids, references, field kinds) and compile them."""
        problems: list[PackProblem] = rulebook_problems(packs)
        gestures: dict[str, Gesture] = {}
        for pack in packs:
            for g in pack.gestures:
                if g.id in gestures:
                    other = gestures[g.id]
                    problems.append(PackProblem(pack.source, g.line, f"gestures.{g.id}",
                                                f"gesture id {g.id!r} is defined twice: in {located(other)} and in {located(g)}",
                                                "duplicate"))
                else:
                    gestures[g.id] = g
        rules: list[Rule] = []
        seen_rules: dict[str, str] = {}
        kinds: dict[str, tuple[ValueKind, str]] = {}
        for pack in packs:
            for rule in pack.rules:
                if rule.id in seen_rules:
                    problems.append(PackProblem(pack.source, rule.line, f"rules.{rule.id}",
                                                f"rule id {rule.id!r} is defined twice: in {seen_rules[rule.id]} and in {located(rule)}",
                                                "duplicate"))
                    continue
                seen_rules[rule.id] = located(rule)
                for gid in rule.gesture_ids:
                    if gid not in gestures:
                        problems.append(PackProblem(pack.source, rule.then_line or rule.line, f"rules.{rule.id}.then",
                                                    f"unknown gesture {gid!r}{did_you_mean(gid, gestures)}"))
                for branch in rule.branches:
                    for atom in branch:
                        if atom.op == "exists":
                            continue
                        where = f"{pack.source}:{atom.line or rule.line}"
                        prev = kinds.setdefault(atom.field, (atom.kind, where))
                        if prev[0] != atom.kind:
                            problems.append(PackProblem(pack.source, atom.line or rule.line, f"rules.{rule.id}.when",
                                                        f"{atom.field} is compared as a {atom.kind} here but as a {prev[0]} at {prev[1]}"))
                rules.append(rule)
        for g in gestures.values():
            for other_id in g.conflicts_with:
                if other_id not in gestures:
                    problems.append(PackProblem(g.source, g.line, f"gestures.{g.id}.conflicts_with",
                                                f"unknown gesture {other_id!r}{did_you_mean(other_id, gestures)}"))
        if problems:
            raise RulePackError(problems)
        # `exists` on a key is sent with the kind its typed tests use, so test order never matters.
        rules = [_align_kinds(rule, {f: k for f, (k, _) in kinds.items()}) for rule in rules]
        items = [((ri, bi), branch) for ri, rule in enumerate(rules) for bi, branch in enumerate(rule.branches)]
        matcher = Matcher(compile_units(items, "r"))
        digest = hashlib.sha256()
        for pack in sorted(packs, key=lambda p: (p.name, p.source)):
            digest.update(f"{pack.name}@{pack.version}:{pack.digest};".encode())
        paths = set(matcher.fields)
        for rule in rules:
            paths.update(a.field for b in rule.branches for a in b)
        for g in gestures.values():
            paths.update(g.cost_fields())
            paths.update(p.path for p in placeholders(g.script))
        return cls(
            packs=list(packs), gestures=gestures, rules=rules, version=digest.hexdigest()[:12],
            matcher=matcher, getters={p: getter(p) for p in sorted(paths) if p != "$s"},
            nullable_positions=[i for i, f in enumerate(matcher.fields) if field_nullable(f)],
            texts=rule_texts(rules, matcher.fields), scripts=script_texts(gestures.values()),
        )

    def read_row(self, ctx: Context) -> Sequence[Any]:
        """The values of ``matcher.fields`` for ``ctx``, read in one pass (None when absent)."""
        if self._row is None:
            fields = self.matcher.fields
            if fields and not any(f.startswith(_OPEN) for f in fields):
                if len(fields) == 1:
                    one = operator.attrgetter(fields[0])
                    self._row = lambda c: (one(c),)
                else:
                    self._row = operator.attrgetter(*fields)  # one C call for all plain paths
            else:
                getters = [self.getters[f] for f in fields]
                self._row = lambda c: [g(c) for g in getters]
        return self._row(ctx)

    def value(self, ctx: Context, path: str) -> Any:
        get = self.getters.get(path)
        return get(ctx) if get is not None else ctx.get(path)

    @property
    def explains_ready(self) -> bool:
        """Whether :meth:`atom_truth`'s matcher is compiled (explaining then starts at once)."""
        return self._atoms is not None

    def atom_truth(self, ctx: Context) -> set[tuple[Any, ...]]:
        """Keys of every rule test that holds for ``ctx``, evaluated by durable-rules.

        Compiled lazily (only ``explain`` needs it): each distinct test becomes its own
        single-condition rule.
        """
        if self._atoms is None:
            atoms: dict[tuple[Any, ...], Atom] = {}
            for rule in self.rules:
                for branch in rule.branches:
                    for atom in branch:
                        atoms.setdefault(atom.key, atom)
            self._atoms = Matcher(compile_units(((k, (a,)) for k, a in atoms.items()), "t"))
        fired, _ = self._atoms.match(lambda p: self.value(ctx, p))
        return set(fired)

    def blocked_by_absence(self, row: Sequence[Any], matched: set[int]) -> dict[str, int]:
        """Absent fields that alone kept a rule from matching, each with how many rules it
        kept from matching: giving them could change the answer, the most-counted most.

        ``row`` is :meth:`read_row`'s. Evaluated by durable-rules, one lazily compiled matcher
        per nullable field ``f``, run only when ``f`` is absent: for each branch testing ``f``,
        "the branch's other tests hold". A context usually lacks one or two fields, so this
        asserts against a small fraction of the rules instead of variants of all of them.
        The matcher is not even asked when each of its branches reads another absent field
        (a test on a missing field never holds, except ``exists: false``), and what it fires
        for given values is kept in the rulebook's memo of shared parts (:attr:`shared`).
        """
        out: dict[str, int] = {}
        absent = [i for i in self.nullable_positions if row[i] is None]
        if not absent:
            return out
        gone = 0  # a bit per absent position
        for i in absent:
            gone |= 1 << i
        fields, shared = self.matcher.fields, self.shared
        for i in absent:
            f = fields[i]
            check = self._absence.get(f)
            if check is None:
                check = self._absence_matcher(f)
            blocked = len(check.always - matched)
            if check.rest is None:
                if blocked:
                    out[f] = blocked
                continue
            if check.needs is not None:  # ask only if some variant's other fields are all present
                for need in check.needs:
                    if not need & gone:
                        break
                else:
                    if blocked:
                        out[f] = blocked
                    continue
            values = [row[p] for p in check.positions]
            fired = check.fired(values) if shared is None else check.fired_shared(values, shared)
            blocked += len({ri for ri in fired if ri not in matched} - check.always)
            if blocked:
                out[f] = blocked
        return out

    def _absence_matcher(self, f: str) -> _Absence:
        with self._lock:
            built = self._absence.get(f)
            if built is not None:
                return built
            index = {p: i for i, p in enumerate(self.matcher.fields)}
            items: dict[tuple[Any, ...], tuple[int, tuple[Atom, ...]]] = {}
            always: set[int] = set()
            needs: set[frozenset[int]] = set()
            for ri, rule in enumerate(self.rules):
                for branch in rule.branches:
                    if all(a.field != f for a in branch):
                        continue
                    others = tuple(a for a in branch if a.field != f)
                    if not others:  # only tests on f: blocked whenever f is absent
                        always.add(ri)
                    else:
                        items.setdefault((ri, frozenset(a.key for a in others)), (ri, others))
                        # A test on a missing field never holds, except `exists: false`.
                        needs.add(frozenset(index[a.field] for a in others
                                            if not (a.op == "exists" and a.value is False)))
            rest = Matcher(compile_units(items.values(), "a")) if items else None
            positions = [index[p] for p in rest.fields] if rest is not None else []
            # (None: always ask; also when there are too many sets for the check to pay)
            minimal = None if frozenset() in needs or len(needs) > 32 else tuple(
                sum(1 << p for p in n) for n in needs if not any(o < n for o in needs))
            lists = rest is not None and any(field_kind(p) == "list" for p in rest.fields)
            built = self._absence[f] = _Absence(rest, positions, frozenset(always), minimal, lists)
            return built

    def retire(self) -> None:
        self.matcher.retire()
        lazies = [self._atoms, *(check.rest for check in self._absence.values())]
        for lazy in lazies:
            if lazy is not None:
                lazy.retire()
