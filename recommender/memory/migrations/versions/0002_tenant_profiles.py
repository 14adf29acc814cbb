"""Tenant profiles; customers' latest lifetime value and tenure; the extras draw's steer per decision.

* ``tenant_profiles``: a tenant's own business profile, one row per revision (who set it, when);
* ``customers.lifetime_value``, ``tenure_since``, ``facts_at``: the latest values a logged
  decision stated, read for the tenant's value and tenure percentiles (indexed per tenant);
* ``decisions.profile_revision``, ``extras_offered``, ``extras_listed``, ``extras_steer``: the
  stored profile a decision was made under, and its extras draw (the realised rate, and the
  steer a replay must use again).

Revision ID: 0002_tenant_profiles
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_tenant_profiles"
down_revision = "0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tenant_profiles",
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("profile", Json, nullable=True),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "revision", name="pk_tenant_profiles"),
    )
    op.add_column("customers", sa.Column("lifetime_value", sa.Float(), nullable=True))
    op.add_column("customers", sa.Column("tenure_since", sa.DateTime(), nullable=True))
    op.add_column("customers", sa.Column("facts_at", sa.DateTime(), nullable=True))
    op.create_index("ix_customers_tenant_lifetime_value", "customers", ["tenant", "lifetime_value"])
    op.create_index("ix_customers_tenant_tenure_since", "customers", ["tenant", "tenure_since"])
    op.add_column("decisions", sa.Column("profile_revision", sa.Integer(), nullable=True))
    op.add_column("decisions", sa.Column("extras_offered", sa.Boolean(), nullable=True))
    op.add_column("decisions", sa.Column("extras_listed", sa.Boolean(), nullable=True))
    op.add_column("decisions", sa.Column("extras_steer", sa.Float(), nullable=True))
    op.create_index("ix_decisions_tenant_extras_offered_created_at", "decisions",
                    ["tenant", "extras_offered", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_decisions_tenant_extras_offered_created_at", table_name="decisions")
    with op.batch_alter_table("decisions") as batch:
        for column in ("extras_steer", "extras_listed", "extras_offered", "profile_revision"):
            batch.drop_column(column)
    op.drop_index("ix_customers_tenant_tenure_since", table_name="customers")
    op.drop_index("ix_customers_tenant_lifetime_value", table_name="customers")
    with op.batch_alter_table("customers") as batch:
        for column in ("facts_at", "tenure_since", "lifetime_value"):
            batch.drop_column(column)
    op.drop_table("tenant_profiles")
