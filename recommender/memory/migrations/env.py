"""Alembic environment: always run programmatically with a connection (see ``recommender.memory.schema``)."""

from __future__ import annotations

from alembic import context

from recommender.memory.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable from a hand-run `alembic` command
    raise RuntimeError("run migrations with `recommender db upgrade` (recommender.memory.upgrade)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
