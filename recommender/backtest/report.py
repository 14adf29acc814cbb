"""Aggregation: per-row tallies that merge in any order, and the pydantic report models.

Everything a worker returns is counts and integer cents, so partial results merge exactly
and in any order (a Dask run equals the in-process run, bit for bit). Costs are rounded to
cents once per recommended gesture (half-even); totals are sums of integers.

Negative experience (defined here once; the coverage denominator): an interaction with
``interaction.repeat_issue`` true, or ``wait_minutes >= 20``, or ``delay_days >= 1``, or
``sentiment <= -0.3``. It is *covered* when at least one recommended gesture is of tier
``recover``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..context import Context
from ..issues import FAMILIES, SIGNALS
from ..packs import TIERS
from ..results import RecommendationResult

__all__ = [
    "NEGATIVE_DEFINITION",
    "SEGMENT_DIMENSIONS",
    "negative_reasons",
    "tenure_band",
    "segments_of",
    "to_cents",
    "Tally",
    "DiffTally",
    "Partial",
    "BacktestReport",
    "RunReport",
    "CompareReport",
    "GestureStats",
    "RuleStats",
    "TierStats",
    "SegmentStats",
    "Coverage",
    "BadRow",
    "build_report",
    "ReplayReport",
    "build_replay_report",
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


@dataclass
class GestureTally:
    fires: int = 0
    cents: int = 0
    unknown_cost: int = 0
    held: dict[str, int] = field(default_factory=dict)  # withheld reason -> rows

    def merge(self, o: "GestureTally") -> None:
        self.fires += o.fires
        self.cents += o.cents
        self.unknown_cost += o.unknown_cost
        _add_counts(self.held, o.held)


@dataclass
class RuleTally:
    rows: int = 0       # rows where the rule backed at least one recommended gesture
    held_rows: int = 0  # rows where it matched but every gesture it backed was withheld
    cents: int = 0      # cost of the recommended gestures it backed
    gestures: set[str] = field(default_factory=set)

    def merge(self, o: "RuleTally") -> None:
        self.rows += o.rows
        self.held_rows += o.held_rows
        self.cents += o.cents
        self.gestures |= o.gestures


@dataclass
class TierTally:
    fires: int = 0
    rows: int = 0
    cents: int = 0

    def merge(self, o: "TierTally") -> None:
        self.fires += o.fires
        self.rows += o.rows
        self.cents += o.cents


@dataclass
class SegTally:
    rows: int = 0
    with_gesture: int = 0
    fires: int = 0
    cents: int = 0
    negative: int = 0
    covered: int = 0

    def merge(self, o: "SegTally") -> None:
        self.rows += o.rows
        self.with_gesture += o.with_gesture
        self.fires += o.fires
        self.cents += o.cents
        self.negative += o.negative
        self.covered += o.covered


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


# -- report models --------------------------------------------------------------------


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BadRow(_M):
    line: int = Field(description="1-based line number in the history file (CSV: where the record starts)")
    reason: str


class GestureStats(_M):
    gesture_id: str
    title: str
    tier: str
    category: str
    fires: int = Field(description="Rows where the gesture was recommended")
    share: float | None = Field(description="fires / rows")
    cost_total: float
    cost_cents: int
    cost_avg: float | None = Field(description="Average cost per recommendation with a known cost")
    cost_unknown: int = Field(description="Recommendations whose cost came from a missing field")
    held: dict[str, int] = Field(default_factory=dict, description="Rows where it matched but was withheld, by reason")


class RuleStats(_M):
    rule_id: str
    fires: int = Field(description="Rows where the rule backed at least one recommended gesture")
    held_only: int = Field(description="Rows where it matched but every gesture it backed was withheld")
    share: float | None
    cost_total: float = Field(description="Cost of the recommended gestures it backed "
                                          "(a gesture backed by several rules counts for each)")
    gestures: list[str]


class TierStats(_M):
    tier: str
    fires: int
    rows: int = Field(description="Rows with at least one gesture of this tier")
    share: float | None
    cost_total: float
    cost_avg: float | None


class SegmentStats(_M):
    dimension: Literal["tenure", "channel", "issue"]
    value: str
    rows: int
    rows_with_gesture: int
    fires: int
    cost_total: float
    cost_avg_per_row: float | None
    negative: int
    covered: int
    coverage: float | None


class ReasonCoverage(_M):
    reason: str
    negative: int
    covered: int
    coverage: float | None


class Coverage(_M):
    definition: str = NEGATIVE_DEFINITION
    negative: int = Field(description="Rows that are negative experiences")
    covered: int = Field(description="Negative rows that got at least one 'recover' gesture")
    coverage: float | None = Field(description="covered / negative (null when there were none)")
    by_reason: list[ReasonCoverage]


class RunReport(_M):
    """What one rule set did on the history."""

    label: str
    rules: list[str] = Field(description="Rule pack paths; empty for the shipped packs")
    ruleset_versions: dict[str, int] = Field(description="Rulebook version -> rows (several when tenants differ)")
    rows: int
    rows_with_gesture: int
    fires: int
    cost_total: float
    cost_cents: int
    cost_avg_per_row: float | None
    cost_unknown: int
    gestures: list[GestureStats]
    rules_fired: list[RuleStats]
    tiers: list[TierStats]
    segments: list[SegmentStats]
    coverage: Coverage
    missing_inputs: dict[str, int] = Field(default_factory=dict, description="Fields rules asked for that rows lacked")
    plugin_warnings: dict[str, int] = Field(default_factory=dict)


class GestureDelta(_M):
    gesture_id: str
    title: str
    tier: str
    fires_a: int
    fires_b: int
    fires_delta: int
    cost_a: float
    cost_b: float
    cost_delta: float
    rows_gained: int = Field(description="Rows where B recommends it and A does not")
    rows_lost: int = Field(description="Rows where A recommends it and B does not")


class CompareReport(_M):
    a: str
    b: str
    rows: int
    rows_changed: int
    share_changed: float | None
    gestures_gained: list[str] = Field(description="Gestures B recommends somewhere and A never does")
    gestures_lost: list[str] = Field(description="Gestures A recommends somewhere and B never does")
    gestures: list[GestureDelta]
    cost_a: float
    cost_b: float
    cost_delta: float
    coverage_a: float | None
    coverage_b: float | None
    coverage_delta: float | None


class Timing(_M):
    engine: str
    workers: int
    seconds: float
    rows_per_second: float | None


class BacktestReport(_M):
    """The full backtest: ``run`` is rule set A; ``other`` and ``compare`` are set with --compare."""

    history: str
    format: Literal["jsonl", "csv"]
    mapping: str | None = None
    rows_read: int
    rows_ok: int
    rows_skipped: int
    bad_rows: list[BadRow]
    period_start: datetime | None = None
    period_end: datetime | None = None
    run: RunReport
    other: RunReport | None = None
    compare: CompareReport | None = None
    timing: Timing | None = Field(default=None, description="Not part of the result: differs run to run")


# -- building -------------------------------------------------------------------------


def run_report(t: Tally, label: str, rules: list[str]) -> RunReport:
    gestures = []
    for gid, g in t.gestures.items():
        title, tier, category = t.meta.get(gid, (gid, "", ""))
        known = g.fires - g.unknown_cost
        gestures.append(GestureStats(
            gesture_id=gid, title=title, tier=tier, category=category, fires=g.fires, share=_ratio(g.fires, t.rows),
            cost_total=_money(g.cents), cost_cents=g.cents,
            cost_avg=round(g.cents / known / 100, 4) if known else None, cost_unknown=g.unknown_cost,
            held=dict(sorted(g.held.items()))))
    gestures.sort(key=lambda s: (-s.fires, -s.cost_cents, s.gesture_id))
    rules_fired = sorted(
        (RuleStats(rule_id=rid, fires=r.rows, held_only=r.held_rows, share=_ratio(r.rows, t.rows),
                   cost_total=_money(r.cents), gestures=sorted(r.gestures)) for rid, r in t.rules.items()),
        key=lambda s: (-s.fires, -s.held_only, s.rule_id))
    tiers = [TierStats(tier=tier, fires=x.fires, rows=x.rows, share=_ratio(x.rows, t.rows), cost_total=_money(x.cents),
                       cost_avg=round(x.cents / x.fires / 100, 4) if x.fires else None)
             for tier in TIERS for x in [t.tiers.get(tier, TierTally())]]
    order = {d: i for i, d in enumerate(SEGMENT_DIMENSIONS)}
    band = {b: i for i, b in enumerate(TENURE_BANDS)}

    def seg_key(item: tuple[tuple[str, str], SegTally]) -> tuple[Any, ...]:
        (dim, value), s = item
        if dim == "tenure":
            return (order[dim], band.get(value, 99), value)
        return (order[dim], -s.rows, value)

    segments = [SegmentStats(dimension=dim, value=value, rows=s.rows, rows_with_gesture=s.with_gesture,  # type: ignore[arg-type]
                             fires=s.fires, cost_total=_money(s.cents),
                             cost_avg_per_row=round(s.cents / s.rows / 100, 4) if s.rows else None,
                             negative=s.negative, covered=s.covered, coverage=_ratio(s.covered, s.negative))
                for (dim, value), s in sorted(t.segments.items(), key=seg_key)]
    coverage = Coverage(negative=t.negative, covered=t.covered, coverage=_ratio(t.covered, t.negative),
                        by_reason=[ReasonCoverage(reason=r, negative=n, covered=c, coverage=_ratio(c, n))
                                   for r in NEGATIVE_REASONS if r in t.by_reason for n, c in [t.by_reason[r]]])
    return RunReport(
        label=label, rules=rules, ruleset_versions=dict(sorted(t.versions.items())), rows=t.rows,
        rows_with_gesture=t.rows_with_gesture, fires=t.fires, cost_total=_money(t.cents), cost_cents=t.cents,
        cost_avg_per_row=round(t.cents / t.rows / 100, 4) if t.rows else None, cost_unknown=t.unknown_cost,
        gestures=gestures, rules_fired=rules_fired, tiers=tiers, segments=segments, coverage=coverage,
        missing_inputs=dict(sorted(t.missing_inputs.items(), key=lambda kv: (-kv[1], kv[0]))),
        plugin_warnings=dict(sorted(t.plugin_warnings.items())))


def compare_report(a: RunReport, b: RunReport, ta: Tally, tb: Tally, diff: DiffTally) -> CompareReport:
    ids = sorted(set(ta.gestures) | set(tb.gestures))
    deltas = []
    for gid in ids:
        ga, gb = ta.gestures.get(gid, GestureTally()), tb.gestures.get(gid, GestureTally())
        if not (ga.fires or gb.fires):
            continue
        title, tier, _ = _better_meta(ta.meta.get(gid), tb.meta.get(gid, (gid, "", "")))
        deltas.append(GestureDelta(
            gesture_id=gid, title=title, tier=tier, fires_a=ga.fires, fires_b=gb.fires,
            fires_delta=gb.fires - ga.fires, cost_a=_money(ga.cents), cost_b=_money(gb.cents),
            cost_delta=_money(gb.cents - ga.cents), rows_gained=diff.gained.get(gid, 0),
            rows_lost=diff.lost.get(gid, 0)))
    deltas.sort(key=lambda d: (-(d.rows_gained + d.rows_lost), -abs(d.fires_delta), -abs(d.cost_delta),
                               -(d.fires_a + d.fires_b), d.gesture_id))
    fired_a = {g for g, x in ta.gestures.items() if x.fires}
    fired_b = {g for g, x in tb.gestures.items() if x.fires}
    cov_a, cov_b = a.coverage.coverage, b.coverage.coverage
    return CompareReport(
        a=a.label, b=b.label, rows=a.rows, rows_changed=diff.rows_changed,
        share_changed=_ratio(diff.rows_changed, a.rows),
        gestures_gained=sorted(fired_b - fired_a), gestures_lost=sorted(fired_a - fired_b), gestures=deltas,
        cost_a=a.cost_total, cost_b=b.cost_total, cost_delta=_money(tb.cents - ta.cents),
        coverage_a=cov_a, coverage_b=cov_b,
        coverage_delta=round(cov_b - cov_a, 6) if cov_a is not None and cov_b is not None else None)


def build_report(partial: Partial, *, history: str, fmt: Literal["jsonl", "csv"], mapping: str | None,
                 labels: list[str], rules: list[list[str]], timing: Timing | None = None) -> BacktestReport:
    """The report model from merged partials (sorted, so merge order never shows)."""
    runs = [run_report(t, label, r) for t, label, r in zip(partial.tallies, labels, rules, strict=True)]
    bad = [BadRow(line=line, reason=reason) for line, reason in sorted(partial.bad)]
    compare = None
    if len(runs) == 2:
        compare = compare_report(runs[0], runs[1], partial.tallies[0], partial.tallies[1],
                                 partial.diff or DiffTally())
    return BacktestReport(
        history=history, format=fmt, mapping=mapping, rows_read=partial.rows_read,
        rows_ok=partial.rows_read - len(bad), rows_skipped=len(bad), bad_rows=bad,
        period_start=partial.first, period_end=partial.last, run=runs[0],
        other=runs[1] if len(runs) == 2 else None, compare=compare, timing=timing)


# -- decision-log replay ----------------------------------------------------------------


class CustomerChange(_M):
    customer_id: str | None
    decision_id: str
    gesture_id: str


class GestureChange(_M):
    gesture_id: str
    gained: int = Field(description="Decisions that would now get it")
    lost: int = Field(description="Decisions that would no longer get it")


class InvalidDecision(_M):
    decision_id: str
    reason: str


class ReplayReport(_M):
    """``backtest --decisions``: the logged decisions replayed through a changed rule set."""

    store: str
    tenant: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    rules: list[str]
    label: str
    ruleset_versions: dict[str, int] = Field(description="Version of the replaying rulebook -> decisions")
    stored_versions: dict[str, int] = Field(description="Ruleset version at decision time -> decisions")
    decisions: int
    replayed: int
    not_replayable: int = Field(description="Decisions logged without their context")
    invalid: list[InvalidDecision] = Field(description="Stored contexts that no longer validate")
    changed: int = Field(description="Replayed decisions whose set of recommended gestures differs")
    reordered: int = Field(description="Same gestures, different order (not counted as changed)")
    share_changed: float = Field(description="changed / replayed (0 when nothing was replayed)")
    max_change: float
    exceeded: bool = Field(description="share_changed > max_change: the command exits 1")
    cost_before: float
    cost_after: float
    cost_delta: float
    gestures: list[GestureChange]
    customers_gaining: list[CustomerChange]
    customers_losing: list[CustomerChange]


def build_replay_report(t: Any, *, store: str, tenant: str | None, since: datetime | None, until: datetime | None,
                        rules: list[str], label: str, max_change: float) -> ReplayReport:
    share = round(t.changed / t.replayed, 6) if t.replayed else 0.0
    ids = sorted(set(t.gained) | set(t.lost))
    gestures = sorted((GestureChange(gesture_id=g, gained=t.gained.get(g, 0), lost=t.lost.get(g, 0)) for g in ids),
                      key=lambda c: (-(c.gained + c.lost), c.gesture_id))

    def changes(items: list[tuple[str | None, str, str]]) -> list[CustomerChange]:
        return [CustomerChange(customer_id=c, decision_id=d, gesture_id=g)
                for c, d, g in sorted(items, key=lambda x: (x[0] or "", x[1], x[2]))]

    return ReplayReport(
        store=store, tenant=tenant, since=since, until=until, rules=rules, label=label,
        ruleset_versions=dict(sorted(t.new_versions.items())), stored_versions=dict(sorted(t.stored_versions.items())),
        decisions=t.decisions, replayed=t.replayed, not_replayable=t.no_context,
        invalid=[InvalidDecision(decision_id=d, reason=r) for d, r in sorted(t.invalid)],
        changed=t.changed, reordered=t.reordered, share_changed=share, max_change=max_change,
        exceeded=share > max_change, cost_before=_money(t.cents_before), cost_after=_money(t.cents_after),
        cost_delta=_money(t.cents_after - t.cents_before), gestures=gestures,
        customers_gaining=changes(t.gaining), customers_losing=changes(t.losing))
