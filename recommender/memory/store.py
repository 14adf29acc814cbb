"""The memory store: decision log, outcomes, customer history, contact policy and budgets.

One :class:`Store` talks to SQLite or PostgreSQL through SQLAlchemy Core; it implements the
core's :class:`~recommender.memory_protocol.Memory` seam (``enrich``, ``screen``,
``record_decision``) and adds outcomes, customer profiles and reports.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from sqlalchemy import Connection, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..memory_protocol import Hold, Offer
from . import budgets, db
from .errors import (
    DuplicateOutcome,
    GestureNotInDecision,
    IdempotencyConflict,
    InvalidStoreInput,
    TenantMismatch,
    UnknownDecision,
)
from .models import (
    OUTCOME_KINDS,
    BudgetUsage,
    CustomerProfileRow,
    Decision,
    DecisionGesture,
    DecisionRule,
    Outcome,
    Visit,
    table_of,
)
from .policy import RECEIVED, ContactRule, Policy
from .values import MIN_TIME, check_json, check_occurred_at, check_text, local_date, shift
from .records import (
    BudgetLine,
    CustomerView,
    DecisionGestureRecord,
    DecisionRecord,
    GestureEvent,
    Note,
    OutcomeRecord,
    PruneCounts,
    VisitRecord,
)

if TYPE_CHECKING:
    from ..context import Context
    from ..results import RecommendationResult
    from .reports import Report

__all__ = ["Store", "open_store", "Clock"]

Clock = Callable[[], datetime]

_D = table_of(Decision)
_DG = table_of(DecisionGesture)
_DR = table_of(DecisionRule)
_O = table_of(Outcome)
_C = table_of(CustomerProfileRow)
_V = table_of(Visit)
_B = table_of(BudgetUsage)

_TENANT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_RETRIES = 3
#: Screenings kept until their decision is logged (explanations never log one).
_SCREENED_MAX = 4096


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | date) -> datetime:
    """A datetime in UTC (naive values are taken as UTC; a date means its midnight UTC)."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time(0), tzinfo=timezone.utc)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def check_tenant(tenant: str, field: str = "tenant") -> str:
    if not isinstance(tenant, str) or not _TENANT_RE.fullmatch(tenant):
        raise InvalidStoreInput(f"{field}: invalid tenant id {str(tenant)[:140]!r}: letters, digits and _.:- "
                                "(at most 128)", field=field)
    return tenant


def _check_customer(customer_id: str, field: str = "customer_id") -> str:
    return check_text(customer_id, field, max_length=2000)


def _check_decision_id(decision_id: str) -> str:
    if not isinstance(decision_id, str) or len(decision_id) > 36:
        raise UnknownDecision(str(decision_id)[:80])
    return check_text(decision_id, "decision_id", max_length=36)


@dataclass(frozen=True)
class _Event:
    """One outcome in a customer's history (policy input)."""

    decision_id: str
    gesture_id: str
    category: str
    tier: str
    outcome: str
    cost: float | None
    at: datetime


def _days(n: float) -> str:
    return f"{n:g} day" + ("" if n == 1 else "s")


class Store:
    """A memory store at ``url`` (see :func:`open_store`). Thread-safe; keep one per process.

    ``policy``: a :class:`Policy`, a path to a YAML/JSON policy file, or None for
    ``$RECOMMENDER_POLICY`` (a file) or the defaults. ``clock``: returns the current time
    (aware datetime); tests inject a fixed one. ``upgrade``: apply migrations on open
    (default: yes for SQLite, so a new file works with zero set-up; no for PostgreSQL,
    whose schema is changed on purpose with ``recommender db upgrade``).
    """

    def __init__(self, url: str | None = None, *, policy: Policy | str | Path | None = None,
                 clock: Clock | None = None, upgrade: bool | None = None) -> None:
        self._url = db.normalize_url(url)
        self.url = db.mask_url(self._url)
        self.policy = _load_policy(policy)
        self.clock: Clock = clock or _utc_now
        self.engine = db.make_engine(self._url)
        #: Screenings, oldest first, until :meth:`record_decision` logs them: what each offer was
        #: (category, tier) and which ones the store held (gesture -> reason). Matched by the
        #: interaction (:func:`_screening_key`), not by the context object or the thread: with
        #: plugins, the pipeline screens on a worker thread and logs a new copy of the context.
        self._screened: list[tuple[tuple[Any, ...], dict[str, tuple[str, str]], dict[str, str]]] = []
        self._screened_lock = threading.Lock()
        try:
            auto = self.dialect == "sqlite" if upgrade is None else upgrade
            if auto:
                with db.translate_errors(self._url):
                    current = db.current_revision(self.engine)
                if current != db.head_revision():
                    db.upgrade(self.engine)
            else:
                db.check_schema(self.engine)
        except BaseException:
            self.engine.dispose()
            raise

    # -- plumbing ---------------------------------------------------------------

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def upgrade(self, revision: str = "head") -> str:
        """Apply migrations; return the schema revision now in force."""
        return db.upgrade(self.engine, revision)

    def schema_revision(self) -> str | None:
        with db.translate_errors(self._url):
            return db.current_revision(self.engine)

    def _now(self, now: datetime | None = None) -> datetime:
        return as_utc(now if now is not None else self.clock())

    def _ctx_now(self, ctx: "Context") -> datetime:
        """The decision's reference time: ``interaction.occurred_at`` (years 1900-2200), else now."""
        occurred = ctx.interaction.occurred_at
        return check_occurred_at(as_utc(occurred)) if occurred is not None else self._now()

    def _check_ids(self, ctx: "Context") -> None:
        """The context's ids the store looks up by, refused alike on every database."""
        check_tenant(ctx.business.id, "business.id")
        if ctx.customer.id is not None:
            _check_customer(ctx.customer.id, "customer.id")
        if ctx.staff.id is not None:
            check_text(ctx.staff.id, "staff.id", max_length=2000)

    def _write(self, fn: Callable[[Connection], Any]) -> Any:
        """Run ``fn`` in one transaction, retrying a lost race on a unique key."""
        for attempt in range(_RETRIES):
            try:
                with db.translate_errors(self._url):
                    with self.engine.begin() as conn:
                        return fn(conn)
            except IntegrityError:
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, fn: Callable[[Connection], Any]) -> Any:
        with db.translate_errors(self._url):
            with self.engine.connect() as conn:
                return fn(conn)

    def _history(self, conn: Connection, tenant: str, customer_id: str, now: datetime,
                 lookback_days: float) -> list[_Event]:
        rows = conn.execute(
            select(_O.c.decision_id, _O.c.gesture_id, _O.c.category, _O.c.tier, _O.c.outcome, _O.c.cost,
                   _O.c.recorded_at)
            .where(_O.c.tenant == tenant, _O.c.customer_id == customer_id,
                   _O.c.recorded_at <= now, _O.c.recorded_at >= shift(now, -lookback_days))
        ).all()
        return [_Event(r.decision_id, r.gesture_id, r.category, r.tier, r.outcome,
                       None if r.cost is None else float(r.cost), r.recorded_at) for r in rows]

    # -- the Memory seam: enrich ----------------------------------------------------

    def enrich(self, ctx: "Context") -> dict[str, Any]:
        """Fill history fields for a known customer (``customer.id``; tenant = ``business.id``).

        ``customer.last_visit_days``, ``prior_issues``, ``recent_gestures`` (received within
        ``policy.recent_gestures_days``), ``preferences`` and ``interests`` from the profile,
        and ``interaction.repeat_issue`` (the same issue within ``policy.repeat_issue_days``).
        The reference time is ``interaction.occurred_at``, else the store's clock.
        """
        customer_id = ctx.customer.id
        if not customer_id:
            return {}
        self._check_ids(ctx)
        tenant = ctx.business.id
        now = self._ctx_now(ctx)
        policy = self.policy

        def load(conn: Connection) -> tuple[Any, Sequence[Any], list[_Event]]:
            profile = conn.execute(
                select(_C.c.preferences, _C.c.interests)
                .where(_C.c.tenant == tenant, _C.c.customer_id == customer_id)
            ).first()
            # Visits dated before 1900 (logged before dates were bounded) are not history.
            visits = conn.execute(
                select(_V.c.issue, _V.c.occurred_at)
                .where(_V.c.tenant == tenant, _V.c.customer_id == customer_id, _V.c.occurred_at < now,
                       _V.c.occurred_at >= MIN_TIME)
                .order_by(_V.c.occurred_at.desc()).limit(200)
            ).all()
            events = self._history(conn, tenant, customer_id, now, policy.recent_gestures_days)
            return profile, visits, events

        profile, visits, events = self._read(load)
        customer: dict[str, Any] = {}
        interaction: dict[str, Any] = {}
        if visits:
            last = visits[0].occurred_at
            days = round(max((now - last).total_seconds(), 0.0) / 86400, 2)
            customer["last_visit_days"] = min(days, _max_last_visit_days())
            horizon = shift(now, -policy.history_days)
            issues: list[str] = []
            for v in visits:
                if v.occurred_at >= horizon and v.issue not in issues:
                    issues.append(v.issue)
            customer["prior_issues"] = issues[:100]
        repeat_horizon = shift(now, -policy.repeat_issue_days)
        interaction["repeat_issue"] = any(v.issue == ctx.interaction.issue and v.occurred_at >= repeat_horizon
                                          for v in visits)
        recent: list[str] = []
        for e in sorted(events, key=lambda e: e.at, reverse=True):
            if e.outcome in RECEIVED and e.gesture_id not in recent:
                recent.append(e.gesture_id)
        if recent:
            customer["recent_gestures"] = recent[:100]
        if profile is not None:
            if profile.preferences:
                customer["preferences"] = dict(profile.preferences)
            if profile.interests:
                customer["interests"] = list(profile.interests)[:100]
        out: dict[str, Any] = {"interaction": _valid_updates(ctx, "interaction", interaction)}
        customer = _valid_updates(ctx, "customer", customer)
        if customer:
            out["customer"] = customer
        return out

    # -- the Memory seam: screen -------------------------------------------------------

    def screen(self, ctx: "Context", offers: list[Offer], *, now: datetime | None = None) -> list[Hold]:
        """Holds for offers that contact policy, abuse review, the goodwill cap, budgets or
        authority limits rule out now. One hold per offer, the first that applies of:
        ``suppressed``, ``goodwill_cap``, ``over_budget`` (budget, then authority limit),
        ``abuse_review``."""
        held: dict[str, str] = {}
        with self._screened_lock:
            if len(self._screened) >= _SCREENED_MAX:
                del self._screened[0]
            self._screened.append((_screening_key(ctx), {o.gesture_id: (o.category, o.tier) for o in offers}, held))
        if not offers:
            return []
        self._check_ids(ctx)
        now = self._ctx_now(ctx) if now is None else as_utc(now)
        tenant = ctx.business.id
        customer_id = ctx.customer.id
        policy = self.policy
        scopes = [s for s in budgets.scopes_for(policy.budget_for(tenant), ctx.business.store_id, ctx.staff.id)
                  if s[2] is not None]
        day = policy.budget_day(now)

        def load(conn: Connection) -> tuple[list[_Event], dict[tuple[str, str], float]]:
            events = (self._history(conn, tenant, customer_id, now, policy.lookback_days())
                      if customer_id else [])
            spent = budgets.spent_today(conn, tenant, scopes, day) if scopes else {}
            return events, spent

        needs_costs = any(o.cost for o in offers)
        events, spent = self._read(load) if (customer_id or (scopes and needs_costs)) else ([], {})
        holds = []
        for offer in offers:
            hold = (self._contact_hold(offer, events, now)
                    or self._goodwill_hold(ctx, offer, events, now)
                    or self._budget_hold(offer, scopes, spent, now)
                    or self._authority_hold(ctx, offer)
                    or self._abuse_hold(offer, events, now))
            if hold is not None:
                holds.append(hold)
                held[hold.gesture_id] = hold.reason
        return holds

    def _date(self, when: datetime) -> date:
        return local_date(when, self.policy.tz)

    def _contact_hold(self, offer: Offer, events: list[_Event], now: datetime) -> Hold | None:
        best: Hold | None = None
        for rule in self.policy.contact:
            if not rule.selects(offer.gesture_id, offer.category, offer.tier):
                continue
            hold = _contact_rule_hold(rule, offer, events, now, self._date)
            if hold is not None and (best is None or (hold.available_on or date.max) > (best.available_on or date.max)):
                best = hold
        return best

    def _goodwill_hold(self, ctx: "Context", offer: Offer, events: list[_Event], now: datetime) -> Hold | None:
        rule = self.policy.goodwill
        cost = offer.cost
        if (not rule.enabled or not cost or not ctx.customer.id
                or "lifetime_value" not in ctx.customer.model_fields_set):
            return None
        ltv = ctx.customer.lifetime_value
        if ltv is None:  # stated as unknown: no proportion to keep
            return None
        cap = rule.share * ltv + rule.floor
        horizon = shift(now, -rule.period_days)
        given = sorted((e for e in events if e.outcome == "delivered" and e.cost and e.at >= horizon),
                       key=lambda e: e.at)
        total = sum(e.cost or 0.0 for e in given)
        if total + cost <= cap + budgets.EPSILON:
            return None
        available: date | None = None
        remaining = total
        for e in given:
            remaining -= e.cost or 0.0
            if remaining + cost <= cap + budgets.EPSILON:
                available = self._date(shift(e.at, rule.period_days))
                break
        detail = (f"goodwill cap: {total:.2f} given to this customer in the last {_days(rule.period_days)}; "
                  f"{cost:.2f} more would exceed {rule.share:.0%} of lifetime value {ltv:.2f}"
                  + (f" + {rule.floor:.2f}" if rule.floor else "") + f" (cap {cap:.2f})")
        return Hold(offer.gesture_id, "goodwill_cap", detail, available)

    def _budget_hold(self, offer: Offer, scopes: list[tuple[str, str, float | None]],
                     spent: dict[tuple[str, str], float], now: datetime) -> Hold | None:
        cost = offer.cost
        if not cost:
            return None
        for scope, scope_id, limit in scopes:
            assert limit is not None
            used = spent.get((scope, scope_id), 0.0)
            if used + cost > limit + budgets.EPSILON:
                label = "tenant" if scope == "tenant" else f"{scope} {scope_id!r}"
                day = self.policy.budget_day(now)
                return Hold(offer.gesture_id, "over_budget",
                            f"{label} daily budget for {day.isoformat()}: {used:.2f} of {limit:.2f} spent, "
                            f"this costs {cost:.2f}", self.policy.next_budget_day(now))
        return None

    def _authority_hold(self, ctx: "Context", offer: Offer) -> Hold | None:
        level = ctx.staff.level
        limit = self.policy.authority_limits.get(level)
        if limit is None or not offer.cost or offer.cost <= limit + budgets.EPSILON:
            return None
        return Hold(offer.gesture_id, "over_budget",
                    f"costs {offer.cost:.2f}, over the {level} staff level's limit of {limit:.2f} "
                    "without approval")

    def _abuse_hold(self, offer: Offer, events: list[_Event], now: datetime) -> Hold | None:
        rule = self.policy.abuse
        if not rule.enabled or not offer.cost or not events:
            return None
        times = _abuse_times(events, rule.category, shift(now, -rule.window_days))
        if len(times) < rule.threshold:
            return None
        available = self._date(shift(times[rule.threshold - 1], rule.window_days))
        return Hold(offer.gesture_id, "abuse_review",
                    f"customer flagged for review: {len(times)} {rule.category} gestures accepted or delivered "
                    f"in the last {_days(rule.window_days)} (threshold {rule.threshold}); "
                    f"monetary gestures need approval", available)

    # -- the Memory seam: record_decision ---------------------------------------------

    def record_decision(self, ctx: "Context", result: "RecommendationResult", *,
                        now: datetime | None = None) -> str:
        """Log a decision (and the customer's visit); return the decision id (a UUID)."""
        decision_id = str(uuid.uuid4())
        created = self._now(now)
        self._check_ids(ctx)
        occurred = (check_occurred_at(as_utc(ctx.interaction.occurred_at)) if ctx.interaction.occurred_at
                    else created)
        tenant = ctx.business.id
        customer_id = ctx.customer.id
        key = _screening_key(ctx)
        with self._screened_lock:
            screening = next((s for s in self._screened if s[0] == key), None)
            if screening is not None:
                self._screened.remove(screening)
        known: Mapping[str, tuple[str, str]] = screening[1] if screening else {}
        store_held: Mapping[str, str] = screening[2] if screening else {}

        recs = [{"gesture_id": r.gesture_id, "title": r.title, "category": r.category, "tier": r.tier,
                 "cost": r.cost, "score": r.score, "rules": [m.rule_id for m in r.rules]}
                for r in result.recommendations]
        # ``source: store``: held by this store's screening (contact policy, goodwill cap,
        # budgets, authority limits, abuse review), which a replay of the log applies again.
        held = [{"gesture_id": w.gesture_id, "title": w.title, "tier": w.tier, "cost": w.cost, "score": w.score,
                 "reason": w.reason, "detail": w.detail, "rules": list(w.rules),
                 "available_on": w.available_on.isoformat() if w.available_on else None,
                 "source": "store" if w.gesture_id in store_held else "recommender"}
                for w in [*result.needs_approval, *result.withheld]]
        check_json(ctx.model_dump(exclude_none=True), "")  # JSON mode would turn NaN into null
        logged_context = ctx.model_dump(mode="json", exclude_none=True)
        check_json(recs, "recommendations")
        check_json(held, "withheld")
        gesture_rows: list[dict[str, Any]] = []
        rule_rows: list[dict[str, Any]] = []
        for pos, r in enumerate(result.recommendations):
            gesture_rows.append(dict(decision_id=decision_id, gesture_id=r.gesture_id, position=pos,
                                     status="recommended", category=r.category, tier=r.tier, cost=r.cost,
                                     score=r.score))
            for rule_id in dict.fromkeys(m.rule_id for m in r.rules):
                rule_rows.append(dict(decision_id=decision_id, gesture_id=r.gesture_id, rule_id=rule_id))
        seen = {r.gesture_id for r in result.recommendations}
        for pos, w in enumerate(result.needs_approval, start=len(gesture_rows)):
            if w.gesture_id in seen:
                continue
            seen.add(w.gesture_id)
            category, tier = known.get(w.gesture_id, ("unknown", w.tier))
            gesture_rows.append(dict(decision_id=decision_id, gesture_id=w.gesture_id, position=pos,
                                     status="needs_approval", category=category, tier=tier, cost=w.cost,
                                     score=w.score))
            for rule_id in dict.fromkeys(w.rules):
                rule_rows.append(dict(decision_id=decision_id, gesture_id=w.gesture_id, rule_id=rule_id))

        def write(conn: Connection) -> None:
            conn.execute(insert(_D).values(
                id=decision_id, created_at=created, occurred_at=occurred, tenant=tenant, customer_id=customer_id,
                store_id=ctx.business.store_id, staff_id=ctx.staff.id, staff_level=ctx.staff.level,
                issue=ctx.interaction.issue, context_hash=result.receipt.context_hash,
                receipt_id=result.receipt.id, ruleset_version=result.ruleset_version,
                recommendations=recs, held=held, context=logged_context))
            if gesture_rows:
                conn.execute(insert(_DG), gesture_rows)
            if rule_rows:
                conn.execute(insert(_DR), rule_rows)
            if customer_id:
                same_visit = None
                if ctx.interaction.occurred_at is not None:  # a retried call for the same interaction
                    same_visit = conn.execute(
                        select(_V.c.id).where(_V.c.tenant == tenant, _V.c.customer_id == customer_id,
                                              _V.c.issue == ctx.interaction.issue, _V.c.occurred_at == occurred)
                    ).first()
                if same_visit is None:
                    conn.execute(insert(_V).values(tenant=tenant, customer_id=customer_id, decision_id=decision_id,
                                                   issue=ctx.interaction.issue, store_id=ctx.business.store_id,
                                                   occurred_at=occurred))

        self._write(write)
        return decision_id

    # -- outcomes -----------------------------------------------------------------

    def record_outcome(self, decision_id: str, gesture_id: str, outcome: str, idempotency_key: str,
                       note: str | None = None, actual_cost: float | None = None, tenant: str | None = None,
                       *, now: datetime | None = None) -> OutcomeRecord:
        """Record what happened to a recommended gesture.

        Idempotent: the same ``idempotency_key`` with the same payload returns the stored
        outcome (``replayed=True``) and counts nothing twice; with a different payload it
        raises :class:`IdempotencyConflict`. ``delivered`` consumes the tenant's budgets
        (``actual_cost``, else the recommended cost) in the same transaction, or raises
        :class:`BudgetExceeded` and records nothing. ``tenant``, when given, must own the
        decision (:class:`TenantMismatch`).
        """
        if outcome not in OUTCOME_KINDS:
            raise InvalidStoreInput(f"outcome: invalid outcome {str(outcome)[:40]!r}: one of "
                                    f"{', '.join(OUTCOME_KINDS)}", field="outcome")
        if not isinstance(idempotency_key, str) or not idempotency_key.strip() or len(idempotency_key) > 200:
            raise InvalidStoreInput("idempotency_key: an idempotency key (1 to 200 characters) is required",
                                    field="idempotency_key")
        check_text(idempotency_key, "idempotency_key", max_length=200)
        check_text(gesture_id, "gesture_id", max_length=200)
        if note is not None:
            check_text(note, "note", max_length=2000, empty=True)
        if actual_cost is not None:
            if isinstance(actual_cost, bool) or not isinstance(actual_cost, (int, float)) \
                    or not math.isfinite(actual_cost) or not 0 <= actual_cost <= 1e12:
                raise InvalidStoreInput(f"actual_cost: invalid actual cost {actual_cost!r}: a finite number "
                                        "from 0 to 1e12", field="actual_cost")
            actual_cost = float(actual_cost)
        if tenant is not None:
            check_tenant(tenant)
        _check_decision_id(decision_id)
        recorded_at = self._now(now)
        policy = self.policy

        def write(conn: Connection) -> OutcomeRecord:
            dec = conn.execute(select(_D.c.tenant, _D.c.customer_id, _D.c.store_id, _D.c.staff_id)
                               .where(_D.c.id == decision_id)).first()
            if dec is None:
                raise UnknownDecision(decision_id)
            if tenant is not None and dec.tenant != tenant:
                raise TenantMismatch(f"decision {decision_id}", tenant)
            def replay(existing: Any) -> OutcomeRecord:
                diffs = [f"{name}: stored {old!r}, now {new!r}" for name, old, new in (
                    ("decision", existing.decision_id, decision_id), ("gesture", existing.gesture_id, gesture_id),
                    ("outcome", existing.outcome, outcome), ("note", existing.note, note),
                    ("actual_cost", existing.actual_cost, actual_cost)) if old != new]
                if diffs:
                    raise IdempotencyConflict(idempotency_key, diffs)
                return _outcome_record(existing, replayed=True)

            existing = conn.execute(select(_O).where(_O.c.tenant == dec.tenant,
                                                     _O.c.idempotency_key == idempotency_key)).first()
            if existing is not None:
                return replay(existing)
            dg = conn.execute(select(_DG.c.category, _DG.c.tier, _DG.c.cost)
                              .where(_DG.c.decision_id == decision_id, _DG.c.gesture_id == gesture_id)).first()
            if dg is None:
                listed = conn.execute(select(_DG.c.gesture_id).where(_DG.c.decision_id == decision_id)
                                      .order_by(_DG.c.position)).scalars().all()
                raise GestureNotInDecision(decision_id, gesture_id, list(listed))
            dup = conn.execute(select(_O).where(
                _O.c.decision_id == decision_id, _O.c.gesture_id == gesture_id, _O.c.outcome == outcome)).first()
            if dup is not None:
                if dup.idempotency_key == idempotency_key:  # a concurrent retry committed in between
                    return replay(dup)
                raise DuplicateOutcome(decision_id, gesture_id, outcome, dup.idempotency_key)
            cost = actual_cost if actual_cost is not None else (None if dg.cost is None else float(dg.cost))
            values = dict(tenant=dec.tenant, idempotency_key=idempotency_key, decision_id=decision_id,
                          gesture_id=gesture_id, outcome=outcome, customer_id=dec.customer_id,
                          category=dg.category, tier=dg.tier, note=note, actual_cost=actual_cost, cost=cost,
                          recorded_at=recorded_at)
            key = conn.execute(insert(_O).values(**values)).inserted_primary_key
            assert key is not None
            new_id = key[0]
            if outcome == "delivered" and cost:
                scopes = budgets.scopes_for(policy.budget_for(dec.tenant), dec.store_id, dec.staff_id)
                budgets.consume(conn, dec.tenant, scopes, cost, policy.budget_day(recorded_at))
            return OutcomeRecord(id=new_id, **values)

        return self._write(write)

    def recent_outcomes(self, tenant: str, limit: int = 20) -> list[OutcomeRecord]:
        """The tenant's latest outcomes, newest first (the agent console's feed)."""
        check_tenant(tenant)

        def load(conn: Connection) -> list[OutcomeRecord]:
            rows = conn.execute(select(_O).where(_O.c.tenant == tenant)
                                .order_by(_O.c.recorded_at.desc(), _O.c.id.desc()).limit(max(1, min(limit, 500))))
            return [_outcome_record(r) for r in rows]

        return self._read(load)

    def get_decision(self, decision_id: str, tenant: str | None = None) -> DecisionRecord:
        """A logged decision with its gestures and outcomes."""

        _check_decision_id(decision_id)
        if tenant is not None:
            check_tenant(tenant)

        def load(conn: Connection) -> DecisionRecord:
            row = conn.execute(select(_D).where(_D.c.id == decision_id)).first()
            if row is None:
                raise UnknownDecision(decision_id)
            if tenant is not None and row.tenant != tenant:
                raise TenantMismatch(f"decision {decision_id}", tenant)
            rules: dict[str, list[str]] = defaultdict(list)
            for r in conn.execute(select(_DR.c.gesture_id, _DR.c.rule_id).where(_DR.c.decision_id == decision_id)):
                rules[r.gesture_id].append(r.rule_id)
            gestures = [DecisionGestureRecord(gesture_id=g.gesture_id, status=g.status, category=g.category,
                                              tier=g.tier, cost=g.cost, score=g.score, rules=rules[g.gesture_id])
                        for g in conn.execute(select(_DG).where(_DG.c.decision_id == decision_id)
                                              .order_by(_DG.c.position))]
            outcomes = [_outcome_record(o) for o in conn.execute(
                select(_O).where(_O.c.decision_id == decision_id).order_by(_O.c.id))]
            data = {c: getattr(row, c) for c in _D.c.keys()}
            return DecisionRecord(**data, gestures=gestures, outcomes=outcomes)

        return self._read(load)

    # -- customers ----------------------------------------------------------------

    def customer(self, tenant: str, customer_id: str, *, now: datetime | None = None,
                 limit: int = 20) -> CustomerView:
        """A customer's profile, their last ``limit`` visits and gestures, and review flags."""
        check_tenant(tenant)
        _check_customer(customer_id)
        now = self._now(now)
        policy = self.policy

        def load(conn: Connection) -> CustomerView:
            prof = conn.execute(select(_C).where(_C.c.tenant == tenant, _C.c.customer_id == customer_id)).first()
            visits = conn.execute(select(_V).where(_V.c.tenant == tenant, _V.c.customer_id == customer_id)
                                  .order_by(_V.c.occurred_at.desc()).limit(limit)).all()
            gestures = conn.execute(select(_O).where(_O.c.tenant == tenant, _O.c.customer_id == customer_id)
                                    .order_by(_O.c.recorded_at.desc(), _O.c.id.desc()).limit(limit)).all()
            events = self._history(conn, tenant, customer_id, now, policy.lookback_days())
            return _customer_view(tenant, customer_id, prof, visits, gestures, events, policy, now)

        return self._read(load)

    def update_customer(self, tenant: str, customer_id: str, *,
                        preferences: Mapping[str, bool | int | float | str | None] | None = None,
                        interests: Iterable[str] = (), remove_interests: Iterable[str] = (),
                        note: str | None = None, now: datetime | None = None) -> CustomerView:
        """Create or update a profile: merge ``preferences`` (a None value removes the key),
        add and remove interests, append a note."""
        check_tenant(tenant)
        _check_customer(customer_id)
        prefs = dict(preferences or {})
        for key, value in prefs.items():
            if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
                raise InvalidStoreInput(f"preferences: invalid preference key {str(key)[:80]!r}: a letter or _, then letters, "
                                        "digits, _ (at most 64)", field="preferences")
            where = f"preferences.{key}"
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise InvalidStoreInput(f"{where}: a string, number or true/false, got {type(value).__name__}",
                                        field=where)
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidStoreInput(f"{where}: numbers must be finite (no NaN or Infinity)", field=where)
            if isinstance(value, int) and not isinstance(value, bool) and not -2**53 <= value <= 2**53:
                raise InvalidStoreInput(f"{where}: integers must lie within +-2**53", field=where)
            if isinstance(value, str):
                check_text(value, where, max_length=2000, empty=True)
        add = [check_text(i, "interests", max_length=200) for i in interests]
        drop = {check_text(i, "remove_interests", max_length=200) for i in remove_interests}
        if note is not None:
            check_text(note, "note", max_length=2000)
        when = self._now(now)

        def write(conn: Connection) -> None:
            where = and_(_C.c.tenant == tenant, _C.c.customer_id == customer_id)
            sel = select(_C).where(where)
            if conn.dialect.name == "postgresql":
                sel = sel.with_for_update()
            row = conn.execute(sel).first()
            cur_prefs = dict(row.preferences) if row else {}
            cur_interests = list(row.interests) if row else []
            cur_notes = list(row.notes) if row else []
            for key, value in prefs.items():
                if value is None:
                    cur_prefs.pop(key, None)
                else:
                    cur_prefs[key] = value
            cur_interests = [i for i in cur_interests if i not in drop]
            cur_interests += [i for i in dict.fromkeys(add) if i not in cur_interests]
            if note is not None:
                cur_notes.append({"at": when.isoformat(), "text": note})
            if len(cur_prefs) > 100 or len(cur_interests) > 100:
                raise InvalidStoreInput("a profile holds at most 100 preferences and 100 interests")
            values = dict(preferences=cur_prefs, interests=cur_interests, notes=cur_notes, updated_at=when)
            if row is None:
                conn.execute(insert(_C).values(tenant=tenant, customer_id=customer_id, created_at=when, **values))
            else:
                conn.execute(update(_C).where(where).values(**values))

        self._write(write)
        return self.customer(tenant, customer_id, now=when)

    def forget_customer(self, tenant: str, customer_id: str) -> bool:
        """Delete a customer's profile and visits (decisions and outcomes stay, for the audit)."""
        check_tenant(tenant)
        _check_customer(customer_id)

        def write(conn: Connection) -> bool:
            a = conn.execute(delete(_C).where(_C.c.tenant == tenant, _C.c.customer_id == customer_id)).rowcount
            b = conn.execute(delete(_V).where(_V.c.tenant == tenant, _V.c.customer_id == customer_id)).rowcount
            return bool(a or b)

        return self._write(write)

    # -- retention --------------------------------------------------------------------

    def prune(self, before: datetime | date, *, tenant: str | None = None, dry_run: bool = False) -> PruneCounts:
        """Delete what was logged before ``before``: decisions with their gestures, rules and
        outcomes, visits, and budget usage of earlier days; one tenant's or everyone's.

        Refused (``InvalidStoreInput``) inside the policy's look-back
        (:meth:`Policy.lookback_days`): contact rules, the abuse check and the goodwill cap
        read that history, so pruning it would change what is recommended. Customer profiles
        stay (``forget_customer`` removes one).
        """
        cutoff = as_utc(before)
        if tenant is not None:
            check_tenant(tenant)
        days = self.policy.lookback_days()
        latest = shift(self._now(), -days)
        if cutoff > latest:
            raise InvalidStoreInput(
                f"before {cutoff:%Y-%m-%d %H:%M} UTC is inside the policy's {_days(days)} look-back; "
                f"the latest allowed is {latest:%Y-%m-%d %H:%M} UTC")
        day = self.policy.budget_day(cutoff)

        def scoped(table: Any, *conds: Any) -> Any:
            return and_(*conds, table.c.tenant == tenant) if tenant is not None else and_(*conds)

        def work(conn: Connection) -> PruneCounts:
            old = select(_D.c.id).where(scoped(_D, _D.c.created_at < cutoff))
            counts = PruneCounts(
                before=cutoff, tenant=tenant, dry_run=dry_run,
                decisions=_count(conn, scoped(_D, _D.c.created_at < cutoff), _D),
                outcomes=_count(conn, _O.c.decision_id.in_(old), _O),
                visits=_count(conn, scoped(_V, _V.c.occurred_at < cutoff), _V),
                budget_days=_count(conn, scoped(_B, _B.c.day < day), _B))
            if not dry_run:  # children first: no reliance on the database's cascades
                conn.execute(delete(_O).where(_O.c.decision_id.in_(old)))
                conn.execute(delete(_DR).where(_DR.c.decision_id.in_(old)))
                conn.execute(delete(_DG).where(_DG.c.decision_id.in_(old)))
                conn.execute(update(_V).where(_V.c.decision_id.in_(old)).values(decision_id=None))
                conn.execute(delete(_D).where(scoped(_D, _D.c.created_at < cutoff)))
                conn.execute(delete(_V).where(scoped(_V, _V.c.occurred_at < cutoff)))
                conn.execute(delete(_B).where(scoped(_B, _B.c.day < day)))
            return counts

        return self._write(work) if not dry_run else self._read(work)

    # -- budgets and reports ----------------------------------------------------------

    def budget_usage(self, tenant: str, day: date | None = None) -> list[BudgetLine]:
        """What each budget scope of ``tenant`` has spent on ``day`` (default: today)."""
        check_tenant(tenant)
        day = day or self.policy.budget_day(self._now())
        budget = self.policy.budget_for(tenant)

        def load(conn: Connection) -> list[BudgetLine]:
            rows = conn.execute(select(_B).where(_B.c.tenant == tenant, _B.c.day == day)
                                .order_by(_B.c.scope, _B.c.scope_id)).all()
            out = []
            for r in rows:
                limits = {(s, i): lim for s, i, lim in budgets.scopes_for(
                    budget, r.scope_id if r.scope == "store" else None, r.scope_id if r.scope == "staff" else None)}
                out.append(BudgetLine(scope=r.scope, scope_id=r.scope_id, day=r.day, spent=float(r.spent),
                                      limit=limits.get((r.scope, r.scope_id))))
            return out

        return self._read(load)

    def report(self, tenant: str, since: datetime | date | None = None,
               until: datetime | date | None = None) -> "Report":
        """Per gesture and per rule: recommended, offered, accepted, declined, delivered and
        delivered cost, for decisions made in ``[since, until)`` (default: the last 30 days)."""
        from .reports import build_report

        check_tenant(tenant)
        end = as_utc(until) if until is not None else self._now()
        start = as_utc(since) if since is not None else shift(end, -30)
        if start > end:
            raise InvalidStoreInput(f"since ({start.isoformat()}) is after until ({end.isoformat()})")
        return self._read(lambda conn: build_report(conn, tenant, start, end))


# -- helpers ------------------------------------------------------------------------


def _load_policy(policy: Policy | str | Path | None) -> Policy:
    import os

    if isinstance(policy, Policy):
        return policy
    if policy is None:
        env = os.environ.get("RECOMMENDER_POLICY")
        return Policy.load(env) if env else Policy()
    return Policy.load(policy)


def _outcome_record(row: Any, replayed: bool = False) -> OutcomeRecord:
    return OutcomeRecord(id=row.id, decision_id=row.decision_id, gesture_id=row.gesture_id, outcome=row.outcome,
                         tenant=row.tenant, customer_id=row.customer_id, category=row.category, tier=row.tier,
                         idempotency_key=row.idempotency_key,
                         note=row.note, actual_cost=row.actual_cost, cost=row.cost, recorded_at=row.recorded_at,
                         replayed=replayed)


def _latest_per_gesture(events: Iterable[_Event]) -> dict[tuple[str, str], datetime]:
    """The last time each (decision, gesture) pair was received: counted once however many outcomes."""
    latest: dict[tuple[str, str], datetime] = {}
    for e in events:
        key = (e.decision_id, e.gesture_id)
        if key not in latest or e.at > latest[key]:
            latest[key] = e.at
    return latest


def _contact_rule_hold(rule: ContactRule, offer: Offer, events: list[_Event], now: datetime,
                       to_date: Callable[[datetime], date]) -> Hold | None:
    kinds = RECEIVED + (("declined",) if rule.count_declined else ())
    relevant = [e for e in events if e.outcome in kinds and rule.selects(e.gesture_id, e.category, e.tier)
                and (not rule.per_gesture or e.gesture_id == offer.gesture_id)]
    if not relevant:
        return None
    times = sorted(_latest_per_gesture(relevant).values(), reverse=True)
    what = offer.gesture_id if rule.per_gesture else rule.label()
    if rule.suppress_days is not None:
        last = times[0]
        until = shift(last, rule.suppress_days)
        if until > now:
            ago = (now - last).total_seconds() / 86400
            outcome = max((e for e in relevant if e.at == last), key=lambda e: RECEIVED.index(e.outcome)
                          if e.outcome in RECEIVED else -1).outcome
            return Hold(offer.gesture_id, "suppressed",
                        f"contact policy ({rule.label()}): {what} was {outcome} to this customer on "
                        f"{to_date(last).isoformat()} ({ago:.0f} days ago); not again within "
                        f"{_days(rule.suppress_days)}", to_date(until))
    if rule.max_count is not None:
        horizon = shift(now, -rule.window_days)
        in_window = [t for t in times if t >= horizon]
        if len(in_window) >= rule.max_count:
            until = shift(in_window[rule.max_count - 1], rule.window_days)
            return Hold(offer.gesture_id, "suppressed",
                        f"contact policy ({rule.label()}): frequency cap of {rule.max_count} per "
                        f"{_days(rule.window_days)} reached ({len(in_window)} received)", to_date(until))
    return None


def _abuse_times(events: list[_Event], category: str, horizon: datetime) -> list[datetime]:
    """Times (newest first) of distinct gestures of ``category`` accepted or delivered since ``horizon``."""
    hits = [e for e in events if e.category == category and e.outcome in ("accepted", "delivered") and e.at >= horizon]
    return sorted(_latest_per_gesture(hits).values(), reverse=True)


def _customer_view(tenant: str, customer_id: str, prof: Any, visits: Sequence[Any], gestures: Sequence[Any],
                   events: list[_Event], policy: Policy, now: datetime) -> CustomerView:
    horizon = shift(now, -policy.goodwill.period_days)
    given = sum(e.cost or 0.0 for e in events if e.outcome == "delivered" and e.at >= horizon)
    abuse = policy.abuse
    flagged = abuse.enabled and len(_abuse_times(events, abuse.category,
                                                 shift(now, -abuse.window_days))) >= abuse.threshold
    notes = [Note(at=datetime.fromisoformat(n["at"]), text=n["text"]) for n in (prof.notes if prof else [])]
    return CustomerView(
        tenant=tenant, id=customer_id, known=bool(prof or visits or gestures),
        preferences=dict(prof.preferences) if prof else {}, interests=list(prof.interests) if prof else [],
        notes=notes,
        visits=[VisitRecord(occurred_at=v.occurred_at, issue=v.issue, store_id=v.store_id, decision_id=v.decision_id)
                for v in visits],
        gestures=[GestureEvent(decision_id=g.decision_id, gesture_id=g.gesture_id, category=g.category,
                               outcome=g.outcome, cost=g.cost, note=g.note, recorded_at=g.recorded_at)
                  for g in gestures],
        goodwill_given=round(given, 2), flagged_for_review=flagged,
    )


def open_store(url: str | None = None, *, policy: Policy | str | Path | None = None, clock: Clock | None = None,
               upgrade: bool | None = None) -> Store:
    """Open the memory store at ``url``.

    ``sqlite:///path/to/file.db`` or a bare path: a local file (created and migrated on
    first use). ``postgresql://user:pw@host/db``: PostgreSQL through psycopg 3 (run
    ``recommender db upgrade --url ...`` once first). None: ``$RECOMMENDER_DB_URL``, else
    ``recommender.db`` in the user's data directory (``~/.local/share/recommender/`` on Linux).
    Raises :class:`StoreUnavailable` (naming the URL, password masked) when the database
    cannot be reached and :class:`SchemaOutOfDate` when migrations are due.
    """
    return Store(url, policy=policy, clock=clock, upgrade=upgrade)


def _screening_key(ctx: "Context") -> tuple[Any, ...]:
    """What identifies one interaction between its screening and its logging."""
    return (ctx.business.id, ctx.business.store_id, ctx.customer.id, ctx.staff.id, ctx.staff.level,
            ctx.interaction.issue, ctx.interaction.occurred_at)


@functools.lru_cache(maxsize=1)
def _max_last_visit_days() -> float:
    """The largest ``customer.last_visit_days`` the context accepts (a longer absence saturates)."""
    from ..context import Customer

    prop = Customer.model_json_schema()["properties"].get("last_visit_days", {})
    for option in [prop, *prop.get("anyOf", [])]:
        if "maximum" in option:
            return float(option["maximum"])
    return 100_000.0


def _valid_updates(ctx: "Context", section: str, updates: dict[str, Any]) -> dict[str, Any]:
    """The enrichment ``updates`` of one context section that the context accepts.

    History is read back from rows that may predate today's bounds (a NUL kept by SQLite, an
    interest longer than today's limit): a value the context would refuse is dropped (a list
    or map loses just its bad items) rather than failing every later request of the customer.
    """
    from pydantic import ValidationError

    from ..context import Customer, Interaction

    def valid(key: str, value: Any) -> bool:
        try:
            if section == "customer":
                Customer.model_validate({key: value})
            else:
                Interaction.model_validate({"issue": ctx.interaction.issue, key: value})
        except (ValidationError, ValueError, TypeError):
            return False
        try:
            check_json(value, key)
        except InvalidStoreInput:
            return False
        return True

    out: dict[str, Any] = {}
    for key, value in updates.items():
        if valid(key, value):
            out[key] = value
        elif isinstance(value, list):
            kept = [v for v in value if valid(key, [v])]
            if kept:
                out[key] = kept
        elif isinstance(value, dict):
            kept_map = {k: v for k, v in value.items() if valid(key, {k: v})}
            if kept_map:
                out[key] = kept_map
    return out


def _count(conn: Connection, where: Any, table: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())
