"""The realised extras rate steers the draw.

The extras draw (:func:`recommender.extras.draw`) gives about ``extras_rate`` of the
interactions with an extra on offer one, aimed at value and risk. How many it really lists
depends on the business's customers (the aim favours high-value, loyal and new ones), the
listing caps and what the store holds back. So the store tracks, per tenant, over its last
``extras_steer.max_decisions`` (1,000) decisions with an extra on offer within
``extras_steer.window_days`` (30), the share that got one listed, and returns a steer that scales
the draw's chance towards the target:

    steer = clamp(mean steer in force over the window x target / realised, low, high)

The mean steer in force makes the correction cumulative: a rate already pulled to the target
under a steer of 1.6 keeps 1.6 instead of swinging back to 1.0 (with no steer in force yet, it
is ``target / realised``). Below ``extras_steer.min_decisions`` (50) such decisions: 1.0.
Each decision logs the steer its draw used (``decisions.extras_steer``), and a replay uses that
one, never a recomputed one. Each process re-reads a tenant's window at most every
``extras_steer.refresh_seconds`` (60).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection, select, true

from .base import StoreBase, check_tenant
from .models import Decision, table_of
from .values import shift

if TYPE_CHECKING:
    from ..context import Context

__all__ = ["ExtrasSteering", "Realised"]

_D = table_of(Decision)

Realised = tuple[int, int, float]  # decisions with an extra on offer, how many listed one, mean steer


class ExtrasSteering(StoreBase):
    """The steer of the extras draw from the tenant's realised rate."""

    def realised_extras(self, tenant: str) -> Realised:
        """Over the tenant's window: decisions with an extra on offer, how many listed one, and
        the mean steer their draws used (kept for ``extras_steer.refresh_seconds``)."""
        check_tenant(tenant)
        rule = self.policy.extras_steer

        def load(conn: Connection) -> Realised:
            since = shift(self._now(), -rule.window_days)
            rows = conn.execute(
                select(_D.c.extras_listed, _D.c.extras_steer)
                .where(_D.c.tenant == tenant, _D.c.extras_offered == true(), _D.c.created_at >= since)
                .order_by(_D.c.created_at.desc()).limit(rule.max_decisions)).all()
            if not rows:
                return 0, 0, 1.0
            listed = sum(1 for r in rows if r.extras_listed)
            mean = sum(1.0 if r.extras_steer is None else float(r.extras_steer) for r in rows) / len(rows)
            return len(rows), listed, mean

        return self._cached("extras", tenant, rule.refresh_seconds, lambda: self._read(load), background=True)

    def extras_steer(self, ctx: "Context", target: float) -> float:
        """The factor the extras draw's chance is scaled by for ``ctx``'s tenant, to bring its
        realised rate to ``target`` (the profile's ``extras_rate``); 1.0 until the window holds
        ``extras_steer.min_decisions`` decisions with an extra on offer."""
        rule = self.policy.extras_steer
        if not rule.enabled or target <= 0 or target >= 1:
            return 1.0
        offered, listed, mean = self.realised_extras(ctx.business.id)
        if offered < rule.min_decisions:
            return 1.0
        realised = listed / offered
        steer = rule.high if realised <= 0 else mean * target / realised
        return round(min(max(steer, rule.low), rule.high), 4)
