"""A batch of the decision log written to PostgreSQL in one statement.

The portable path (:func:`.decisions._write_decisions`) sends a statement per table and per
batch size, each compiled by SQLAlchemy and converted by psycopg; with a handful of rows per
decision that statement work, not the database, was most of what logging a decision cost.
Here every table's rows travel as one JSON array each, bound to a statement whose text never
changes (so the driver prepares it once per connection): data-modifying ``WITH`` clauses
insert the decisions, their gestures, rules, learning traces and visits, and the final
``INSERT ... ON CONFLICT`` keeps the customers' stated facts. One round trip, one parse, one
plan; foreign keys are checked at the end of the statement, as for separate ones.

What is stored is exactly what the portable path stores (``tests/test_store_path.py``
compares the two on every table). A batch this path cannot express as the portable path
would write it returns False and is written the portable way: a customer stating two
different sets of facts in one batch (sequential upserts decide there), or a value JSON
cannot carry (a NaN score).
"""

from __future__ import annotations

import functools
import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

from sqlalchemy import Connection, Table

from .learning import LearningDecision
from .models import CustomerProfileRow, Decision, DecisionGesture, DecisionRule, Visit, table_of
from .values import SUSPECT_ESCAPE, CheckedJson, dumps

if TYPE_CHECKING:
    from .decisions import _DecisionRows

__all__ = ["write_batch"]

_D = table_of(Decision)
_DG = table_of(DecisionGesture)
_DR = table_of(DecisionRule)
_V = table_of(Visit)
_C = table_of(CustomerProfileRow)
_LD = table_of(LearningDecision)

#: the decision's JSON columns, spliced into its row as the text already checked
_JSON_COLUMNS = ("recommendations", "held", "context")


def _naive_utc(value: Any) -> str:
    """Times as the tables keep them: naive UTC (``UTCDateTime``), in ISO form."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat()
    raise TypeError(type(value).__name__)


_encode = json.JSONEncoder(allow_nan=False, default=_naive_utc, separators=(",", ":")).encode


def _json_text(value: Any) -> str:
    return value.text if type(value) is CheckedJson else dumps(value)


def _columns(table: Table, skip: Sequence[str] = ()) -> str:
    return ", ".join(c.name for c in table.c if c.name not in skip)


@functools.lru_cache(maxsize=1)
def _statement() -> str:
    """The one statement (its text fixed: six JSON arrays as its parameters)."""
    d, g, r, ld = _columns(_D), _columns(_DG), _columns(_DR), _columns(_LD)
    v = _columns(_V, skip=("id",))
    return f"""
WITH d AS (
  INSERT INTO {_D.name} ({d}) SELECT {d} FROM jsonb_populate_recordset(NULL::{_D.name}, %s::jsonb)
), g AS (
  INSERT INTO {_DG.name} ({g}) SELECT {g} FROM jsonb_populate_recordset(NULL::{_DG.name}, %s::jsonb)
), r AS (
  INSERT INTO {_DR.name} ({r}) SELECT {r} FROM jsonb_populate_recordset(NULL::{_DR.name}, %s::jsonb)
), l AS (
  INSERT INTO {_LD.name} ({ld}) SELECT {ld} FROM jsonb_populate_recordset(NULL::{_LD.name}, %s::jsonb)
), v AS (
  INSERT INTO {_V.name} ({v})
  SELECT {", ".join("n." + c for c in v.split(", "))}
  FROM jsonb_array_elements(%s::jsonb) AS e(row),
       LATERAL jsonb_populate_record(NULL::{_V.name}, e.row) AS n
  WHERE NOT (e.row->>'retried')::boolean OR NOT EXISTS (
    SELECT 1 FROM {_V.name} AS x WHERE x.tenant = n.tenant AND x.customer_id = n.customer_id
      AND x.issue = n.issue AND x.occurred_at = n.occurred_at)
)
INSERT INTO {_C.name} AS c (tenant, customer_id, preferences, interests, notes, created_at, updated_at,
                            facts_at, lifetime_value, tenure_since)
SELECT tenant, customer_id, '{{}}'::jsonb, '[]'::jsonb, '[]'::jsonb, created_at, updated_at,
       facts_at, lifetime_value, tenure_since
FROM jsonb_populate_recordset(NULL::{_C.name}, %s::jsonb)
ON CONFLICT (tenant, customer_id) DO UPDATE SET
  facts_at = excluded.facts_at,
  lifetime_value = COALESCE(excluded.lifetime_value, c.lifetime_value),
  tenure_since = COALESCE(excluded.tenure_since, c.tenure_since)
WHERE (c.facts_at IS NULL OR c.facts_at <= excluded.facts_at)
  AND ((excluded.lifetime_value IS NOT NULL AND c.lifetime_value IS DISTINCT FROM excluded.lifetime_value)
    OR (excluded.tenure_since IS NOT NULL AND c.tenure_since IS DISTINCT FROM excluded.tenure_since))
"""


def write_batch(conn: Connection, batch: "list[_DecisionRows]", facts: list[dict[str, Any]] | None,
                visits: list[tuple[dict[str, Any], bool]]) -> bool:
    """Write ``batch`` in one statement on ``conn`` (in its transaction); False, writing
    nothing, when the batch is one for the portable path. ``facts`` are the customers' facts
    to keep, one row per customer (None: the batch needs sequential upserts); ``visits`` the
    batch's visits, each with whether it is a retried interaction's (skipped if stored)."""
    if facts is None:
        return False
    try:
        decisions = []
        for b in batch:
            row = b.decision
            scalars = _encode({k: v for k, v in row.items() if k not in _JSON_COLUMNS})
            spliced = "".join(f',"{k}":{_json_text(row[k])}' for k in _JSON_COLUMNS)
            decisions.append(scalars[:-1] + spliced + "}")
        learning = [f'{{"decision_id":{_encode(b.learning["decision_id"])},"tenant":{_encode(b.learning["tenant"])},'
                    f'"trace":{_json_text(b.learning["trace"])}}}' for b in batch if b.learning is not None]
        params = ("[" + ",".join(decisions) + "]",
                  _encode([g for b in batch for g in b.gestures]),
                  _encode([r for b in batch for r in b.rules]),
                  "[" + ",".join(learning) + "]",
                  _encode([{**v, "retried": retried} for v, retried in visits]),
                  _encode([{k: v for k, v in row.items() if k not in ("preferences", "interests", "notes")}
                           for row in facts]))
    except (ValueError, TypeError):  # NaN or a type JSON cannot carry: the portable path decides
        return False
    if any(SUSPECT_ESCAPE.search(p) for p in params):  # a NUL or a surrogate: the portable path's errors
        return False
    conn.exec_driver_sql(_statement(), params)
    return True
