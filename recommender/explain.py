"""Turn engine matches into explanations people can act on.

Builders return plain dicts: the whole result is validated once, in Rust, when the core
builds the final :class:`~recommender.results.RecommendationResult` (much cheaper than a
Python-level model per condition). Rule matches are the exception: a branch with given
values always reads the same, so each rulebook keeps the (frozen) :class:`RuleMatch`, with
its frozen :class:`ConditionResult` tuple, per branch and values, and shares it between
requests and results (:class:`SharedParts`: bounded, and standing aside while values do
not repeat). Lists in them (a test's ``in`` values, a list field's actual value) are tuples,
so a shared part cannot be changed by anyone it is handed to, plugins included.

Each recommendation carries the rules that chose it, their tests with the actual values,
the filled customer-facing script and a one-line reason for the agent. Everything in an
explanation that does not depend on the context (a test's wording, a rule's header, a
script without placeholders) is worked out once per rulebook (:func:`rule_texts`), so a
request only reads values and joins strings. ``near_misses`` lists rules that failed on
exactly one test, with what would flip them; which tests held is decided by durable-rules
(see :meth:`RuleBook.atom_truth`), not re-evaluated here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from .conditions import Atom
from .context import Context
from .results import ConditionResult, RuleMatch
from .templates import format_value, placeholders, render

if TYPE_CHECKING:
    from .packs import Gesture, Rule
    from .ranking import Candidate
    from .rulebook import RuleBook

__all__ = ["TestText", "BranchText", "ScriptText", "SharedParts", "rule_texts", "script_texts",
           "condition_result", "recommendation", "withheld", "near_misses", "inputs_of"]

_SYM = {"eq": "=", "ne": "≠", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "in": "in", "not_in": "not in",
        "contains": "contains", "not_contains": "does not contain"}


def _show(v: Any) -> str:
    t = type(v)
    if t is str:
        return v
    if t is float:
        return format_value(v)
    if v == [] or v == {}:
        return "empty"
    if t is tuple:
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return format_value(v)




@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: a cache key
class TestText:
    """One test's fixed wording: ``<field> is `` + the actual value + `` (needs >= 2)``."""

    field: str
    op: str
    value: Any     # a list of values is a tuple, like everything in a shared part
    prefix: str
    suffix: str
    unknown: str   # what an absent value reads as
    pos: int       # index of the field in the rulebook's row, -1 when not in it
    seq: bool      # the field's value may be a list (kept as a tuple)

    @classmethod
    def of(cls, atom: Atom, pos: int = -1) -> "TestText":
        if atom.op == "exists":
            suffix, unknown = f" (needs it {'present' if atom.value else 'absent'})", "absent"
        else:
            suffix, unknown = f" (needs {_SYM[atom.op]} {_show(atom.value)})", "missing"
        return cls(atom.field, atom.op, atom.value, f"{atom.field} is ", suffix, unknown, pos,
                   atom.kind in ("list", "any"))

    def result(self, actual: Any) -> dict[str, Any]:
        text = self.prefix + (self.unknown if actual is None else _show(actual)) + self.suffix
        return {"field": self.field, "op": self.op, "value": self.value,
                "actual": tuple(actual) if actual.__class__ is list else actual, "text": text}

    def condition(self, actual: Any) -> ConditionResult:
        return ConditionResult.model_validate(self.result(actual))


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: a cache key
class BranchText:
    """One branch of a rule: the rule's fixed header and the wording of the branch's tests."""

    header: dict[str, Any]  # rule_id, pack, priority, because
    tests: tuple[TestText, ...]
    seq: bool  # a test's value may be a list: its key is the list as a tuple

    def match(self, values: list[Any], shared: SharedParts | None) -> tuple[RuleMatch, str]:
        """The rule match for the tests' ``values``, and its tests' texts joined (for the reason)."""
        key = [tuple(v) if v.__class__ is list else v for v in values] if self.seq else values
        return _shared(shared, self, key, lambda: self._match(values))

    def _match(self, values: list[Any]) -> tuple[RuleMatch, str]:
        conds = tuple([t.condition(v) for t, v in zip(self.tests, values)])
        return RuleMatch.model_validate({**self.header, "conditions": conds}), "; ".join([c.text for c in conds])


class SharedParts:
    """Explanation parts shared between requests: a bounded memo of immutable results.

    It pays when values repeat (issues, channels, tiers, round amounts) and costs when they
    do not: each miss keeps a new object alive for the cyclic collector to walk. So once
    full it watches its own hit rate over windows of ``window`` look-ups (each begun full)
    and, below half, empties itself and stands aside (every part made afresh) for ``rest``
    windows before it tries again. Full, it evicts the newest entry, which keeps a cyclic
    workload's older entries hitting. At most ``size`` parts (a rule match with its
    conditions: ~3 KB). Thread-safe enough: dict operations are atomic, and a lost update
    only costs a miss.
    """

    def __init__(self, size: int = 4096, window: int = 2048, rest: int = 16):
        self.size, self.window, self.rest = size, window, rest
        self._parts: dict[Any, Any] = {}
        self._seen = self._hits = 0
        self._full = False  # full when the current window began
        self._idle = 0  # look-ups left to make afresh before trying again

    def __len__(self) -> int:
        return len(self._parts)

    def get(self, owner: Any, values: Sequence[Any], make: Callable[[], Any]) -> Any:
        """The part ``owner`` (a branch or a script) makes from ``values``; their classes are
        part of the key, since 1, 1.0 and True read differently."""
        if self._idle:
            self._idle -= 1
            return make()
        key = (owner, *values, *[v.__class__ for v in values])
        try:
            hit = self._parts.get(key)
        except TypeError:  # an unhashable value (a list): made afresh
            return make()
        self._seen += 1
        if hit is None:
            if len(self._parts) >= self.size:
                try:
                    self._parts.popitem()
                except KeyError:  # another thread emptied it meanwhile
                    pass
            hit = self._parts[key] = make()
        else:
            self._hits += 1
        if self._seen >= self.window:
            # judged only over windows that began full: filling up always misses
            if self._full and 2 * self._hits < self._seen:
                self._idle = self.window * self.rest
                self._parts.clear()  # what did not pay is not kept either
            self._seen = self._hits = 0
            self._full = len(self._parts) >= self.size
        return hit


def _shared(shared: SharedParts | None, owner: Any, values: Sequence[Any], make: Callable[[], Any]) -> Any:
    return make() if shared is None else shared.get(owner, values, make)


def script_texts(gestures: Iterable["Gesture"]) -> dict[str, ScriptText]:
    """Every gesture's script, by gesture id."""
    return {g.id: ScriptText.of(g.script) for g in gestures}


def rule_texts(rules: Sequence["Rule"], fields: Sequence[str]) -> dict[str, tuple[BranchText, ...]]:
    """Every rule's wording by rule id, a :class:`BranchText` per branch, with tests pointing at
    their field's place in ``fields``."""
    pos = {f: i for i, f in enumerate(fields)}
    def branch(r: "Rule", atoms: Sequence[Atom]) -> BranchText:
        tests = tuple(TestText.of(a, pos.get(a.field, -1)) for a in atoms)
        return BranchText({"rule_id": r.id, "pack": r.label, "priority": r.priority, "because": r.because},
                          tests, any(t.seq for t in tests))

    return {r.id: tuple(branch(r, b) for b in r.branches) for r in rules}


def condition_result(atom: Atom, actual: Any) -> dict[str, Any]:
    return TestText.of(atom).result(actual)


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: a cache key
class ScriptText:
    """A gesture's customer-facing script, with the context paths its placeholders read."""

    template: str
    paths: tuple[str, ...]
    fixed: str | None  # the text of a script without placeholders

    @classmethod
    def of(cls, template: str) -> "ScriptText":
        paths = tuple(dict.fromkeys(p.path for p in placeholders(template)))
        return cls(template, paths, None if paths else render(template, lambda path: None)[0])

    def fill(self, values: list[Any], shared: SharedParts | None) -> tuple[str, list[str]]:
        """The filled text for the placeholders' ``values`` (in ``paths`` order), and the
        paths that had no value and no fallback."""
        if self.fixed is not None:
            return self.fixed, []
        return _shared(shared, self, values, lambda: render(self.template, dict(zip(self.paths, values)).get))


def recommendation(cand: "Candidate", ctx: Context, book: "RuleBook", row: Sequence[Any],
                   missing: dict[str, int]) -> dict[str, Any]:
    """The explained recommendation for a chosen candidate; ``row`` is ``book.read_row(ctx)``."""
    g = cand.gesture
    texts = book.texts
    shared = book.shared
    rules: list[RuleMatch] = []
    for rule, bi in cand.matches:
        branch = texts[rule.id][bi]
        match, _ = branch.match([row[t.pos] if t.pos >= 0 else book.value(ctx, t.field) for t in branch.tests],
                                shared)
        rules.append(match)
    # The reason is what a person reads: the principle and the gesture's note. The rule trace
    # (each test with its actual value) stays in ``rules`` for whoever asks why.
    reason = rules[0].because
    text = book.scripts[g.id]
    script, unfilled = text.fill([book.value(ctx, p) for p in text.paths], shared)
    for path in unfilled:
        missing.setdefault(path, 0)
    if g.agent_note:
        reason = f"{reason} {g.agent_note}"
    if cand.notes:
        reason = f"{reason} Note: {' '.join(cand.notes)}"
    due = None
    if g.follow_up_days is not None and ctx.interaction.occurred_at is not None:
        due = (ctx.interaction.occurred_at + timedelta(days=g.follow_up_days)).date()
    return {"gesture_id": g.id, "title": g.title, "category": g.category, "tier": g.tier, "cost": cand.cost,
            "score": cand.score, "authority": g.authority, "script": script,
            "agent_reason": reason, "rules": rules, "follow_up_days": g.follow_up_days, "due_date": due,
            "source": g.label}


def withheld(cand: "Candidate", reason: str, detail: str, available_on: Any = None) -> dict[str, Any]:
    g = cand.gesture
    return {"gesture_id": g.id, "title": g.title, "tier": g.tier, "cost": cand.cost, "score": cand.score,
            "reason": reason, "detail": detail, "rules": [r.id for r, _ in cand.matches], "available_on": available_on}


#: Derived fields, by the inputs a caller gives to derive them: their absence is what to ask
#: (``missing_inputs``, a near miss's hint). Family and severity come from the issue code.
_INPUTS = {"customer.loyal": ("customer.tenure_years", "customer.visits"),
           "customer.high_value": ("customer.lifetime_value",),
           "customer.returning": ("customer.visits",),
           "customer.is_new": ("customer.tenure_years",),
           "interaction.long_wait": ("interaction.wait_minutes",),
           "interaction.family": (), "interaction.severity": ()}


def inputs_of(field: str) -> tuple[str, ...]:
    """The fields to ask for when ``field`` is unknown: itself, or the inputs it is derived
    from (none for family and severity, which the issue code sets)."""
    return _INPUTS.get(field, (field,))


def _hint(atom: Atom, actual: Any) -> str:
    if atom.op == "exists":
        return f"would qualify if {atom.field} were {'given' if atom.value else 'absent'}"
    if actual is None:
        inputs = inputs_of(atom.field)
        if inputs and inputs != (atom.field,):  # a derived fact: name what to ask for
            return (f"would qualify if {' or '.join(inputs)} were known and made {atom.field} "
                    f"{_SYM[atom.op]} {_show(atom.value)}")
        return f"would qualify if {atom.field} were known and {_SYM[atom.op]} {_show(atom.value)}"
    return f"would qualify at {atom.field} {_SYM[atom.op]} {_show(atom.value)}; is {_show(actual)}"


#: Fields an agent can change in the conversation: ask the customer, or record a consent.
_CONSENT = ("customer.consents",)
_ASK = ("customer.life_events", "customer.interests", "customer.preferences.", "customer.name", "customer.tier")
#: Integration data (open maps a system fills in), and signals of a failure: when the context
#: lacks them on a case where nothing is known to have gone wrong, they come after
#: consents and questions.
_SYSTEM = ("interaction.attributes.", "customer.attributes.")
_FAILURE_SIGNALS = ("interaction.repeat_issue", "interaction.repeat_count", "interaction.escalated",
                    "interaction.delay_days", "interaction.wait_minutes", "interaction.long_wait",
                    "interaction.sentiment", "interaction.amount")
_CHANGE_ORDER = {"missing": 0, "consent": 0, "ask": 0, "fixed": 4}  # what can change first, by priority


def change_kind(atom: Atom, actual: Any) -> str:
    """What it takes to flip a failed test: a consent, a question the agent can ask, data the
    context lacks, or a fact of the case that no one can change now."""
    if atom.field in _CONSENT:
        return "consent"
    if atom.field.startswith(_ASK):
        return "ask"
    if actual is None or (atom.op == "exists" and atom.value):
        return "missing"
    return "fixed"


def asked_late(field: str, ctx: Context) -> bool:
    """Whether an absent field is worth asking about only after the rest: system data (open
    maps), or a signal of a failure on a case where nothing is known to have gone wrong."""
    return field.startswith(_SYSTEM) or (field in _FAILURE_SIGNALS and not ctx.interaction.severity)


def _rank(kind: str, atom: Atom, ctx: Context) -> int:
    if kind == "missing" and asked_late(atom.field, ctx):
        return 3
    return _CHANGE_ORDER[kind]


def near_misses(ctx: Context, book: "RuleBook", matched: set[str], truth: set[Any],
                full: bool = True) -> list[dict[str, Any]]:
    """Rules that failed on exactly one test, in the order an agent can act on them: missing
    data, a consent, a question to ask, then fixed facts; higher priority first within each.
    Without ``full``, one near miss per failed field (the highest in that order)."""
    out: list[tuple[tuple[int, int, str], dict[str, Any]]] = []
    for rule in book.rules:
        if rule.id in matched:
            continue
        best: Atom | None = None
        for branch in rule.branches:
            failed = [a for a in branch if a.key not in truth]
            if len(failed) == 1:
                best = failed[0]
                break
        if best is None:
            continue
        actual = book.value(ctx, best.field)
        kind = change_kind(best, actual)
        out.append(((_rank(kind, best, ctx), -rule.priority, rule.id), {
            "rule_id": rule.id, "pack": rule.label or rule.source, "gestures": rule.gesture_ids,
            "because": rule.because, "failed": condition_result(best, actual), "hint": _hint(best, actual),
            "change": kind}))
    out.sort(key=lambda item: item[0])
    misses = [miss for _, miss in out]
    if not full:
        first: dict[str, dict[str, Any]] = {}
        for m in misses:
            first.setdefault(m["failed"]["field"], m)
        misses = list(first.values())
    return misses
