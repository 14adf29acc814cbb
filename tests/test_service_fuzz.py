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


# -- the hostile values found by trying (issue 15), as explicit examples -------------------------
# Generated data rarely hits these: JSON literals json.dumps would not write (NaN, 1e309, a
# 5,000-digit integer), integers just past 2**53, NUL and lone surrogates, invalid UTF-8, dates
# in the years 1, 1700 and 9999, deep nesting, a million-key object. Each is sent as raw bytes
# to every operation with a JSON body and must get a documented 4xx (never a 5xx) that matches
# the schema.

def _ctx(inner: bytes, where: bytes = b"interaction") -> bytes:
    if where == b"interaction":
        return b'{"interaction": {"issue": "flat_tire", ' + inner + b"}}"
    return b'{"interaction": {"issue": "flat_tire"}, "' + where + b'": {' + inner + b"}}"


HOSTILE_CONTEXTS = {
    "nan-attribute": _ctx(b'"attributes": {"add_on_fee": NaN}'),
    "infinity-preference": _ctx(b'"preferences": {"usual": Infinity}', b"customer"),
    "minus-infinity-cost": _ctx(b'"cost": -Infinity'),
    "1e309-attribute": _ctx(b'"attributes": {"add_on_fee": 1e309}'),
    "2**53+1": _ctx(b'"attributes": {"n": 9007199254740993}'),
    "2**63": _ctx(b'"attributes": {"n": 9223372036854775808}'),
    "10**30": _ctx(b'"attributes": {"n": 1000000000000000000000000000000}'),
    "5000-digits": _ctx(b'"attributes": {"n": ' + b"7" * 5000 + b"}"),
    "nul-name": _ctx(b'"name": "Ma\\u0000ria"', b"customer"),
    "nul-id": _ctx(b'"id": "c\\u0000"', b"customer"),
    "lone-surrogate": _ctx(b'"attributes": {"s": "a\\ud800b"}'),
    "invalid-utf8": _ctx(b'"attributes": {"s": "caf\xe9"}'),
    "year-1": _ctx(b'"occurred_at": "0001-01-01T00:00:00Z"'),
    "year-1700": _ctx(b'"occurred_at": "1700-01-01T00:00:00Z"'),
    "year-9999": _ctx(b'"occurred_at": "9999-12-31T23:59:59Z"'),
    "deep": _ctx(b'"attributes": {"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
    "many-keys": _ctx(b'"attributes": {' + b", ".join(b'"-%d": 0' % i for i in range(5_000)) + b"}"),
    "blank-id": _ctx(b'"id": "   "', b"staff"),
    "markup-key": _ctx(b'"[/x]": 1', b"customer"),
    "not-an-object": b"[1, 2, 3]",
    "null": b"null",
}


@pytest.mark.parametrize("body", HOSTILE_CONTEXTS.values(), ids=HOSTILE_CONTEXTS.keys())
@pytest.mark.parametrize("path", ["/v1/recommendations", "/v1/explain"])
def test_hostile_contexts_are_a_documented_4xx(path, body):
    case = schema[path]["POST"].Case(body=body, media_type="application/json")
    response = case.call_and_validate(headers={"X-API-Key": KEY}, checks=CHECKS)
    assert 400 <= response.status_code < 500, response.text


HOSTILE_OUTCOMES = {
    "nan-cost": b'{"gesture_id": "g", "outcome": "delivered", "actual_cost": NaN}',
    "1e309-cost": b'{"gesture_id": "g", "outcome": "delivered", "actual_cost": 1e309}',
    "nul-note": b'{"gesture_id": "g", "outcome": "accepted", "note": "thanks\\u0000"}',
    "surrogate-note": b'{"gesture_id": "g", "outcome": "accepted", "note": "\\udfff"}',
    "invalid-utf8": b'{"gesture_id": "g\xff", "outcome": "accepted"}',
}


@pytest.mark.parametrize("body", HOSTILE_OUTCOMES.values(), ids=HOSTILE_OUTCOMES.keys())
def test_hostile_outcomes_are_a_documented_4xx(body):
    operation = schema["/v1/decisions/{decision_id}/outcomes"]["POST"]
    case = operation.Case(body=body, media_type="application/json", path_parameters={"decision_id": "d-1"},
                          headers={"Idempotency-Key": "k-1"})
    response = case.call_and_validate(headers={"X-API-Key": KEY}, checks=CHECKS)
    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize("query", [{"budget": "NaN"}, {"budget": "1e309"}, {"budget": "-inf"},
                                   {"max_extras": "9223372036854775808"}, {"max_extras": "1e2"}])
def test_hostile_query_numbers_are_a_documented_4xx(query):
    case = schema["/v1/recommendations"]["POST"].Case(body={"interaction": {"issue": "flat_tire"}}, query=query,
                                                      media_type="application/json")
    response = case.call_and_validate(headers={"X-API-Key": KEY}, checks=CHECKS)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("customer_id", ["%00", "c%00d", "%ED%A0%80", "x" * 2001])
def test_hostile_customer_ids_are_a_documented_4xx(customer_id):
    case = schema["/v1/customers/{customer_id}"]["GET"].Case(path_parameters={"customer_id": customer_id})
    response = case.call_and_validate(headers={"X-API-Key": KEY}, checks=CHECKS)
    assert 400 <= response.status_code < 500, response.text
