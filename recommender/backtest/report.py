"""The backtest's reports: pydantic models built from merged tallies
(:mod:`recommender.backtest.tally`), for a history run, a comparison of two rule sets, and a
decision-log replay. The tallies' names are re-exported here for older imports.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..packs import TIERS
from .tally import (
    NEGATIVE_DEFINITION,
    NEGATIVE_REASONS,
    SEGMENT_DIMENSIONS,
    TENURE_BANDS,
    DiffTally,
    GestureTally,
    Partial,
    SegTally,
    Tally,
    TierTally,
    _better_meta,
    _money,
    _ratio,
    negative_reasons,
    segments_of,
    tenure_band,
    to_cents,
)

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
