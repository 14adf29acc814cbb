"""Customers: a tenant's profile of a customer (preferences, interests, notes), the customer
view (profile, visits, gestures, goodwill given, review flag), and forgetting a customer.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import Connection, and_, delete, insert, select, update

from ..context import MAX_EXACT_INT, MAX_NAME_CHARS, MAX_TEXT_CHARS
from .base import check_customer, check_tenant
from .errors import InvalidStoreInput
from .history import Event, History, abuse_times
from .models import CustomerProfileRow, Outcome, Visit, table_of
from .policy import Policy
from .records import CustomerView, GestureEvent, Note, VisitRecord
from .values import check_text, shift

__all__ = ["Customers"]

_O = table_of(Outcome)
_C = table_of(CustomerProfileRow)
_V = table_of(Visit)
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class Customers(History):
    """Reading, updating and forgetting customers."""

    # -- customers ----------------------------------------------------------------

    def customer(self, tenant: str, customer_id: str, *, now: datetime | None = None,
                 limit: int = 20) -> CustomerView:
        """A customer's profile, their last ``limit`` visits and gestures, and review flags."""
        check_tenant(tenant)
        check_customer(customer_id)
        now = self._now(now)
        policy = self.policy

        def load(conn: Connection) -> CustomerView:
            prof = conn.execute(select(_C).where(_C.c.tenant == tenant, _C.c.customer_id == customer_id)).first()
            visits = conn.execute(select(_V).where(_V.c.tenant == tenant, _V.c.customer_id == customer_id)
                                  .order_by(_V.c.occurred_at.desc()).limit(limit)).all()
            gestures = conn.execute(select(_O).where(_O.c.tenant == tenant, _O.c.customer_id == customer_id)
                                    .order_by(_O.c.recorded_at.desc(), _O.c.id.desc()).limit(limit)).all()
            events = self._history(conn, tenant, customer_id, now, policy.lookback_days())
            return customer_view(tenant, customer_id, prof, visits, gestures, events, policy, now)

        return self._read(load)

    def update_customer(self, tenant: str, customer_id: str, *,
                        preferences: Mapping[str, bool | int | float | str | None] | None = None,
                        interests: Iterable[str] = (), remove_interests: Iterable[str] = (),
                        note: str | None = None, now: datetime | None = None) -> CustomerView:
        """Create or update a profile: merge ``preferences`` (a None value removes the key),
        add and remove interests, append a note."""
        check_tenant(tenant)
        check_customer(customer_id)
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
            if isinstance(value, int) and not isinstance(value, bool) and not -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
                raise InvalidStoreInput(f"{where}: integers must lie within +-2**53", field=where)
            if isinstance(value, str):
                check_text(value, where, max_length=MAX_TEXT_CHARS, empty=True)
        add = [check_text(i, "interests", max_length=MAX_NAME_CHARS) for i in interests]
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
        check_customer(customer_id)

        def write(conn: Connection) -> bool:
            a = conn.execute(delete(_C).where(_C.c.tenant == tenant, _C.c.customer_id == customer_id)).rowcount
            b = conn.execute(delete(_V).where(_V.c.tenant == tenant, _V.c.customer_id == customer_id)).rowcount
            return bool(a or b)

        return self._write(write)


def customer_view(tenant: str, customer_id: str, prof: Any, visits: Sequence[Any], gestures: Sequence[Any],
                   events: list[Event], policy: Policy, now: datetime) -> CustomerView:
    horizon = shift(now, -policy.goodwill.period_days)
    given = sum(e.cost or 0.0 for e in events if e.outcome == "delivered" and e.at >= horizon)
    abuse = policy.abuse
    flagged = abuse.enabled and len(abuse_times(events, abuse.category,
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

