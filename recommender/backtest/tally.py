"""What a backtest counts: per-row tallies that merge in any order.

Everything a worker returns is counts and integer cents, so partial results merge exactly
and in any order (a Dask run equals the in-process run, bit for bit). Costs are rounded to
cents once per recommended gesture (half-even); totals are sums of integers. The reports
built from them are in :mod:`recommender.backtest.report`.

Negative experience (defined here once; the coverage denominator): the case's assessment has
severity >= 1 (see :data:`NEGATIVE_DEFINITION`). It is *covered* when at least one
recommended gesture is of tier ``recover``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Iterable

from ..context import Context
from ..issues import FAMILIES, SIGNALS
from ..results import RecommendationResult

__all__ = [
    "NEGATIVE_DEFINITION",
    "NEGATIVE_REASONS",
    "SEGMENT_DIMENSIONS",
    "TENURE_BANDS",
    "negative_reasons",
    "tenure_band",
    "segments_of",
    "to_cents",
    "Tally",
    "DiffTally",
    "Partial",
]

#: Thresholds of a negative experience (see the module docstring and docs/backtest.md).
NEGATIVE_DEFINITION = (
    "negative = the case's assessment has severity >= 1 (docs/advice.md: a negative issue family, or "
    "a repeat contact, escalation, an upset customer, a delay, a long wait or money at stake); "
    "covered = at least one recommended gesture of tier 'recover'; reasons: the family and the signals"
)
#: Every reason a row can be negative for, in report order: the negative families, then the signals.
NEGATIVE_REASONS = tuple(f.name for f in FAMILIES.values() if f.negative) + SIGNALS
SEGMENT_DIMENSIONS = ("tenure", "channel", "issue")
TENURE_BANDS = ("<1", "1-3", "3-10", "10+", "unknown")


def negative_reasons(assessment: Any) -> tuple[str, ...]:
    """Why an interaction is a negative experience, from the result's assessment (the same
    reading of the case the recommendation was made on): its negative family, then its
    signals. Empty when it is not negative."""
    if assessment is None or not assessment.severity:
        return ()
    family = FAMILIES.get(assessment.family or "")
    return ((assessment.family,) if family is not None and family.negative else ()) + tuple(assessment.signals)


def tenure_band(years: float | None) -> str:
    """``<1``, ``1-3``, ``3-10``, ``10+`` (lower bound inclusive) or ``unknown``."""
    if years is None:
        return "unknown"
    if years < 1:
        return "<1"
    if years < 3:
        return "1-3"
    if years < 10:
        return "3-10"
    return "10+"


def segments_of(ctx: Context) -> tuple[tuple[str, str], ...]:
    return (("tenure", tenure_band(ctx.customer.tenure_years)), ("channel", ctx.interaction.channel or "unknown"),
            ("issue", ctx.interaction.issue))


def to_cents(cost: float) -> int:
    """A cost in integer cents (half-even), the unit every total is summed in."""
    return int(Decimal(repr(float(cost))).scaleb(2).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _money(cents: int) -> float:
    return float(Decimal(cents).scaleb(-2))


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None


# -- tallies (what workers return) ----------------------------------------------------


class _Counts:
    """Counters that workers fill and the parent merges, field by field: numbers added, count
    maps added key by key, sets joined."""

    def merge(self, o: Any) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            mine, theirs = getattr(self, f.name), getattr(o, f.name)
            if isinstance(mine, dict):
                _add_counts(mine, theirs)
            elif isinstance(mine, set):
                mine |= theirs
            else:
                setattr(self, f.name, mine + theirs)


@dataclass
class GestureTally(_Counts):
    fires: int = 0
    cents: int = 0
    unknown_cost: int = 0
    held: dict[str, int] = field(default_factory=dict)  # withheld reason -> rows


@dataclass
class RuleTally(_Counts):
    rows: int = 0       # rows where the rule backed at least one recommended gesture
    held_rows: int = 0  # rows where it matched but every gesture it backed was withheld
    cents: int = 0      # cost of the recommended gestures it backed
    gestures: set[str] = field(default_factory=set)


@dataclass
class TierTally(_Counts):
    fires: int = 0
    rows: int = 0
    cents: int = 0


@dataclass
class SegTally(_Counts):
    rows: int = 0
    with_gesture: int = 0
    fires: int = 0
    cents: int = 0
    negative: int = 0
    covered: int = 0


def _add_counts(into: dict[Any, int], other: dict[Any, int]) -> None:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v


def _merge_map(into: dict[Any, Any], other: dict[Any, Any], factory: Any) -> None:
    for k, v in other.items():
        mine = into.get(k)
        if mine is None:
            into[k] = mine = factory()
        mine.merge(v)


def _better_meta(a: tuple[str, str, str] | None, b: tuple[str, str, str]) -> tuple[str, str, str]:
    """Deterministic choice between two (title, tier, category): known category first, then min."""
    if a is None:
        return b
    return min(a, b, key=lambda m: (m[2] == "", m))


@dataclass
class Tally:
    """Everything one rule set did on a set of rows."""

    rows: int = 0
    rows_with_gesture: int = 0
    fires: int = 0
    cents: int = 0
    unknown_cost: int = 0
    negative: int = 0
    covered: int = 0
    by_reason: dict[str, list[int]] = field(default_factory=dict)  # reason -> [negative, covered]
    gestures: dict[str, GestureTally] = field(default_factory=dict)
    meta: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # gesture -> (title, tier, category)
    rules: dict[str, RuleTally] = field(default_factory=dict)
    tiers: dict[str, TierTally] = field(default_factory=dict)
    segments: dict[tuple[str, str], SegTally] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    missing_inputs: dict[str, int] = field(default_factory=dict)
    plugin_warnings: dict[str, int] = field(default_factory=dict)

    def add(self, result: RecommendationResult, segs: Iterable[tuple[str, str]],
            reasons: tuple[str, ...]) -> tuple[frozenset[str], int]:
        """Count one row; return its recommended gesture ids and their cost in cents."""
        self.rows += 1
        recs = result.recommendations
        row_cents = 0
        backed: dict[str, int] = {}
        tiers_here: set[str] = set()
        for r in recs:
            g = self.gestures.get(r.gesture_id)
            if g is None:
                g = self.gestures[r.gesture_id] = GestureTally()
            self.meta[r.gesture_id] = _better_meta(self.meta.get(r.gesture_id), (r.title, r.tier, r.category))
            g.fires += 1
            c = 0
            if r.cost is None:
                g.unknown_cost += 1
                self.unknown_cost += 1
            else:
                c = to_cents(r.cost)
                g.cents += c
            row_cents += c
            t = self.tiers.get(r.tier)
            if t is None:
                t = self.tiers[r.tier] = TierTally()
            t.fires += 1
            t.cents += c
            tiers_here.add(r.tier)
            for rule_id in dict.fromkeys(m.rule_id for m in r.rules):
                backed[rule_id] = backed.get(rule_id, 0) + c
                self._rule(rule_id).gestures.add(r.gesture_id)
        for tier in tiers_here:
            self.tiers[tier].rows += 1
        for rule_id, c in backed.items():
            rt = self.rules[rule_id]
            rt.rows += 1
            rt.cents += c
        held_rules: set[str] = set()
        for w in (*result.needs_approval, *result.withheld):
            g = self.gestures.get(w.gesture_id)
            if g is None:
                g = self.gestures[w.gesture_id] = GestureTally()
            if w.gesture_id not in self.meta or self.meta[w.gesture_id][2] == "":
                self.meta[w.gesture_id] = _better_meta(self.meta.get(w.gesture_id), (w.title, w.tier, ""))
            g.held[w.reason] = g.held.get(w.reason, 0) + 1
            for rule_id in w.rules:
                if rule_id not in backed:
                    held_rules.add(rule_id)
                    self._rule(rule_id).gestures.add(w.gesture_id)
        for rule_id in held_rules:
            self.rules[rule_id].held_rows += 1
        self.fires += len(recs)
        self.cents += row_cents
        if recs:
            self.rows_with_gesture += 1
        covered = "recover" in tiers_here
        if reasons:
            self.negative += 1
            self.covered += covered
            for reason in reasons:
                pair = self.by_reason.setdefault(reason, [0, 0])
                pair[0] += 1
                pair[1] += covered
        for key in segs:
            s = self.segments.get(key)
            if s is None:
                s = self.segments[key] = SegTally()
            s.rows += 1
            s.with_gesture += bool(recs)
            s.fires += len(recs)
            s.cents += row_cents
            if reasons:
                s.negative += 1
                s.covered += covered
        self.versions[result.ruleset_version] = self.versions.get(result.ruleset_version, 0) + 1
        for path in result.missing_inputs:
            self.missing_inputs[path] = self.missing_inputs.get(path, 0) + 1
        for pw in result.warnings:
            where = f"{pw.plugin}: {pw.hook}"
            self.plugin_warnings[where] = self.plugin_warnings.get(where, 0) + 1
        return frozenset(r.gesture_id for r in recs), row_cents

    def _rule(self, rule_id: str) -> RuleTally:
        rt = self.rules.get(rule_id)
        if rt is None:
            rt = self.rules[rule_id] = RuleTally()
        return rt

    def merge(self, o: "Tally") -> None:
        self.rows += o.rows
        self.rows_with_gesture += o.rows_with_gesture
        self.fires += o.fires
        self.cents += o.cents
        self.unknown_cost += o.unknown_cost
        self.negative += o.negative
        self.covered += o.covered
        for reason, (neg, cov) in o.by_reason.items():
            pair = self.by_reason.setdefault(reason, [0, 0])
            pair[0] += neg
            pair[1] += cov
        _merge_map(self.gestures, o.gestures, GestureTally)
        for gid, m in o.meta.items():
            self.meta[gid] = _better_meta(self.meta.get(gid), m)
        _merge_map(self.rules, o.rules, RuleTally)
        _merge_map(self.tiers, o.tiers, TierTally)
        _merge_map(self.segments, o.segments, SegTally)
        _add_counts(self.versions, o.versions)
        _add_counts(self.missing_inputs, o.missing_inputs)
        _add_counts(self.plugin_warnings, o.plugin_warnings)


@dataclass
class DiffTally:
    """Row-by-row differences between rule set A and rule set B."""

    rows_changed: int = 0
    gained: dict[str, int] = field(default_factory=dict)  # rows where B recommends it and A does not
    lost: dict[str, int] = field(default_factory=dict)    # rows where A recommends it and B does not

    def add(self, a: frozenset[str], b: frozenset[str]) -> None:
        if a == b:
            return
        self.rows_changed += 1
        for g in b - a:
            self.gained[g] = self.gained.get(g, 0) + 1
        for g in a - b:
            self.lost[g] = self.lost.get(g, 0) + 1

    def merge(self, o: "DiffTally") -> None:
        self.rows_changed += o.rows_changed
        _add_counts(self.gained, o.gained)
        _add_counts(self.lost, o.lost)


@dataclass
class Partial:
    """What one chunk of history produced; :meth:`merge` is commutative and associative."""

    rows_read: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)
    first: datetime | None = None
    last: datetime | None = None
    tallies: list[Tally] = field(default_factory=list)
    diff: DiffTally | None = None

    def see_time(self, when: datetime) -> None:
        if self.first is None or when < self.first:
            self.first = when
        if self.last is None or when > self.last:
            self.last = when

    def merge(self, o: "Partial") -> "Partial":
        self.rows_read += o.rows_read
        self.bad.extend(o.bad)
        for when in (o.first, o.last):
            if when is not None:
                self.see_time(when)
        if not self.tallies:
            self.tallies = [Tally() for _ in o.tallies]
        for mine, theirs in zip(self.tallies, o.tallies, strict=True):
            mine.merge(theirs)
        if o.diff is not None:
            if self.diff is None:
                self.diff = DiffTally()
            self.diff.merge(o.diff)
        return self
