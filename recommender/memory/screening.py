"""Screening: the offers that contact policy, the goodwill cap, budgets, authority limits or an
abuse review rule out now (the Memory seam's ``screen``).

Each screening is remembered until its decision is logged (:meth:`DecisionLog.record_decision`),
so the log can say which holds were the store's (``source: store``): a replay applies them again.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Callable

from sqlalchemy import Connection

from ..memory_protocol import Hold, Offer
from . import budgets
from .base import as_utc, days_text
from .history import Event, History, abuse_times, latest_per_gesture, screening_key
from .policy import RECEIVED, ContactRule
from .values import shift

if TYPE_CHECKING:
    from ..context import Context

__all__ = ["Screening", "screening_key", "SCREENED_MAX"]

#: Screenings kept until their decision is logged (explanations never log one).
SCREENED_MAX = 4096


class Screening(History):
    """The store's holds on matched offers."""

    def _keep_screening(self, key: tuple[Any, ...], offers: dict[str, tuple[str, str]], held: dict[str, str]) -> None:
        """Keep a screening for the decision of its interaction to log. At most
        :data:`SCREENED_MAX` are kept (an explanation screens and never logs): the oldest goes
        first. Kept by interaction, so taking one costs the same however many wait."""
        with self._screened_lock:
            if self._screened_count >= SCREENED_MAX:
                oldest = next(iter(self._screened))
                entries = self._screened[oldest]
                del entries[0]
                if not entries:
                    del self._screened[oldest]
                self._screened_count -= 1
            self._screened.setdefault(key, []).append((offers, held))
            self._screened_count += 1

    def _take_screening(self, key: tuple[Any, ...]) -> tuple[dict[str, tuple[str, str]], dict[str, str]] | None:
        """The oldest screening kept for this interaction, no longer kept (None: none)."""
        with self._screened_lock:
            entries = self._screened.get(key)
            if not entries:
                return None
            found = entries.pop(0)
            if not entries:
                del self._screened[key]
            self._screened_count -= 1
            return found

    # -- the Memory seam: screen -------------------------------------------------------

    def screen(self, ctx: "Context", offers: list[Offer], *, now: datetime | None = None) -> list[Hold]:
        """Holds for offers that contact policy, abuse review, the goodwill cap, budgets or
        authority limits rule out now. One hold per offer, the first that applies of:
        ``suppressed``, ``goodwill_cap``, ``over_budget`` (budget, then authority limit),
        ``abuse_review``. Within two seconds of :meth:`enrich` for the same interaction (as in
        one ``recommend()``), it judges by what that enrichment read, without reading again."""
        held: dict[str, str] = {}
        self._keep_screening(screening_key(ctx), {o.gesture_id: (o.category, o.tier) for o in offers}, held)
        # Read with the enrichment of this interaction (when it ran: it reads what we need)
        snap = self._take_snapshot(screening_key(ctx)) if ctx.customer.id else None
        if not offers:
            return []
        self._check_ids(ctx)
        now = self._ctx_now(ctx) if now is None else as_utc(now)
        tenant = ctx.business.id
        customer_id = ctx.customer.id
        policy = self.policy
        scopes = self._budget_scopes(ctx)
        day = policy.budget_day(now)
        if snap is not None and (snap.day != day or snap.scopes != scopes):
            snap = None

        def load(conn: Connection) -> tuple[list[Event], dict[tuple[str, str], float]]:
            events = (self._history(conn, tenant, customer_id, now, policy.lookback_days())
                      if customer_id else [])
            spent = budgets.spent_today(conn, tenant, scopes, day) if scopes else {}
            return events, spent

        needs_costs = any(o.cost for o in offers)
        if snap is not None:
            events, spent = snap.events, snap.spent or {}
        else:
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


    def _contact_hold(self, offer: Offer, events: list[Event], now: datetime) -> Hold | None:
        best: Hold | None = None
        for rule in self.policy.contact:
            if not rule.selects(offer.gesture_id, offer.category, offer.tier):
                continue
            hold = contact_rule_hold(rule, offer, events, now, self._date)
            if hold is not None and (best is None or (hold.available_on or date.max) > (best.available_on or date.max)):
                best = hold
        return best

    def _goodwill_hold(self, ctx: "Context", offer: Offer, events: list[Event], now: datetime) -> Hold | None:
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
        detail = (f"goodwill cap: {total:.2f} given to this customer in the last {days_text(rule.period_days)}; "
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

    def _abuse_hold(self, offer: Offer, events: list[Event], now: datetime) -> Hold | None:
        rule = self.policy.abuse
        if not rule.enabled or not offer.cost or not events:
            return None
        times = abuse_times(events, rule.category, shift(now, -rule.window_days))
        if len(times) < rule.threshold:
            return None
        available = self._date(shift(times[rule.threshold - 1], rule.window_days))
        return Hold(offer.gesture_id, "abuse_review",
                    f"customer flagged for review: {len(times)} {rule.category} gestures accepted or delivered "
                    f"in the last {days_text(rule.window_days)} (threshold {rule.threshold}); "
                    f"monetary gestures need approval", available)


def contact_rule_hold(rule: ContactRule, offer: Offer, events: list[Event], now: datetime,
                       to_date: Callable[[datetime], date]) -> Hold | None:
    kinds = RECEIVED + (("declined",) if rule.count_declined else ())
    relevant = [e for e in events if e.outcome in kinds and rule.selects(e.gesture_id, e.category, e.tier)
                and (not rule.per_gesture or e.gesture_id == offer.gesture_id)]
    if not relevant:
        return None
    times = sorted(latest_per_gesture(relevant).values(), reverse=True)
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
                        f"{days_text(rule.suppress_days)}", to_date(until))
    if rule.max_count is not None:
        horizon = shift(now, -rule.window_days)
        in_window = [t for t in times if t >= horizon]
        if len(in_window) >= rule.max_count:
            until = shift(in_window[rule.max_count - 1], rule.window_days)
            return Hold(offer.gesture_id, "suppressed",
                        f"contact policy ({rule.label()}): frequency cap of {rule.max_count} per "
                        f"{days_text(rule.window_days)} reached ({len(in_window)} received)", to_date(until))
    return None


