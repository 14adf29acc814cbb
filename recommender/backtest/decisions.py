"""Reading the memory store's decision log for a replay (``backtest --decisions``).

:func:`iter_decisions` streams logged decisions (oldest first, in pages) with the context
each was made for, the gestures it recommended and their cost. It reads the store's
``decisions`` table through the store's own SQLAlchemy engine; the table is reflected, so
the function works with any schema revision that has a ``context`` JSON column (the
context as passed to ``Store.record_decision``: after enrichment from the store, before
screening). A log without that column cannot be replayed: :class:`DecisionLogError`.

Use ``store.iter_decisions(...)`` instead when the store provides it (see
:func:`decisions_of`).

A replay must see what the store saw: :class:`ReplayMemory` stands in for the store while a
logged decision is recommended again. Its ``enrich`` adds nothing (the logged context is
already enriched) and its ``screen`` returns the holds logged with the decision (contact
policy, goodwill cap, budgets, authority limits, abuse review), so held gestures are taken out
before ranking exactly as they were when the decision was made, and cannot come back to win
an exclusive group or a listing place from the gesture actually given. What else the decision
took from the store is logged with it and given back the same: the tenant's stored profile in
force (``profile_layer``: the logged revision's layer) and the steer of the extras draw
(``extras_steer``: the logged steer, never one recomputed from today's realised rate).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any, Iterator, Literal, cast

from ..errors import RecommenderError
from ..memory_protocol import Hold, Offer

if TYPE_CHECKING:
    from ..context import Context
    from ..results import RecommendationResult

__all__ = ["StoredDecision", "DecisionLogError", "iter_decisions", "decisions_of", "POLICY_REASONS",
           "ReplayMemory", "LoggedProfile", "store_holds", "replay_context", "decision_day"]

#: Withheld reasons only the store's screening produces (contact policy, goodwill proportion).
POLICY_REASONS = frozenset({"suppressed", "goodwill_cap"})
_HOLD_REASONS = frozenset({"suppressed", "over_budget", "goodwill_cap", "abuse_review"})
#: How the store words its budget and authority holds and its abuse flag (logs written before
#: held entries carried ``source``): the ranking's own budget and approval holds read otherwise.
_STORE_BUDGET = re.compile(r" daily budget for |staff level's limit of ")
_STORE_ABUSE = "customer flagged for review"


@dataclass(frozen=True)
class LoggedProfile:
    """The tenant's stored profile a decision was made under (a layer the recommender applies)."""

    revision: int
    profile: dict[str, Any]


class DecisionLogError(RecommenderError):
    """The decision log cannot be replayed (e.g. it does not keep the contexts)."""


@dataclass
class StoredDecision:
    id: str
    customer_id: str | None
    context: dict[str, Any] | None
    gestures: list[str]
    cost_total: float
    tenant: str = "default"
    created_at: datetime | None = None
    ruleset_version: str = ""
    costs: dict[str, float | None] = field(default_factory=dict)
    held: list[dict[str, Any]] = field(default_factory=list)
    #: When the interaction happened (``interaction.occurred_at``, else when it was logged).
    occurred_at: datetime | None = None
    receipt_id: str = ""
    context_hash: str = ""
    #: the tenant's stored profile in force (None: none, or logged before profiles were stored)
    stored_profile: LoggedProfile | None = None
    #: the steer the extras draw used (None: no draw, or logged before the draw was steered)
    extras_steer: float | None = None
    #: what the decision's ranking learned with and its logged propensities (``learning_decisions``)
    learning: dict[str, Any] | None = None
    tiers: dict[str, str] = field(default_factory=dict)


def _json(value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def iter_decisions(store: Any, tenant: str | None = None, since: datetime | None = None,
                   until: datetime | None = None, *, page: int = 500) -> Iterator[StoredDecision]:
    """Logged decisions of ``tenant`` (all tenants when None), ``since <= created_at < until``."""
    from sqlalchemy import MetaData, Table, and_, or_, select
    from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

    engine = store.engine
    try:
        table = Table("decisions", MetaData(), autoload_with=engine)
    except NoSuchTableError:
        raise DecisionLogError(f"database {getattr(store, 'url', '')} has no decision log "
                               "(run `recommender db upgrade`)") from None
    except SQLAlchemyError as exc:
        raise DecisionLogError(f"cannot read the decision log: {' '.join(str(exc).split())[:300]}") from None
    if "context" not in table.c:
        raise DecisionLogError(
            f"the decision log in {getattr(store, 'url', 'the store')} does not keep the contexts of its decisions "
            "(no 'context' column in table 'decisions'), so it cannot be replayed; upgrade the store "
            "(`recommender db upgrade`) and replay decisions logged after that")
    try:
        traces: Table | None = Table("learning_decisions", MetaData(), autoload_with=engine)
    except (NoSuchTableError, SQLAlchemyError):
        traces = None
    c = table.c
    base = []
    if tenant is not None:
        base.append(c.tenant == tenant)
    if since is not None:
        base.append(c.created_at >= _naive_utc(since))
    if until is not None:
        base.append(c.created_at < _naive_utc(until))
    cols = [c.id, c.created_at, c.tenant, c.customer_id, c.ruleset_version, c.recommendations, c.held, c.context]
    cols += [getattr(c, name) for name in ("occurred_at", "receipt_id", "context_hash", "profile_revision",
                                           "extras_steer") if name in table.c]
    source: Any = table
    profiles = _profiles_table(engine) if "profile_revision" in table.c else None
    if profiles is not None:  # the stored profile each decision was made under
        cols.append(profiles.c.profile.label("stored_profile"))
        source = table.outerjoin(profiles, and_(profiles.c.tenant == c.tenant,
                                                profiles.c.revision == c.profile_revision))
    layers: dict[tuple[str, int], LoggedProfile] = {}  # shared: the recommender keeps one merge per layer
    last: tuple[Any, str] | None = None
    while True:
        where = list(base)
        if last is not None:
            where.append(or_(c.created_at > last[0], and_(c.created_at == last[0], c.id > last[1])))
        stmt = select(*cols).select_from(source).where(*where).order_by(c.created_at, c.id).limit(page)
        try:
            with engine.connect() as conn:
                rows = conn.execute(stmt).fetchall()
        except SQLAlchemyError as exc:
            raise DecisionLogError(f"cannot read the decision log: {' '.join(str(exc).split())[:300]}") from None
        if not rows:
            return
        learned: dict[str, Any] = {}
        if traces is not None:
            try:
                with engine.connect() as conn:
                    learned = dict(conn.execute(select(traces.c.decision_id, traces.c.trace)
                                                .where(traces.c.decision_id.in_([r.id for r in rows]))).all())
            except SQLAlchemyError as exc:
                raise DecisionLogError(f"cannot read the decision log: {' '.join(str(exc).split())[:300]}") from None
        for row in rows:
            decision = _decision(row, layers)
            trace = _json(learned.get(row.id))
            decision.learning = trace if isinstance(trace, dict) else None
            yield decision
        last = (rows[-1].created_at, rows[-1].id)


def _naive_utc(when: datetime) -> datetime:
    from datetime import timezone

    return when.astimezone(timezone.utc).replace(tzinfo=None) if when.tzinfo else when


def _profiles_table(engine: Any) -> Any:
    from sqlalchemy import MetaData, Table
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return Table("tenant_profiles", MetaData(), autoload_with=engine)
    except SQLAlchemyError:  # NoSuchTableError: a log written before profiles were stored
        return None


def _logged_profile(row: Any, layers: dict[tuple[str, int], LoggedProfile]) -> LoggedProfile | None:
    revision, layer = getattr(row, "profile_revision", None), _json(getattr(row, "stored_profile", None))
    if revision is None or not isinstance(layer, dict):
        return None
    key = (row.tenant, int(revision))
    if key not in layers:
        layers[key] = LoggedProfile(int(revision), layer)
    return layers[key]


def _decision(row: Any, layers: dict[tuple[str, int], LoggedProfile] | None = None) -> StoredDecision:
    recs = _json(row.recommendations) or []
    costs: dict[str, float | None] = {}
    tiers: dict[str, str] = {}
    for r in recs:
        if isinstance(r, dict) and "gesture_id" in r:
            costs[r["gesture_id"]] = r.get("cost")
            tiers[r["gesture_id"]] = str(r.get("tier") or "")
    ctx = _json(row.context)
    return StoredDecision(
        id=row.id, customer_id=row.customer_id, context=ctx if isinstance(ctx, dict) else None,
        gestures=list(costs), cost_total=sum(v for v in costs.values() if v is not None),
        tenant=row.tenant, created_at=row.created_at, ruleset_version=row.ruleset_version or "",
        costs=costs, held=[h for h in (_json(row.held) or []) if isinstance(h, dict)],
        occurred_at=getattr(row, "occurred_at", None), receipt_id=getattr(row, "receipt_id", None) or "",
        context_hash=getattr(row, "context_hash", None) or "", tiers=tiers,
        stored_profile=_logged_profile(row, {} if layers is None else layers),
        extras_steer=getattr(row, "extras_steer", None))


def decisions_of(store: Any, tenant: str | None = None, since: datetime | None = None,
                 until: datetime | None = None) -> Iterator[Any]:
    """``store.iter_decisions(...)`` when the store has it, else :func:`iter_decisions`."""
    method = getattr(store, "iter_decisions", None)
    if callable(method):
        return iter(method(tenant=tenant, since=since, until=until))
    return iter_decisions(store, tenant=tenant, since=since, until=until)


# -- replaying a decision as the store saw it ----------------------------------------------


def _day(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def store_holds(decision: Any) -> list[Hold]:
    """The holds the store's screening put on ``decision`` when it was made.

    Logged held entries say where they came from (``source: store``). For logs written before
    that, the store's holds are told apart by their reason (contact policy, goodwill cap), or
    by how the store words a budget, authority-limit or abuse hold (the ranking's own
    ``over_budget`` and ``needs_approval`` read otherwise).
    """
    out: dict[str, Hold] = {}
    for h in getattr(decision, "held", None) or []:
        gid, reason, detail = h.get("gesture_id"), h.get("reason"), str(h.get("detail") or "")
        if not isinstance(gid, str) or gid in out:
            continue
        source = h.get("source")
        if source is not None and source != "store":
            continue
        if reason == "needs_approval" and (source == "store" or detail.startswith(_STORE_ABUSE)):
            reason = "abuse_review"
        elif source is None and not (reason in POLICY_REASONS
                                     or (reason == "over_budget" and _STORE_BUDGET.search(detail))):
            continue
        if reason not in _HOLD_REASONS:
            continue
        out[gid] = Hold(gid, cast(Literal["suppressed", "over_budget", "goodwill_cap", "abuse_review"], reason),
                        detail, _day(h.get("available_on")))
    return list(out.values())


class ReplayMemory:
    """The memory store as one logged decision saw it (a :class:`~recommender.memory_protocol.Memory`).

    ``enrich`` adds nothing: the logged context was logged after enrichment. ``screen`` returns
    the holds logged with the decision for the gestures offered now, so the pipeline takes them
    out before ranking, as it did then. ``profile_layer`` is the tenant's stored profile the
    decision was made under, and ``extras_steer`` the steer its extras draw used (1.0 for a
    decision logged before draws were steered). ``record_decision`` logs nothing and returns
    the logged decision's id. A gesture the rules did not offer then was never screened: a replay with
    changed rules offers it unscreened (the store's state of that day is not kept).
    ``propensities`` is the evidence each gesture was ranked with (the decision's learning
    trace), so a replay ranks, and draws the extra, as the decision did.
    """

    def __init__(self, decision: Any) -> None:
        self.decision_id = str(getattr(decision, "id", ""))
        self.holds = store_holds(decision)
        self.stored_profile: LoggedProfile | None = getattr(decision, "stored_profile", None)
        steer = getattr(decision, "extras_steer", None)
        self.steer = 1.0 if steer is None else float(steer)
        trace = getattr(decision, "learning", None)
        self.evidence = (trace.get("evidence") or {}) if isinstance(trace, dict) else {}

    def propensities(self, ctx: "Context", offers: Any) -> dict[str, Any]:
        """The evidence each gesture was ranked with when the decision was made (logged with
        it), so a replay ranks as the decision did; a gesture not offered then has none."""
        from ..learning import Posterior

        return {g: Posterior.from_dict(self.evidence[g]) for g, _, _ in offers if isinstance(self.evidence.get(g), dict)}

    def enrich(self, ctx: "Context") -> dict[str, Any]:
        return {}

    def screen(self, ctx: "Context", offers: list[Offer]) -> list[Hold]:
        offered = {o.gesture_id for o in offers}
        return [h for h in self.holds if h.gesture_id in offered]

    def profile_layer(self, tenant: str) -> LoggedProfile | None:
        return self.stored_profile

    def extras_steer(self, ctx: "Context", target: float) -> float:
        return self.steer

    def record_decision(self, ctx: "Context", result: "RecommendationResult", **logged: Any) -> str:
        return self.decision_id


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def decision_day(decision: Any, today: date | None = None) -> date | None:
    """The day the decision was made for (its extras draw). The receipt seals it: the logged
    receipt id is a hash of the ruleset version, the context hash and that day, so of the days
    around when the decision was logged (and today: a store's clock may differ from the
    recommender's) the one that reproduces the receipt is it; else the logged day."""
    when = getattr(decision, "occurred_at", None) or getattr(decision, "created_at", None)
    logged = _utc(when).date() if isinstance(when, datetime) else None
    receipt, chash = getattr(decision, "receipt_id", ""), getattr(decision, "context_hash", "")
    version = getattr(decision, "ruleset_version", "")
    if not (receipt and chash and version):
        return logged
    candidates: list[date] = []
    for base in (logged, today or datetime.now(timezone.utc).date()):
        if base is not None:
            candidates += [base, base - timedelta(days=1), base + timedelta(days=1)]
    for day in dict.fromkeys(candidates):
        if hashlib.sha256(f"{version}:{chash}:{day.isoformat()}".encode()).hexdigest()[:24] == receipt:
            return day
    return logged


def replay_context(decision: Any, today: date | None = None) -> dict[str, Any] | None:
    """The logged context to recommend again. A decision made on another day than today
    without ``interaction.occurred_at`` gets it set to that day, so whatever depends on the
    day (the extras draw, a plugin's "this year") is decided for the day the decision was
    made; on its own day the context is left exactly as logged."""
    ctx = getattr(decision, "context", None)
    if not isinstance(ctx, dict):
        return None
    interaction = ctx.get("interaction")
    if not isinstance(interaction, dict) or interaction.get("occurred_at") is not None:
        return ctx
    today = today or datetime.now(timezone.utc).date()
    day = decision_day(decision, today)
    if day is None or day == today:
        return ctx
    when = getattr(decision, "occurred_at", None) or getattr(decision, "created_at", None)
    at = _utc(when) if isinstance(when, datetime) and _utc(when).date() == day else \
        datetime.combine(day, time(12), tzinfo=timezone.utc)
    return {**ctx, "interaction": {**interaction, "occurred_at": at.isoformat()}}
