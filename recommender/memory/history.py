"""A customer's history: what the store remembers fills the context (the Memory seam's ``enrich``).

Visits, the gestures a customer received and their profile give ``customer.last_visit_days``,
``prior_issues``, ``recent_gestures``, ``preferences``, ``interests`` and
``interaction.repeat_issue``; the outcome events read here are also what screening and the
customer view judge by.
"""

from __future__ import annotations

import functools
import json
import time as _time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple

from sqlalchemy import Connection, Float, String, Text, bindparam, cast, func, literal, null, select, union_all

from . import budgets
from .errors import InvalidStoreInput
from .models import BudgetUsage, CustomerProfileRow, Outcome, UTCDateTime, Visit, table_of
from .percentiles import Percentiles
from .policy import RECEIVED
from .values import MIN_TIME, check_json, shift

if TYPE_CHECKING:
    from ..context import Context

__all__ = ["History", "Event", "Snapshot", "latest_per_gesture", "abuse_times", "valid_updates", "screening_key"]

#: Snapshots kept until their interaction's screening takes them, at most this many and for
#: at most this many seconds (a request that failed between the two leaves its snapshot).
_SNAPSHOTS_MAX = 4096
_SNAPSHOT_SECONDS = 2.0

_O = table_of(Outcome)
_C = table_of(CustomerProfileRow)
_V = table_of(Visit)
_B = table_of(BudgetUsage)


@dataclass(frozen=True)
class Event:
    """One outcome in a customer's history (policy input)."""

    decision_id: str
    gesture_id: str
    category: str
    tier: str
    outcome: str
    cost: float | None
    at: datetime


# The hot path's statements, built once: building a statement per call cost more CPU than
# running it (the parameters are bound at execution).
_EVENTS = (select(_O.c.decision_id, _O.c.gesture_id, _O.c.category, _O.c.tier, _O.c.outcome, _O.c.cost,
                  _O.c.recorded_at)
           .where(_O.c.tenant == bindparam("tenant"), _O.c.customer_id == bindparam("customer_id"),
                  _O.c.recorded_at <= bindparam("now", type_=_O.c.recorded_at.type),
                  _O.c.recorded_at >= bindparam("since", type_=_O.c.recorded_at.type)))
#: The customer's latest 200 visits (dated 1900 or later: older ones were logged before
#: dates were bounded and are not history); :func:`_union_read` keeps each issue's latest.
_LATEST = (select(_V.c.issue, _V.c.occurred_at)
           .where(_V.c.tenant == bindparam("tenant"), _V.c.customer_id == bindparam("customer_id"),
                  _V.c.occurred_at < bindparam("now", type_=_V.c.occurred_at.type), _V.c.occurred_at >= MIN_TIME)
           .order_by(_V.c.occurred_at.desc()).limit(200).subquery())


def _union_read(budget: bool) -> Any:
    """Everything a decision reads from the store, in one statement (one round trip): the
    customer's profile row (``p``), their latest visit per issue among their latest 200 (``v``),
    their outcome events over the policy's longest window (``e``) and, with ``budget``, the
    capped scopes' spending on the day (``b``). Every branch has the same columns: ``kind``,
    five texts, a number, a time and two JSON texts."""
    text, none_num, none_at = (lambda: cast(null(), String)), cast(null(), Float), cast(null(), UTCDateTime())
    none_json = cast(null(), Text)
    branches = [
        select(literal("p", String).label("kind"), text().label("s1"), text().label("s2"), text().label("s3"),
               text().label("s4"), text().label("s5"), cast(_C.c.lifetime_value, Float).label("num"),
               _C.c.tenure_since.label("at"), cast(_C.c.preferences, Text).label("j1"),
               cast(_C.c.interests, Text).label("j2"))
        .where(_C.c.tenant == bindparam("tenant"), _C.c.customer_id == bindparam("customer_id")),
        select(literal("v", String), _LATEST.c.issue, text(), text(), text(), text(), none_num,
               func.max(_LATEST.c.occurred_at, type_=UTCDateTime()), none_json, none_json)
        .group_by(_LATEST.c.issue),
        select(literal("e", String), _O.c.decision_id, _O.c.gesture_id, _O.c.category, _O.c.tier, _O.c.outcome,
               cast(_O.c.cost, Float), _O.c.recorded_at, none_json, none_json)
        .where(_O.c.tenant == bindparam("tenant"), _O.c.customer_id == bindparam("customer_id"),
               _O.c.recorded_at <= bindparam("now", type_=_O.c.recorded_at.type),
               _O.c.recorded_at >= bindparam("since", type_=_O.c.recorded_at.type)),
    ]
    if budget:
        branches.append(
            select(literal("b", String), _B.c.scope, _B.c.scope_id, text(), text(), text(), cast(_B.c.spent, Float),
                   none_at, none_json, none_json)
            .where(_B.c.tenant == bindparam("tenant"), _B.c.day == bindparam("day", type_=_B.c.day.type),
                   _B.c.scope.in_(bindparam("scopes", expanding=True)),
                   _B.c.scope_id.in_(bindparam("scope_ids", expanding=True))))
    return union_all(*branches)


_READ = {False: _union_read(False), True: _union_read(True)}


class _Row(NamedTuple):
    kind: str
    s1: Any
    s2: Any
    s3: Any
    s4: Any
    s5: Any
    num: Any
    at: Any
    j1: Any
    j2: Any


@functools.lru_cache(maxsize=8)
def _driver_read(dialect: Any) -> tuple[str, Any, Callable[[dict[str, Any]], Any], Callable[[Any], Any] | None]:
    """The read without capped budgets (:data:`_READ`), compiled once for ``dialect`` and run
    with ``exec_driver_sql``: SQLAlchemy's statement cache key (a walk of the whole union on
    every call), bind and row processing cost more CPU than the database's answer. Returns the
    SQL, the compiled statement, the parameters as the driver takes them (each bound value
    processed by its column's type, as the statement would bind it) and the processor of the
    ``at`` column (the only one whose values the driver does not give as the statement would)."""
    compiled = _READ[False].compile(dialect=dialect)
    procs = {name: bind.type.dialect_impl(dialect).bind_processor(dialect) for name, bind in compiled.binds.items()}
    order = compiled.positiontup if compiled.positional else None

    def params(values: dict[str, Any]) -> Any:
        bound = compiled.construct_params(values)
        for name, proc in procs.items():
            if proc is not None and bound.get(name) is not None:
                bound[name] = proc(bound[name])
        return tuple(bound[n] for n in order) if order is not None else bound

    return compiled.string, compiled, params, UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)


def _read_history(conn: Connection, params: dict[str, Any]) -> list[_Row]:
    """:data:`_READ` without capped budgets, through the driver (:func:`_driver_read`): the
    same rows as ``conn.execute(_READ[False], params).all()`` (tested on both databases)."""
    sql, _, bind, at = _driver_read(conn.dialect)
    rows = conn.exec_driver_sql(sql, bind(params)).all()
    if at is None:
        return [_Row(*r) for r in rows]
    return [_Row(r[0], r[1], r[2], r[3], r[4], r[5], r[6], at(r[7]), r[8], r[9]) for r in rows]


@dataclass(frozen=True)
class Snapshot:
    """What screening needs, read with the enrichment of the same interaction (one connection,
    no second read): the customer's outcome events over the policy's longest window and the
    budget scopes' spending today. Taken by :meth:`Screening.screen` for that interaction."""

    events: list[Event]
    spent: dict[tuple[str, str], float] | None  # None: not read (no capped scope)
    scopes: list[tuple[str, str, float | None]]
    day: Any
    taken: float = field(default_factory=_time.monotonic)  # when, on the monotonic clock


class History(Percentiles):
    """Reading a customer's history: outcome events and the context's enrichment."""

    def _history(self, conn: Connection, tenant: str, customer_id: str, now: datetime,
                 lookback_days: float) -> list[Event]:
        rows = conn.execute(_EVENTS, {"tenant": tenant, "customer_id": customer_id, "now": now,
                                      "since": shift(now, -lookback_days)}).all()
        return [Event(r.decision_id, r.gesture_id, r.category, r.tier, r.outcome,
                       None if r.cost is None else float(r.cost), r.recorded_at) for r in rows]

    def _budget_scopes(self, ctx: "Context") -> list[tuple[str, str, float | None]]:
        """The capped budget scopes an offer to ``ctx`` counts against."""
        return [s for s in budgets.scopes_for(self.policy.budget_for(ctx.business.id), ctx.business.store_id,
                                              ctx.staff.id) if s[2] is not None]

    def _snapshots(self) -> dict[tuple[Any, ...], Snapshot]:
        found: dict[tuple[Any, ...], Snapshot] | None = self.__dict__.get("_snapshot_map")
        if found is None:
            found = self.__dict__.setdefault("_snapshot_map", {})
        return found

    def _keep_snapshot(self, key: tuple[Any, ...], snapshot: Snapshot) -> None:
        snaps = self._snapshots()
        with self._screened_lock:
            if len(snaps) >= _SNAPSHOTS_MAX:
                del snaps[next(iter(snaps))]
            snaps[key] = snapshot

    def _take_snapshot(self, key: tuple[Any, ...]) -> Snapshot | None:
        """The snapshot of this interaction's enrichment, if it is fresh (one left by a request
        that never screened is dropped, never used by a later one)."""
        with self._screened_lock:
            snap = self._snapshots().pop(key, None)
        return snap if snap is not None and _time.monotonic() - snap.taken < _SNAPSHOT_SECONDS else None

    # -- the Memory seam: enrich ----------------------------------------------------

    def enrich(self, ctx: "Context") -> dict[str, Any]:
        """Fill history fields for a known customer (``customer.id``; tenant = ``business.id``).

        ``customer.last_visit_days``, ``prior_issues``, ``recent_gestures`` (received within
        ``policy.recent_gestures_days``), ``preferences`` and ``interests`` from the profile,
        and ``interaction.repeat_issue`` (the same issue within ``policy.repeat_issue_days``).
        ``customer.value_percentile`` and ``tenure_percentile`` among the tenant's customers
        (:mod:`.percentiles`), also for an anonymous customer whose context states a lifetime
        value or tenure. The reference time is ``interaction.occurred_at``, else the store's clock.
        """
        customer_id = ctx.customer.id
        if not customer_id:
            c = ctx.customer
            if c.lifetime_value is None and c.tenure_years is None:
                return {}
            self._check_ids(ctx)
            standing = valid_updates(ctx, "customer", self.standing(ctx, self._ctx_now(ctx)))
            return {"customer": standing} if standing else {}
        self._check_ids(ctx)
        tenant = ctx.business.id
        now = self._ctx_now(ctx)
        policy = self.policy

        scopes = self._budget_scopes(ctx)
        day = policy.budget_day(now)
        who = {"tenant": tenant, "customer_id": customer_id, "now": now}

        params: dict[str, Any] = {**who, "since": shift(now, -policy.lookback_days())}
        if scopes:
            params.update(day=day, scopes=[s for s, _, _ in scopes], scope_ids=[i for _, i, _ in scopes])
        rows: Iterable[Any] = self._read(lambda conn: conn.execute(_READ[True], params).all() if scopes
                                         else _read_history(conn, params))
        profile: _Profile | None = None
        visits: list[_Visit] = []
        events: list[Event] = []
        spent: dict[tuple[str, str], float] | None = {} if scopes else None
        for r in rows:
            kind = r.kind
            if kind == "e":
                events.append(Event(r.s1, r.s2, r.s3, r.s4, r.s5, r.num, r.at))
            elif kind == "v":
                visits.append(_Visit(r.s1, r.at))
            elif kind == "p":
                profile = _Profile(_json(r.j1), _json(r.j2), r.num, r.at)
            elif kind == "b" and spent is not None:
                spent[(r.s1, r.s2)] = float(r.num)
        visits.sort(key=lambda v: v.occurred_at, reverse=True)
        self._keep_snapshot(screening_key(ctx), Snapshot(events, spent, scopes, day))
        recent_since = shift(now, -policy.recent_gestures_days)
        events = [e for e in events if e.at >= recent_since]
        customer: dict[str, Any] = {}
        interaction: dict[str, Any] = {}
        if visits:
            last = visits[0].occurred_at
            days = round(max((now - last).total_seconds(), 0.0) / 86400, 2)
            customer["last_visit_days"] = min(days, max_last_visit_days())
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
        customer.update(self.standing(ctx, now, profile.lifetime_value if profile is not None else None,
                                      profile.tenure_since if profile is not None else None))
        out: dict[str, Any] = {"interaction": valid_updates(ctx, "interaction", interaction)}
        customer = valid_updates(ctx, "customer", customer)
        if customer:
            out["customer"] = customer
        return out


class _Profile(NamedTuple):
    preferences: Any
    interests: Any
    lifetime_value: float | None
    tenure_since: datetime | None


class _Visit(NamedTuple):
    issue: str
    occurred_at: datetime


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def latest_per_gesture(events: Iterable[Event]) -> dict[tuple[str, str], datetime]:
    """The last time each (decision, gesture) pair was received: counted once however many outcomes."""
    latest: dict[tuple[str, str], datetime] = {}
    for e in events:
        key = (e.decision_id, e.gesture_id)
        if key not in latest or e.at > latest[key]:
            latest[key] = e.at
    return latest


def abuse_times(events: list[Event], category: str, horizon: datetime) -> list[datetime]:
    """Times (newest first) of distinct gestures of ``category`` accepted or delivered since ``horizon``."""
    hits = [e for e in events if e.category == category and e.outcome in ("accepted", "delivered") and e.at >= horizon]
    return sorted(latest_per_gesture(hits).values(), reverse=True)


@functools.lru_cache(maxsize=1)
def max_last_visit_days() -> float:
    """The largest ``customer.last_visit_days`` the context accepts (a longer absence saturates)."""
    from ..context import Customer

    prop = Customer.model_json_schema()["properties"].get("last_visit_days", {})
    for option in [prop, *prop.get("anyOf", [])]:
        if "maximum" in option:
            return float(option["maximum"])
    return 100_000.0


def valid_updates(ctx: "Context", section: str, updates: dict[str, Any]) -> dict[str, Any]:
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



def screening_key(ctx: "Context") -> tuple[Any, ...]:
    """What identifies one interaction between its enrichment, its screening and its logging."""
    return (ctx.business.id, ctx.business.store_id, ctx.customer.id, ctx.staff.id, ctx.staff.level,
            ctx.interaction.issue, ctx.interaction.occurred_at)
