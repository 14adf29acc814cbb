"""What the agent console's insights page reads: outcomes per day and per gesture, coverage of
negative experiences and the extras actually given, from the decision log and the outcomes.

Read-only; bounded (the newest :data:`MAX_DECISIONS` decisions and :data:`MAX_OUTCOMES`
outcomes of the period are read).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select

from .models import Decision, Outcome, table_of

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Day", "Coverage", "ExtrasRate", "Trends", "trends", "MAX_DECISIONS", "MAX_OUTCOMES"]

MAX_DECISIONS = 20_000
MAX_OUTCOMES = 200_000

_D = table_of(Decision)
_O = table_of(Outcome)


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Day(_M):
    """Outcomes recorded on one day (UTC)."""

    day: date
    offered: int = 0
    accepted: int = 0
    declined: int = 0
    delivered: int = 0
    cost: float = Field(default=0.0, description="Cost of the gestures delivered that day")
    acceptance_rate: float | None = Field(default=None, description="accepted / (accepted + declined)")


class Coverage(_M):
    """Negative experiences (severity >= 1) and how many got a recover gesture."""

    decisions: int
    negative: int
    covered: int
    rate: float | None = None


class ExtrasRate(_M):
    """Decisions with an extra on offer and how many got one, against the business's target."""

    decisions: int
    on_offer: int
    given: int
    rate: float | None = None
    target: float | None = None


class Trends(_M):
    days: list[Day]
    gesture_days: dict[str, list[Day]]
    coverage: Coverage
    extras: ExtrasRate


def _rate(a: int, b: int) -> float | None:
    return None if not b else round(a / b, 4)


def _finish(days: dict[date, Day]) -> list[Day]:
    out = []
    for day in sorted(days):
        d = days[day]
        d.cost = round(d.cost, 2)
        d.acceptance_rate = _rate(d.accepted, d.accepted + d.declined)
        out.append(d)
    return out


def trends(store: "Store", tenant: str, since: datetime, until: datetime) -> Trends:
    """Outcomes per day, overall and per gesture, coverage and the extras rate for ``[since, until)``."""

    def load(conn: Connection) -> tuple[Any, Any]:
        outcomes = conn.execute(
            select(_O.c.gesture_id, _O.c.outcome, _O.c.cost, _O.c.recorded_at)
            .where(_O.c.tenant == tenant, _O.c.recorded_at >= since, _O.c.recorded_at < until)
            .order_by(_O.c.recorded_at.desc()).limit(MAX_OUTCOMES)).all()
        decisions = conn.execute(
            select(_D.c.recommendations, _D.c.held, _D.c.context)
            .where(_D.c.tenant == tenant, _D.c.created_at >= since, _D.c.created_at < until)
            .order_by(_D.c.created_at.desc()).limit(MAX_DECISIONS)).all()
        return outcomes, decisions

    outcomes, decisions = store._read(load)
    overall: dict[date, Day] = {}
    per: dict[str, dict[date, Day]] = defaultdict(dict)
    for o in outcomes:
        day = o.recorded_at.date()
        for bucket in (overall, per[o.gesture_id]):
            d = bucket.setdefault(day, Day(day=day))
            setattr(d, o.outcome, getattr(d, o.outcome) + 1)
            if o.outcome == "delivered" and o.cost:
                d.cost += float(o.cost)
    negative = covered = on_offer = given = 0
    for dec in decisions:
        recs = dec.recommendations or []
        tiers = {r.get("tier") for r in recs}
        interaction = (dec.context or {}).get("interaction") or {}
        severity = interaction.get("severity")
        if isinstance(severity, int) and severity >= 1:
            negative += 1
            covered += "recover" in tiers
        has_extra = "exceed" in tiers
        offered = has_extra or any(h.get("reason") == "extras_rate" for h in (dec.held or []))
        on_offer += offered
        given += has_extra
    return Trends(days=_finish(overall), gesture_days={g: _finish(d) for g, d in sorted(per.items())},
                  coverage=Coverage(decisions=len(decisions), negative=negative, covered=covered,
                                    rate=_rate(covered, negative)),
                  extras=ExtrasRate(decisions=len(decisions), on_offer=on_offer, given=given,
                                    rate=_rate(given, on_offer)))
