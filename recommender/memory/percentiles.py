"""Where a customer stands among the tenant's own customers: ``customer.value_percentile`` and
``customer.tenure_percentile`` (0-100: the share of the tenant's customers below them).

The store keeps each customer's latest stated lifetime value and the start of their tenure
(``customers.lifetime_value``, ``tenure_since``: written when a decision is logged whose context
states them). Per tenant, each process keeps the sorted values (at most the policy's
``percentiles.sample`` points of the distribution: its quantiles) for
``percentiles.refresh_seconds`` (600), so a request pays a binary search; a refresh (one
indexed scan of the tenant's customers) runs on a background thread while requests go on with
the sample it replaces. A tenant with fewer than ``percentiles.min_customers``
(20) customers of known value (or tenure) gets no percentile: unknown, not a guess, and the
profile's absolute thresholds decide alone.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from .base import StoreBase
from .models import CustomerProfileRow, table_of
from .values import shift

if TYPE_CHECKING:
    from ..context import Context

__all__ = ["Percentiles", "Distribution", "DAYS_PER_YEAR"]

_C = table_of(CustomerProfileRow)
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class Distribution:
    """A tenant's customers: sorted lifetime values and tenure starts (POSIX seconds), each
    thinned to at most the policy's sample size, with how many customers each holds."""

    values: list[float]
    value_count: int
    starts: list[float]
    start_count: int


def _thin(ordered: list[float], size: int) -> list[float]:
    """At most ``size`` evenly spaced points of a sorted list (its quantiles), ends included."""
    n = len(ordered)
    if n <= size:
        return ordered
    return [ordered[round(i * (n - 1) / (size - 1))] for i in range(size)]


def tenure_start(at: datetime, tenure_years: float) -> datetime:
    """The day a customer of ``tenure_years`` at ``at`` started (midnight UTC; saturating at the
    calendar's ends): the same customer stated the same tenure again later the same day starts
    the same day, so their kept facts need no rewrite."""
    return shift(at, -tenure_years * DAYS_PER_YEAR).replace(hour=0, minute=0, second=0, microsecond=0)


class Percentiles(StoreBase):
    """The tenant's distributions, and a customer's place in them."""

    def _distribution(self, tenant: str) -> Distribution:
        rule = self.policy.percentiles

        def load(conn: Connection) -> Distribution:
            values = [float(v) for v in conn.execute(
                select(_C.c.lifetime_value).where(_C.c.tenant == tenant, _C.c.lifetime_value.is_not(None))
                .order_by(_C.c.lifetime_value)).scalars()]
            starts = [s.timestamp() for s in conn.execute(
                select(_C.c.tenure_since).where(_C.c.tenant == tenant, _C.c.tenure_since.is_not(None))
                .order_by(_C.c.tenure_since)).scalars()]
            return Distribution(_thin(values, rule.sample), len(values), _thin(starts, rule.sample), len(starts))

        return self._cached("percentiles", tenant, rule.refresh_seconds, lambda: self._read(load), background=True)

    def standing(self, ctx: "Context", now: datetime, stored_value: float | None = None,
                 stored_start: datetime | None = None) -> dict[str, Any]:
        """``value_percentile`` / ``tenure_percentile`` for the customer of ``ctx`` the caller left
        unset: from the value and tenure the context states, else the stored ones."""
        rule = self.policy.percentiles
        c = ctx.customer
        if not rule.enabled:
            return {}
        value = c.lifetime_value if c.lifetime_value is not None else stored_value
        start = tenure_start(now, c.tenure_years) if c.tenure_years is not None else stored_start
        want_value = c.value_percentile is None and value is not None
        want_tenure = c.tenure_percentile is None and start is not None
        if not (want_value or want_tenure):
            return {}
        dist = self._distribution(ctx.business.id)
        out: dict[str, Any] = {}
        if want_value and value is not None and dist.value_count >= rule.min_customers:
            below = bisect_left(dist.values, float(value))
            out["value_percentile"] = round(100.0 * below / len(dist.values), 1)
        if want_tenure and start is not None and dist.start_count >= rule.min_customers:
            later = len(dist.starts) - bisect_right(dist.starts, start.timestamp())  # less tenure
            out["tenure_percentile"] = round(100.0 * later / len(dist.starts), 1)
        return out
