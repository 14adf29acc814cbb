"""A customer's history: what the store remembers fills the context (the Memory seam's ``enrich``).

Visits, the gestures a customer received and their profile give ``customer.last_visit_days``,
``prior_issues``, ``recent_gestures``, ``preferences``, ``interests`` and
``interaction.repeat_issue``; the outcome events read here are also what screening and the
customer view judge by.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from sqlalchemy import Connection, select

from .errors import InvalidStoreInput
from .models import CustomerProfileRow, Outcome, Visit, table_of
from .percentiles import Percentiles
from .policy import RECEIVED
from .values import MIN_TIME, check_json, shift

if TYPE_CHECKING:
    from ..context import Context

__all__ = ["History", "Event", "latest_per_gesture", "abuse_times", "valid_updates"]

_O = table_of(Outcome)
_C = table_of(CustomerProfileRow)
_V = table_of(Visit)


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


class History(Percentiles):
    """Reading a customer's history: outcome events and the context's enrichment."""

    def _history(self, conn: Connection, tenant: str, customer_id: str, now: datetime,
                 lookback_days: float) -> list[Event]:
        rows = conn.execute(
            select(_O.c.decision_id, _O.c.gesture_id, _O.c.category, _O.c.tier, _O.c.outcome, _O.c.cost,
                   _O.c.recorded_at)
            .where(_O.c.tenant == tenant, _O.c.customer_id == customer_id,
                   _O.c.recorded_at <= now, _O.c.recorded_at >= shift(now, -lookback_days))
        ).all()
        return [Event(r.decision_id, r.gesture_id, r.category, r.tier, r.outcome,
                       None if r.cost is None else float(r.cost), r.recorded_at) for r in rows]

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

        def load(conn: Connection) -> tuple[Any, Sequence[Any], list[Event]]:
            profile = conn.execute(
                select(_C.c.preferences, _C.c.interests, _C.c.lifetime_value, _C.c.tenure_since)
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

