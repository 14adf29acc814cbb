"""The population check: does the advice hold its promises over a whole population?

``recommender backtest HISTORY --population`` (and ``python -m bench.population``) run
every interaction of a history through a recommender and measure, from the results, what
docs/advice.md promises (issue 14's "Done when"):

* every negative experience (``assessment.severity >= 1``) gets at least one listed
  ``recover`` gesture;
* the mean listed recovery cost (the costs of the listed ``recover`` gestures of an
  interaction, summed; an unknown cost counts 0 and is counted apart) rises with the
  severity band: non-decreasing from minor (1) to critical (4), and higher at 4 than at 1;
* extras (a listed ``exceed`` gesture) go to 5-15% of interactions, and to no group of
  interactions sharing an attribute value (vertical, business, channel, staff level, tier,
  family, band, issue, loyal, high-value, new, returning, VIP, tenure band, sentiment,
  repeat, escalated; groups of at least ``min_group`` interactions) more than half the time;
* no listed gesture costs more than the serving staff's money limit (the business's
  profile, ``money_limits``): above it a gesture belongs under ``needs_approval``;
* at most 4 gestures are listed per interaction on average;
* at most 5 near misses are shown by default (``explain()`` on a sample spread over the
  population, ``explain_sample``).

Failures come with example interactions (their business, issue, assessment, staff level and
what was listed, awaiting approval and withheld), so a rule's gap can be found.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Sequence

from pydantic import BaseModel, ConfigDict

from ..context import STAFF_LEVELS, Context, parse_context
from ..errors import ContextError
from ..issues import SEVERITY_BANDS
from ..profile import derive_customer
from ..results import RecommendationResult
from .io import RowError, Source, decode, iter_raw
from .tally import tenure_band

__all__ = ["THRESHOLDS", "PopulationReport", "population_check", "format_report", "attributes_of", "read_contexts"]

#: The check's thresholds (issue 14).
THRESHOLDS = {
    "recover_coverage": 1.0,     # share of negative experiences with a listed recover gesture
    "extras_min": 0.05,          # share of interactions with a listed extra ...
    "extras_max": 0.15,
    "extras_group_max": 0.5,     # ... and in any attribute-value group
    "over_limit": 0,             # listed gestures above the staff's money limit
    "listed_mean_max": 4.0,      # gestures listed per interaction, on average
    "near_misses_max": 5,        # near misses shown by default
}
EXAMPLES = 5
_RANK = {level: i for i, level in enumerate(STAFF_LEVELS)}


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Property(_M):
    name: str
    holds: bool
    measured: str
    required: str


class BandCost(_M):
    severity: int
    band: str
    rows: int
    with_recover: int
    recover_cost_mean: float | None
    offered_cost_mean: float | None  # listed plus awaiting approval
    cost_unknown: int                # listed recover gestures whose cost was unknown (counted 0)


class GroupShare(_M):
    attribute: str
    value: str
    rows: int
    extras: int
    share: float


class OverLimit(_M):
    gesture_id: str
    cost: float
    limit: float
    staff_level: str
    business: str


class PopulationReport(_M):
    rows: int
    negative: int
    negative_with_recover: int
    recover_coverage: float | None
    uncovered_by: dict[str, int]     # "family / band" -> negative interactions without a recover gesture
    bands: list[BandCost]
    cost_rises: bool
    extras: int
    extras_share: float | None
    min_group: int
    groups: list[GroupShare]         # every attribute value with at least min_group interactions
    max_group: GroupShare | None
    over_limit: int
    over_limit_gestures: dict[str, int]
    above_authority: int             # listed gestures above the staff's authority (informative)
    cost_unknown_listed: dict[str, int]  # listed gestures whose cost is unknown here (not checked against the limit)
    listed_mean: float | None
    listed_max: int
    listed_by_tier: dict[str, float]  # mean listed gestures of each tier per interaction
    explained: int
    near_misses_max: int
    near_misses_mean: float | None
    missing_inputs_max: int
    families: dict[str, int]         # interactions per assessed family ("(unknown)": an unknown code)
    unknown_issue: int               # interactions whose issue code no vocabulary knows
    unknown_codes: dict[str, int]    # the most frequent of those codes
    plugin_warnings: dict[str, int]  # "plugin hook: message" -> interactions
    properties: list[Property]
    examples: dict[str, list[dict[str, Any]]]

    @property
    def ok(self) -> bool:
        return all(p.holds for p in self.properties)

    def failed(self) -> list[Property]:
        return [p for p in self.properties if not p.holds]


def _yes(v: bool | None) -> str:
    return "unknown" if v is None else "yes" if v else "no"


def _sentiment(s: float | None) -> str:
    if s is None:
        return "unknown"
    return "upset (<= -0.5)" if s <= -0.5 else "negative" if s < 0 else "positive (>= 0.5)" if s >= 0.5 else "neutral"


def attributes_of(ctx: Context, derived: dict[str, Any], family: str | None, severity: int) -> list[tuple[str, str]]:
    """The (attribute, value) pairs an interaction is grouped by for the extras check."""
    c, i = ctx.customer, ctx.interaction

    def fact(name: str) -> bool | None:
        own = getattr(c, name)
        return own if own is not None else derived.get(name)

    repeats = i.repeat_count if i.repeat_count is not None else None if i.repeat_issue is None else int(i.repeat_issue)
    return [
        ("vertical", ctx.business.vertical or "(none)"),
        ("business", ctx.business.id),
        ("channel", i.channel or "(absent)"),
        ("staff_level", ctx.staff.level),
        ("tier", c.tier or "(none)"),
        ("family", family or "(unknown)"),
        ("band", SEVERITY_BANDS[severity]),
        ("issue", i.issue),
        ("loyal", _yes(fact("loyal"))),
        ("high_value", _yes(fact("high_value"))),
        ("is_new", _yes(c.is_new)),
        ("returning", _yes(fact("returning"))),
        ("is_vip", _yes(c.is_vip)),
        ("tenure", tenure_band(c.tenure_years)),
        ("sentiment", _sentiment(i.sentiment)),
        ("repeat", "unknown" if repeats is None else "yes" if repeats else "no"),
        ("escalated", _yes(i.escalated)),
    ]


def _example(ctx: Context, res: RecommendationResult) -> dict[str, Any]:
    a = res.assessment
    return {
        "business": ctx.business.id, "vertical": ctx.business.vertical, "issue": ctx.interaction.issue,
        "family": a.family if a else None, "severity": a.severity if a else None,
        "reasons": list(a.reasons) if a else [], "staff_level": ctx.staff.level,
        "listed": [f"{r.gesture_id} ({r.tier}, {r.cost})" for r in res.recommendations],
        "needs_approval": [f"{w.gesture_id} ({w.tier}, {w.cost})" for w in res.needs_approval],
        "withheld": [f"{w.gesture_id} ({w.tier}): {w.reason}" for w in res.withheld],
        "notes": list(res.notes),
        "context": ctx.model_dump(mode="json", exclude_defaults=True),
    }


def _mean(total: float, n: int) -> float | None:
    return round(total / n, 4) if n else None


def population_check(rec: Any, contexts: Sequence[Context | dict[str, Any]], *, explain_sample: int = 1000,
                     min_group: int = 100, chunk: int = 2000) -> PopulationReport:
    """Run ``contexts`` through ``rec`` (``recommend_many``, and ``explain`` on up to
    ``explain_sample`` of them, spread evenly) and measure the population's properties."""
    ctxs = [c if isinstance(c, Context) else parse_context(c) for c in contexts]
    n = len(ctxs)
    negative = covered = extras = over = above = listed_total = listed_max = unknown_issue = 0
    uncovered: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    families: Counter[str] = Counter()
    band_rows = [0] * 5
    band_cover = [0] * 5
    band_cost = [0.0] * 5
    band_offer = [0.0] * 5
    band_unknown = [0] * 5
    tier_total: Counter[str] = Counter()
    group_rows: Counter[tuple[str, str]] = Counter()
    group_extras: Counter[tuple[str, str]] = Counter()
    over_gestures: Counter[str] = Counter()
    unknown_cost: Counter[str] = Counter()
    warnings: Counter[str] = Counter()
    examples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    profiles: dict[tuple[str, str | None], Any] = {}

    def profile(ctx: Context) -> Any:
        key = (ctx.business.id, ctx.business.vertical)
        if key not in profiles:
            profiles[key] = rec.profile_for(ctx.business)[0]
        return profiles[key]

    for start in range(0, n, chunk):
        part = ctxs[start:start + chunk]
        for ctx, res in zip(part, rec.recommend_many(part), strict=True):
            prof = profile(ctx)
            a = res.assessment
            family, severity = (a.family, a.severity) if a is not None else (None, 0)
            families[family or "(unknown)"] += 1
            if family is None:
                unknown_issue += 1
                unknown[ctx.interaction.issue] += 1
            recs = res.recommendations
            listed = len(recs)
            listed_total += listed
            listed_max = max(listed_max, listed)
            tier_total.update(r.tier for r in recs)
            recover = [r for r in recs if r.tier == "recover"]
            band_rows[severity] += 1
            band_cost[severity] += sum(r.cost or 0.0 for r in recover)
            band_offer[severity] += sum(r.cost or 0.0 for r in recover) + sum(
                w.cost or 0.0 for w in res.needs_approval if w.tier == "recover")
            band_unknown[severity] += sum(r.cost is None for r in recover)
            if recover:
                band_cover[severity] += 1
            if severity >= 1:
                negative += 1
                if recover:
                    covered += 1
                else:
                    uncovered[f"{family or '(unknown)'} / {SEVERITY_BANDS[severity]}"] += 1
                    if len(examples["uncovered"]) < EXAMPLES:
                        examples["uncovered"].append(_example(ctx, res))
            got_extra = any(r.tier == "exceed" for r in recs)
            extras += got_extra
            for key in attributes_of(ctx, derive_customer(ctx, prof), family, severity):
                group_rows[key] += 1
                group_extras[key] += got_extra
            limit = prof.limit_for(ctx.staff.level)
            for r in recs:
                if r.cost is None:
                    unknown_cost[r.gesture_id] += 1
                elif r.cost > limit + 1e-9:
                    over += 1
                    over_gestures[r.gesture_id] += 1
                    if len(examples["over_limit"]) < EXAMPLES:
                        examples["over_limit"].append({**_example(ctx, res), "limit": limit})
                if _RANK.get(r.authority, 0) > _RANK[ctx.staff.level]:
                    above += 1
                    if len(examples["above_authority"]) < EXAMPLES:
                        examples["above_authority"].append(_example(ctx, res))
            if listed > THRESHOLDS["listed_mean_max"] + 1 and len(examples["long_listing"]) < EXAMPLES:
                examples["long_listing"].append(_example(ctx, res))
            for w in res.warnings:
                warnings[f"{w.plugin} {w.hook}: {w.message[:120]}"] += 1

    # near misses shown by default, on a sample spread over the population
    step = max(1, n // explain_sample) if explain_sample > 0 else 0
    sample = list(range(0, n, step))[:explain_sample] if step else []
    nm_total = nm_max = mi_max = 0
    for idx in sample:
        ex = rec.explain(ctxs[idx])
        nm_total += len(ex.near_misses)
        nm_max = max(nm_max, len(ex.near_misses))
        mi_max = max(mi_max, len(ex.missing_inputs))
        if len(ex.near_misses) > THRESHOLDS["near_misses_max"] and len(examples["near_misses"]) < EXAMPLES:
            examples["near_misses"].append({**_example(ctxs[idx], ex),
                                            "near_misses": [m.rule_id for m in ex.near_misses]})

    bands = [BandCost(severity=s, band=SEVERITY_BANDS[s], rows=band_rows[s], with_recover=band_cover[s],
                      recover_cost_mean=_mean(band_cost[s], band_rows[s]),
                      offered_cost_mean=_mean(band_offer[s], band_rows[s]), cost_unknown=band_unknown[s])
             for s in range(5)]
    means = [b.recover_cost_mean for b in bands[1:]]
    known = [m for m in means if m is not None]
    rises = (len(known) == 4 and all(x <= y + 1e-9 for x, y in zip(known, known[1:])) and known[-1] > known[0])
    groups = sorted((GroupShare(attribute=k[0], value=k[1], rows=r, extras=group_extras[k],
                                share=round(group_extras[k] / r, 4))
                     for k, r in group_rows.items() if r >= min_group),
                    key=lambda g: (-g.share, g.attribute, g.value))
    top = groups[0] if groups else None
    coverage = covered / negative if negative else None
    extras_share = extras / n if n else None
    listed_mean = listed_total / n if n else None
    t = THRESHOLDS

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x * 100:.1f}%"

    props = [
        Property(name="every negative experience gets a recover gesture",
                 holds=negative > 0 and covered == negative,
                 measured=f"{covered:,} of {negative:,} ({pct(coverage)})", required="100%"),
        Property(name="mean recovery cost rises with severity band",
                 holds=rises, measured=" <= ".join("-" if m is None else f"{m:.2f}" for m in means),
                 required="band 1 <= 2 <= 3 <= 4, 4 > 1"),
        Property(name="extras go to 5-15% of interactions",
                 holds=extras_share is not None and t["extras_min"] <= extras_share <= t["extras_max"],
                 measured=f"{extras:,} of {n:,} ({pct(extras_share)})", required="5% to 15%"),
        Property(name="no attribute value gets extras more than half the time",
                 holds=top is None or top.share <= t["extras_group_max"],
                 measured="-" if top is None else f"max {pct(top.share)} ({top.attribute} = {top.value}, "
                                                   f"{top.extras:,} of {top.rows:,})",
                 required=f"<= 50% (groups of >= {min_group})"),
        Property(name="no gesture above the staff's money limit outside needs_approval",
                 holds=over == t["over_limit"], measured=f"{over:,}", required="0"),
        Property(name="at most 4 gestures listed on average",
                 holds=listed_mean is not None and listed_mean <= t["listed_mean_max"],
                 measured="-" if listed_mean is None else f"{listed_mean:.2f} (max {listed_max})",
                 required="<= 4"),
        Property(name="at most 5 near misses shown by default",
                 holds=bool(sample) and nm_max <= t["near_misses_max"],
                 measured=f"max {nm_max} (mean {nm_total / len(sample):.2f}, {len(sample):,} explained)"
                 if sample else "none explained", required="<= 5"),
    ]
    return PopulationReport(
        rows=n, negative=negative, negative_with_recover=covered,
        recover_coverage=None if coverage is None else round(coverage, 6),
        uncovered_by=dict(uncovered.most_common()), bands=bands, cost_rises=rises, extras=extras,
        extras_share=None if extras_share is None else round(extras_share, 6), min_group=min_group,
        groups=groups, max_group=top, over_limit=over, over_limit_gestures=dict(over_gestures.most_common()),
        above_authority=above, cost_unknown_listed=dict(unknown_cost.most_common()),
        listed_mean=None if listed_mean is None else round(listed_mean, 4),
        listed_max=listed_max,
        listed_by_tier={tier: round(tier_total[tier] / n, 4) if n else 0.0 for tier in ("recover", "meet", "exceed")},
        explained=len(sample), near_misses_max=nm_max,
        near_misses_mean=round(nm_total / len(sample), 4) if sample else None, missing_inputs_max=mi_max,
        families=dict(families.most_common()), unknown_issue=unknown_issue,
        unknown_codes=dict(unknown.most_common(10)), plugin_warnings=dict(warnings.most_common()),
        properties=props, examples=dict(examples))


def format_report(report: PopulationReport, groups: int = 12) -> str:
    """The report as plain-text tables (what ``--population`` and ``python -m bench.population`` print)."""
    lines: list[str] = []
    width = max(len(p.name) for p in report.properties)
    lines.append(f"  {'property':<{width}}  {'measured':<48} {'required':<30} verdict")
    for p in report.properties:
        lines.append(f"  {p.name:<{width}}  {p.measured:<48} {p.required:<30} {'PASS' if p.holds else 'FAIL'}")
    lines.append("")
    lines.append(f"  {'severity band':<14} {'rows':>7} {'with recover':>13} {'recovery cost (mean)':>21} "
                 f"{'+ awaiting approval':>20} {'cost unknown':>13}")
    for b in report.bands:
        cover = f"{b.with_recover / b.rows * 100:.1f}%" if b.rows else "-"
        cost = "-" if b.recover_cost_mean is None else f"{b.recover_cost_mean:.2f}"
        offer = "-" if b.offered_cost_mean is None else f"{b.offered_cost_mean:.2f}"
        lines.append(f"  {f'{b.severity} {b.band}':<14} {b.rows:>7,} {cover:>13} {cost:>21} {offer:>20} "
                     f"{b.cost_unknown:>13,}")
    if report.uncovered_by:
        lines.append("  negative experiences without a recover gesture, by family / band: "
                     + ", ".join(f"{k} {v:,}" for k, v in report.uncovered_by.items()))
    lines.append("")
    lines.append(f"  extras by attribute value (groups of >= {report.min_group}; the {groups} highest shares)")
    lines.append(f"  {'attribute':<12} {'value':<28} {'rows':>7} {'extras':>7} {'share':>7}")
    for g in report.groups[:groups]:
        lines.append(f"  {g.attribute:<12} {g.value[:28]:<28} {g.rows:>7,} {g.extras:>7,} {g.share * 100:>6.1f}%")
    lines.append("")
    tiers = ", ".join(f"{k} {v:.2f}" for k, v in report.listed_by_tier.items())
    lines.append(f"  listed per interaction: mean {report.listed_mean}, max {report.listed_max} ({tiers})")
    if report.over_limit_gestures:
        lines.append("  above the money limit: "
                     + ", ".join(f"{k} {v:,}" for k, v in report.over_limit_gestures.items()))
    lines.append(f"  listed above the staff's authority: {report.above_authority:,}")
    if report.cost_unknown_listed:
        lines.append("  listed with an unknown cost (not checked against the limit): "
                     + ", ".join(f"{k} {v:,}" for k, v in report.cost_unknown_listed.items()))
    lines.append(f"  near misses shown: max {report.near_misses_max}, mean {report.near_misses_mean} "
                 f"({report.explained:,} explained); missing inputs shown: max {report.missing_inputs_max}")
    lines.append(f"  unknown issue codes: {report.unknown_issue:,} interactions"
                 + (" (" + ", ".join(f"{k} {v:,}" for k, v in report.unknown_codes.items()) + ")"
                    if report.unknown_codes else ""))
    for key, count in list(report.plugin_warnings.items())[:5]:
        lines.append(f"  plugin warning on {count:,} interactions: {key}")
    failed = report.failed()
    lines.append("")
    lines.append("  population check: " + ("all properties hold" if not failed
                                           else f"{len(failed)} of {len(report.properties)} properties FAIL"))
    return "\n".join(lines)



def read_contexts(source: Source) -> tuple[list[Context], list[tuple[int, str]]]:
    """Every usable row of a history file as a context, and the bad rows as ``(line, reason)``
    (the reasons the backtest gives). Raises :class:`~recommender.backtest.io.HistoryInputError`
    when the file cannot be read further."""
    contexts: list[Context] = []
    bad: list[tuple[int, str]] = []
    for line, raw in iter_raw(source):
        try:
            data, _ = decode(raw, source)
            contexts.append(parse_context(data))
        except RowError as exc:
            bad.append((line, str(exc)))
        except ContextError as exc:
            bad.append((line, "; ".join(f"{path or '<context>'}: {msg}" for path, msg in exc.errors)))
    return contexts, bad
