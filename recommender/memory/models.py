"""The tables (SQLAlchemy 2 declarative). Migrations in ``migrations/versions`` create them.

Times are stored as UTC (naive ``timestamp`` columns holding UTC, read back as aware
datetimes), money as floats in the tenant's currency. Every table carries the tenant so
one database can serve many businesses without mixing their data.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["table_of", "Base", "Decision", "DecisionGesture", "DecisionRule", "Outcome", "CustomerProfileRow",
           "Visit", "BudgetUsage", "ApiKey", "TenantProfile", "UTCDateTime", "OUTCOME_KINDS"]

OUTCOME_KINDS = ("offered", "accepted", "declined", "delivered")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; stored as naive UTC on every database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


Json = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")  # sqlite autoincrements INTEGER PRIMARY KEY only

TENANT = 128
CUSTOMER = 2000
GESTURE = 80
RULE = 128


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table_of(model: type[Base]) -> Table:
    """A model's table, typed as such (for SQLAlchemy Core statements)."""
    return cast(Table, model.__table__)


class Decision(Base):
    """One ``recommend()`` call: the auditor's log line."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index(None, "tenant", "created_at"),
        Index(None, "tenant", "customer_id", "created_at"),
        Index(None, "tenant", "extras_offered", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    tenant: Mapped[str] = mapped_column(String(TENANT), nullable=False)
    customer_id: Mapped[str | None] = mapped_column(String(CUSTOMER))
    store_id: Mapped[str | None] = mapped_column(String(128))
    staff_id: Mapped[str | None] = mapped_column(String(CUSTOMER))
    staff_level: Mapped[str | None] = mapped_column(String(16))
    issue: Mapped[str] = mapped_column(String(128), nullable=False)
    context_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    receipt_id: Mapped[str] = mapped_column(String(64), nullable=False)
    ruleset_version: Mapped[str] = mapped_column(String(128), nullable=False)
    recommendations: Mapped[Any] = mapped_column(Json, nullable=False)
    held: Mapped[Any] = mapped_column(Json, nullable=False)
    #: the normalised (enriched) context the rules saw: what a replay or a backtest re-runs
    context: Mapped[Any] = mapped_column(Json, nullable=False)
    #: the tenant's stored profile in force (``tenant_profiles.revision``; None: none)
    profile_revision: Mapped[int | None] = mapped_column(Integer)
    #: an extra was on offer (the extras draw was made) / one was listed / the steer the draw used
    extras_offered: Mapped[bool | None] = mapped_column(Boolean)
    extras_listed: Mapped[bool | None] = mapped_column(Boolean)
    extras_steer: Mapped[float | None] = mapped_column(Float)


class DecisionGesture(Base):
    """A gesture a decision recommended (or listed as needing approval)."""

    __tablename__ = "decision_gestures"
    __table_args__ = (CheckConstraint("status IN ('recommended', 'needs_approval')", name="status"),)

    decision_id: Mapped[str] = mapped_column(String(36), ForeignKey("decisions.id", ondelete="CASCADE"),
                                             primary_key=True)
    gesture_id: Mapped[str] = mapped_column(String(GESTURE), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    category: Mapped[str] = mapped_column(String(32), nullable=False)
    tier: Mapped[str] = mapped_column(String(16), nullable=False)
    cost: Mapped[float | None] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float, nullable=False)


class DecisionRule(Base):
    """Which rules recommended a gesture in a decision (for per-rule reports)."""

    __tablename__ = "decision_rules"
    __table_args__ = (
        ForeignKeyConstraint(["decision_id", "gesture_id"],
                             ["decision_gestures.decision_id", "decision_gestures.gesture_id"], ondelete="CASCADE"),
        Index(None, "rule_id"),
    )

    decision_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    gesture_id: Mapped[str] = mapped_column(String(GESTURE), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(RULE), primary_key=True)


class Outcome(Base):
    """What happened to a recommended gesture. One row per (decision, gesture, outcome)."""

    __tablename__ = "outcomes"
    __table_args__ = (
        UniqueConstraint("tenant", "idempotency_key"),
        UniqueConstraint("decision_id", "gesture_id", "outcome"),
        ForeignKeyConstraint(["decision_id", "gesture_id"],
                             ["decision_gestures.decision_id", "decision_gestures.gesture_id"], ondelete="CASCADE"),
        CheckConstraint("outcome IN ('offered', 'accepted', 'declined', 'delivered')", name="outcome"),
        Index(None, "tenant", "customer_id", "recorded_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(TENANT), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(200), nullable=False)
    decision_id: Mapped[str] = mapped_column(String(36), nullable=False)
    gesture_id: Mapped[str] = mapped_column(String(GESTURE), nullable=False)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    customer_id: Mapped[str | None] = mapped_column(String(CUSTOMER))
    category: Mapped[str] = mapped_column(String(32), nullable=False)
    tier: Mapped[str] = mapped_column(String(16), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    actual_cost: Mapped[float | None] = mapped_column(Float)
    cost: Mapped[float | None] = mapped_column(Float)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    #: who approved the gesture, when it needed approval (migration 0003_approvals)
    approved_by: Mapped[str | None] = mapped_column(String(200))


class CustomerProfileRow(Base):
    """What a tenant knows about a customer beyond their visits."""

    __tablename__ = "customers"
    __table_args__ = (
        Index(None, "tenant", "lifetime_value"),
        Index(None, "tenant", "tenure_since"),
    )

    tenant: Mapped[str] = mapped_column(String(TENANT), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(CUSTOMER), primary_key=True)
    preferences: Mapped[Any] = mapped_column(Json, nullable=False)
    interests: Mapped[Any] = mapped_column(Json, nullable=False)
    notes: Mapped[Any] = mapped_column(Json, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    #: the latest lifetime value a logged decision stated, and the customer's start (the
    #: interaction's time minus the tenure it stated): the tenant's percentiles are read from these
    lifetime_value: Mapped[float | None] = mapped_column(Float)
    tenure_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: when they were stated (a decision dated earlier never overwrites them)
    facts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Visit(Base):
    """A customer's interaction with an issue: one per logged decision."""

    __tablename__ = "visits"
    __table_args__ = (Index(None, "tenant", "customer_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(TENANT), nullable=False)
    customer_id: Mapped[str] = mapped_column(String(CUSTOMER), nullable=False)
    decision_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("decisions.id", ondelete="SET NULL"))
    issue: Mapped[str] = mapped_column(String(128), nullable=False)
    store_id: Mapped[str | None] = mapped_column(String(128))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class BudgetUsage(Base):
    """Gesture cost delivered per tenant / store / staff member and day."""

    __tablename__ = "budget_usage"
    __table_args__ = (CheckConstraint("scope IN ('tenant', 'store', 'staff')", name="scope"),)

    tenant: Mapped[str] = mapped_column(String(TENANT), primary_key=True)
    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    scope_id: Mapped[str] = mapped_column(String(CUSTOMER), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    spent: Mapped[float] = mapped_column(Float, nullable=False)


class ApiKey(Base):
    """An HTTP API key: only a hash of its secret is kept."""

    __tablename__ = "api_keys"
    __table_args__ = (Index(None, "tenant"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(TENANT), nullable=False)
    scopes: Mapped[Any] = mapped_column(Json, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TenantProfile(Base):
    """A tenant's own business profile (a partial :class:`~recommender.profile.Profile`), the
    last layer over the defaults, plugins and configuration. Every change is a new revision, so
    a logged decision names the one it was made under; ``profile`` None: cleared."""

    __tablename__ = "tenant_profiles"

    tenant: Mapped[str] = mapped_column(String(TENANT), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    profile: Mapped[Any] = mapped_column(Json, nullable=True)
    updated_by: Mapped[str] = mapped_column(String(200), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
