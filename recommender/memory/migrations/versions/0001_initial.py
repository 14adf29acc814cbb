"""Initial schema: decisions, outcomes, customers, visits, budgets, API keys.

Revision ID: 0001
Revises:
Create Date: 2025-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.String(2000), nullable=True),
        sa.Column("store_id", sa.String(128), nullable=True),
        sa.Column("staff_id", sa.String(2000), nullable=True),
        sa.Column("staff_level", sa.String(16), nullable=True),
        sa.Column("issue", sa.String(128), nullable=False),
        sa.Column("context_hash", sa.String(64), nullable=False),
        sa.Column("receipt_id", sa.String(64), nullable=False),
        sa.Column("ruleset_version", sa.String(128), nullable=False),
        sa.Column("recommendations", Json, nullable=False),
        sa.Column("held", Json, nullable=False),
        sa.Column("context", Json, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
    )
    op.create_index("ix_decisions_tenant_created_at", "decisions", ["tenant", "created_at"])
    op.create_index("ix_decisions_tenant_customer_id_created_at", "decisions", ["tenant", "customer_id", "created_at"])

    op.create_table(
        "decision_gestures",
        sa.Column("decision_id", sa.String(36), nullable=False),
        sa.Column("gesture_id", sa.String(80), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("decision_id", "gesture_id", name="pk_decision_gestures"),
        sa.ForeignKeyConstraint(["decision_id"], ["decisions.id"], ondelete="CASCADE",
                                name="fk_decision_gestures_decision_id_decisions"),
        sa.CheckConstraint("status IN ('recommended', 'needs_approval')", name="ck_decision_gestures_status"),
    )

    op.create_table(
        "decision_rules",
        sa.Column("decision_id", sa.String(36), nullable=False),
        sa.Column("gesture_id", sa.String(80), nullable=False),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("decision_id", "gesture_id", "rule_id", name="pk_decision_rules"),
        sa.ForeignKeyConstraint(["decision_id", "gesture_id"],
                                ["decision_gestures.decision_id", "decision_gestures.gesture_id"],
                                ondelete="CASCADE", name="fk_decision_rules_decision_id_gesture_id_decision_gestures"),
    )
    op.create_index("ix_decision_rules_rule_id", "decision_rules", ["rule_id"])

    op.create_table(
        "outcomes",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("decision_id", sa.String(36), nullable=False),
        sa.Column("gesture_id", sa.String(80), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("customer_id", sa.String(2000), nullable=True),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actual_cost", sa.Float(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outcomes"),
        sa.UniqueConstraint("tenant", "idempotency_key", name="uq_outcomes_tenant_idempotency_key"),
        sa.UniqueConstraint("decision_id", "gesture_id", "outcome", name="uq_outcomes_decision_id_gesture_id_outcome"),
        sa.ForeignKeyConstraint(["decision_id", "gesture_id"],
                                ["decision_gestures.decision_id", "decision_gestures.gesture_id"],
                                ondelete="CASCADE", name="fk_outcomes_decision_id_gesture_id_decision_gestures"),
        sa.CheckConstraint("outcome IN ('offered', 'accepted', 'declined', 'delivered')", name="ck_outcomes_outcome"),
    )
    op.create_index("ix_outcomes_tenant_customer_id_recorded_at", "outcomes", ["tenant", "customer_id", "recorded_at"])

    op.create_table(
        "customers",
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.String(2000), nullable=False),
        sa.Column("preferences", Json, nullable=False),
        sa.Column("interests", Json, nullable=False),
        sa.Column("notes", Json, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "customer_id", name="pk_customers"),
    )

    op.create_table(
        "visits",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.String(2000), nullable=False),
        sa.Column("decision_id", sa.String(36), nullable=True),
        sa.Column("issue", sa.String(128), nullable=False),
        sa.Column("store_id", sa.String(128), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_visits"),
        sa.ForeignKeyConstraint(["decision_id"], ["decisions.id"], ondelete="SET NULL",
                                name="fk_visits_decision_id_decisions"),
    )
    op.create_index("ix_visits_tenant_customer_id_occurred_at", "visits", ["tenant", "customer_id", "occurred_at"])

    op.create_table(
        "budget_usage",
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("scope_id", sa.String(2000), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("spent", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "scope", "scope_id", "day", name="pk_budget_usage"),
        sa.CheckConstraint("scope IN ('tenant', 'store', 'staff')", name="ck_budget_usage_scope"),
    )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("scopes", Json, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant"])


def downgrade() -> None:
    for table in ("api_keys", "budget_usage", "visits", "customers", "outcomes", "decision_rules",
                  "decision_gestures", "decisions"):
        op.drop_table(table)
