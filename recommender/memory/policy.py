"""Contact policy, budgets, authority limits, abuse and proportion rules: one pydantic model.

Load it from YAML or JSON with :meth:`Policy.load`, or build it in code. Everything has
a safe default, so ``Policy()`` is a working policy: an ``exceed`` gesture is not repeated
to the same customer within 90 days, three fee waivers in 90 days flag a customer for
review, and goodwill over a year stays within 10 % of the customer's lifetime value.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..context import MAX_NUMBER
from ..packs import CATEGORIES
from .errors import InvalidStoreInput
from .values import local_date, next_day

__all__ = ["Policy", "ContactRule", "AbuseRule", "GoodwillRule", "Budget", "PercentileRule", "SteerRule", "RECEIVED"]


def _category(v: str | None) -> str | None:
    if v is not None and v not in CATEGORIES:
        raise ValueError(f"unknown category {v!r}: one of {', '.join(CATEGORIES)}")
    return v

#: Outcomes that mean the customer received the gesture (``declined`` does not).
RECEIVED = ("offered", "accepted", "delivered")

Days = Annotated[float, Field(gt=0, le=36500, allow_inf_nan=False)]
Money = Annotated[float, Field(ge=0, le=MAX_NUMBER, allow_inf_nan=False)]


class _P(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContactRule(_P):
    """Suppression window and/or frequency cap for the gestures it selects.

    Select by ``gesture`` id, ``category`` or ``tier`` (all given selectors must match; none
    selects every gesture). ``suppress_days``: not again within that many days of the last
    time the customer received it. ``max_count`` per ``window_days``: a frequency cap.
    With ``per_gesture`` (default) each gesture is counted on its own; otherwise every
    gesture the rule selects shares one count (e.g. "at most 2 freebies a month").
    ``count_declined``: a declined offer counts too (by default only offered, accepted and
    delivered gestures count as received).
    """

    gesture: str | None = None
    category: str | None = None
    tier: Literal["recover", "meet", "exceed"] | None = None
    suppress_days: Days | None = None
    max_count: Annotated[int, Field(ge=1, le=100_000)] | None = None
    window_days: Days = 90
    per_gesture: bool = True
    count_declined: bool = False

    @field_validator("category")
    @classmethod
    def _known_category(cls, v: str | None) -> str | None:
        return _category(v)

    @model_validator(mode="after")
    def _something(self) -> "ContactRule":
        if self.suppress_days is None and self.max_count is None:
            raise ValueError("a contact rule needs suppress_days or max_count")
        return self

    def selects(self, gesture_id: str, category: str, tier: str) -> bool:
        return ((self.gesture is None or self.gesture == gesture_id)
                and (self.category is None or self.category == category)
                and (self.tier is None or self.tier == tier))

    def label(self) -> str:
        parts = [f"{k} {v}" for k, v in (("gesture", self.gesture), ("category", self.category),
                                          ("tier", self.tier)) if v is not None]
        return ", ".join(parts) or "every gesture"


class AbuseRule(_P):
    """``threshold`` gestures of ``category`` accepted or delivered within ``window_days``
    flag a customer: further monetary gestures (cost > 0) need approval (``abuse_review``)."""

    enabled: bool = True
    category: str = "fee_waiver"
    threshold: Annotated[int, Field(ge=1, le=100_000)] = 3
    window_days: Days = 90

    @field_validator("category")
    @classmethod
    def _known_category(cls, v: str | None) -> str | None:
        return _category(v)


class GoodwillRule(_P):
    """Goodwill delivered to one customer within ``period_days`` stays within ``share`` of
    their lifetime value (plus ``floor``). Applied when the context states
    ``customer.lifetime_value``; ``goodwill_cap`` holds a gesture that would go over."""

    enabled: bool = True
    share: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 0.10
    period_days: Days = 365
    floor: Money = 0.0


class Budget(_P):
    """Daily gesture-cost budgets of one tenant (``None``: unlimited).

    ``daily`` for the whole tenant; ``per_store_daily`` for each ``business.store_id`` and
    ``per_staff_daily`` for each ``staff.id``, with ``stores`` / ``staff`` overriding those
    for named ones.
    """

    daily: Money | None = None
    per_store_daily: Money | None = None
    per_staff_daily: Money | None = None
    stores: dict[str, Money] = Field(default_factory=dict)
    staff: dict[str, Money] = Field(default_factory=dict)

    def limits(self, store_id: str | None, staff_id: str | None) -> list[tuple[str, str, float]]:
        """``(scope, scope id, limit)`` for every budget that applies, in lock order."""
        out: list[tuple[str, str, float]] = []
        if self.daily is not None:
            out.append(("tenant", "", self.daily))
        if store_id:
            limit = self.stores.get(store_id, self.per_store_daily)
            if limit is not None:
                out.append(("store", store_id, limit))
        if staff_id:
            limit = self.staff.get(staff_id, self.per_staff_daily)
            if limit is not None:
                out.append(("staff", staff_id, limit))
        return out


Seconds = Annotated[float, Field(ge=0, le=86_400, allow_inf_nan=False)]


class PercentileRule(_P):
    """``customer.value_percentile`` and ``tenure_percentile``: where a customer stands among the
    tenant's own customers (0-100: the share of them below), from the latest lifetime value and
    tenure the store has seen for each customer. A tenant with fewer than ``min_customers``
    customers of known value (or tenure) gets no percentile: unknown, not a guess."""

    enabled: bool = True
    min_customers: Annotated[int, Field(ge=2, le=1_000_000)] = 20
    #: each process re-reads a tenant's customers at most this often (0: on every request).
    refresh_seconds: Seconds = 600.0
    #: at most this many points of a tenant's distribution are kept in memory (its quantiles).
    sample: Annotated[int, Field(ge=100, le=1_000_000)] = 10_000


class SteerRule(_P):
    """The realised extras rate steers the draw: over the tenant's last ``max_decisions``
    decisions with an extra on offer within ``window_days``, the share that got one listed is
    compared with the profile's ``extras_rate``, and the draw's chance is scaled by
    ``clamp(mean steer in force x target / realised, low, high)`` (with no steer in force yet:
    ``target / realised``). Below ``min_decisions`` such decisions: no steer (1.0)."""

    enabled: bool = True
    window_days: Days = 30
    max_decisions: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    min_decisions: Annotated[int, Field(ge=1, le=1_000_000)] = 50
    low: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.5
    high: Annotated[float, Field(ge=1, le=100, allow_inf_nan=False)] = 2.0
    #: each process re-reads a tenant's realised rate at most this often (0: on every request).
    refresh_seconds: Seconds = 60.0


def _default_contact() -> list[ContactRule]:
    return [ContactRule(tier="exceed", suppress_days=90)]


class Policy(_P):
    """Everything the store applies when it screens offers and records deliveries."""

    contact: list[ContactRule] = Field(default_factory=_default_contact)
    abuse: AbuseRule = Field(default_factory=AbuseRule)
    goodwill: GoodwillRule = Field(default_factory=GoodwillRule)
    #: tenant id -> its budget; ``"*"`` applies to tenants not listed.
    budgets: dict[str, Budget] = Field(default_factory=dict)
    #: staff level -> the highest gesture cost it may give (levels not listed: no limit).
    authority_limits: dict[Literal["synthetic", "genuine", "super"], Money] = Field(default_factory=dict)
    #: an issue that comes back within this many days is a repeat issue.
    repeat_issue_days: Days = 30
    #: gestures received within this many days are ``customer.recent_gestures``.
    recent_gestures_days: Days = 90
    #: visits within this many days give ``customer.prior_issues``.
    history_days: Days = 365
    #: budgets reset at midnight in this time zone.
    timezone: str = "UTC"
    #: a tenant's stored profile is re-read at most this often per process (a write on the
    #: same process applies at once; another server sees it within this many seconds).
    profile_cache_seconds: Seconds = 30.0
    #: what outcomes taught (a tenant's evidence per segment) is re-read at most this often per
    #: process (an outcome recorded on the same process applies at once; another server's
    #: within this many seconds). 0: read for every decision.
    learning_cache_seconds: Seconds = 5.0
    percentiles: PercentileRule = Field(default_factory=PercentileRule)
    extras_steer: SteerRule = Field(default_factory=SteerRule)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @property
    def tz(self) -> tzinfo:
        return timezone.utc if self.timezone == "UTC" else ZoneInfo(self.timezone)

    def budget_for(self, tenant: str) -> Budget | None:
        return self.budgets.get(tenant) or self.budgets.get("*")

    def budget_day(self, when: datetime) -> date:
        return local_date(when, self.tz)

    def next_budget_day(self, when: datetime) -> date:
        return next_day(self.budget_day(when))

    def lookback_days(self) -> float:
        """The longest window any rule looks back over."""
        windows = [self.recent_gestures_days, self.abuse.window_days, self.goodwill.period_days,
                   self.extras_steer.window_days if self.extras_steer.enabled else 0]
        for rule in self.contact:
            windows.append(rule.window_days if rule.max_count is not None else 0)
            windows.append(rule.suppress_days or 0)
        return max(windows)

    @classmethod
    def load(cls, path: str | Path) -> "Policy":
        """Read a policy from a YAML or JSON file; errors name the file and field."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidStoreInput(f"cannot read policy file {p}: {exc.strerror or exc}") from None
        if not text.strip():
            raise InvalidStoreInput(f"{p}: the policy file is empty")
        try:
            if p.suffix.lower() == ".json":
                data: Any = json.loads(text)
            else:
                from ruamel.yaml import YAML

                data = YAML(typ="safe").load(text)
        except Exception as exc:  # noqa: BLE001 - any parse error is the file's fault
            raise InvalidStoreInput(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: "
                                    f"{str(exc).splitlines()[0]}") from None
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or '<policy>'}: {e['msg']}"
                                 for e in exc.errors())
            raise InvalidStoreInput(f"{p}: invalid policy: {problems}") from None
