"""Approvals: requests to approve a gesture above the serving person's authority; outcomes
record who approved the gesture they are about.

Revision ID: 0003_approvals
Revises: 0002_tenant_profiles
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_approvals"
down_revision = "0002_tenant_profiles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("decision_id", sa.String(36), nullable=False),
        sa.Column("gesture_id", sa.String(80), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("script", sa.Text(), nullable=False),
        sa.Column("agent_reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.String(2000), nullable=True),
        sa.Column("issue", sa.String(128), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("request_note", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_approvals"),
        sa.UniqueConstraint("decision_id", "gesture_id", name="uq_approvals_decision_id_gesture_id"),
        sa.ForeignKeyConstraint(["decision_id"], ["decisions.id"], ondelete="CASCADE",
                                name="fk_approvals_decision_id_decisions"),
        sa.CheckConstraint("status IN ('pending', 'approved', 'declined')", name="ck_approvals_status"),
    )
    op.create_index("ix_approvals_tenant_status_requested_at", "approvals", ["tenant", "status", "requested_at"])
    with op.batch_alter_table("outcomes") as batch:
        batch.add_column(sa.Column("approved_by", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outcomes") as batch:
        batch.drop_column("approved_by")
    op.drop_index("ix_approvals_tenant_status_requested_at", table_name="approvals")
    op.drop_table("approvals")
