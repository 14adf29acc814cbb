"""Learning from outcomes: the evidence per gesture and segment, what each decision ranked
with, and a business's learning switches.

Revision ID: 0004_learning
Revises: 0003_approvals
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_learning"
down_revision = "0003_approvals"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "learning_stats",
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("gesture_id", sa.String(80), nullable=False),
        sa.Column("segment", sa.String(400), nullable=False),
        sa.Column("accepted", sa.Float(), nullable=False),
        sa.Column("declined", sa.Float(), nullable=False),
        sa.Column("delivered", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "gesture_id", "segment", name="pk_learning_stats"),
    )
    op.create_table(
        "learning_decisions",
        sa.Column("decision_id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("trace", Json, nullable=False),
        sa.PrimaryKeyConstraint("decision_id", name="pk_learning_decisions"),
        sa.ForeignKeyConstraint(["decision_id"], ["decisions.id"], ondelete="CASCADE",
                                name="fk_learning_decisions_decision_id_decisions"),
    )
    op.create_table(
        "learning_tenants",
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("frozen", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", name="pk_learning_tenants"),
    )


def downgrade() -> None:
    op.drop_table("learning_tenants")
    op.drop_table("learning_decisions")
    op.drop_table("learning_stats")
