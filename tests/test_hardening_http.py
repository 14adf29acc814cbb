"""Issue 15, the service's side: bad input never reaches a 5xx on either store, and a store that
cannot serve is a 503 that names nothing about the database.

* Out-of-range dates (items 3, 5) and NUL characters (item 4) are 422 naming the field, on
  SQLite and on PostgreSQL, and the customer's later requests keep working.
* A database permission error (a real PostgreSQL role without grants) and an unreachable
  database (a closed loopback port) are 503 with a generic message; ``/readyz`` says only
  ready or not, unless an admin key asks; a made-up key during an outage learns nothing
  (item 6).
"""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from memory_fixtures import _pg_exec, db_url, pg_url, require_pg, with_search_path  # noqa: E402,F401

from recommender.memory import KeyStore, open_store  # noqa: E402
from recommender.service import Settings, create_app, hash_key  # noqa: E402
from service_fixtures import TIRE_PACK  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FLAT = {"interaction": {"issue": "flat_tire", "cost": 20}}


def flat(customer: str = "c-1", **interaction: Any) -> dict[str, Any]:
    return {"customer": {"id": customer}, "interaction": {**FLAT["interaction"], **interaction}}


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "p.yaml").write_text(TIRE_PACK)
    return d


@pytest.fixture
def served(rules: Path, db_url: str) -> Iterator[tuple[TestClient, str]]:
    """The service on a SQLite file, then on a PostgreSQL schema, with a store key for acme."""
    with open_store(db_url, upgrade=True) as store:
        _, key = KeyStore(store).create("acme", ["recommend", "outcome"], "pos")
    app = create_app(Settings(rules=[rules], store_url=db_url, autoload_plugins=False, key_cache_seconds=0))
    with TestClient(app, raise_server_exceptions=False) as http:
        yield http, key


def _post(http: TestClient, key: str, body: Any, path: str = "/v1/recommendations") -> Any:
    return http.post(path, content=json.dumps(body), headers={"X-API-Key": key, "Content-Type": "application/json"})


# -- items 3 and 5: dates out of range ------------------------------------------------------


@pytest.mark.parametrize("when", ["1700-01-01T00:00:00Z", "9999-12-31T00:00:00Z", "0001-01-01T00:00:00Z"])
def test_a_date_out_of_range_is_422_and_never_poisons_the_customer(served, when):
    http, key = served
    assert _post(http, key, flat()).status_code == 200
    bad = _post(http, key, flat(occurred_at=when))
    assert bad.status_code == 422, bad.text
    assert [e["field"] for e in bad.json()["errors"]] == ["interaction.occurred_at"]
    for _ in range(2):  # the customer's next requests work
        later = _post(http, key, flat())
        assert later.status_code == 200 and later.json()["decision_id"], later.text
    explained = _post(http, key, flat(occurred_at=when), "/v1/explain")
    assert explained.status_code == 422


# -- item 4: NUL ---------------------------------------------------------------------------------


def test_nul_anywhere_is_422_naming_the_field_on_both_stores(served):
    http, key = served
    headers = {"X-API-Key": key}
    r = http.get("/v1/customers/%00", headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "path.customer_id", "message": "must not contain NUL (\\u0000) characters"}]
    assert http.get("/v1/customers/c%00d", headers=headers).status_code == 422
    for body, field in [({"customer": {"id": "c\x00"}, **FLAT}, "customer.id"),
                        ({"customer": {"id": "c-1", "name": "Ma\x00ria"}, **FLAT}, "customer.name"),
                        ({"interaction": {"issue": "flat_tire", "attributes": {"s": "x\x00"}}},
                         "interaction.attributes.s")]:
        r = _post(http, key, body)
        assert r.status_code == 422, r.text
        assert field in {e["field"] for e in r.json()["errors"]}
    decision = _post(http, key, flat())
    assert decision.status_code == 200
    d, gesture = decision.json()["decision_id"], decision.json()["recommendations"][0]["gesture_id"]
    r = http.post(f"/v1/decisions/{d}/outcomes", json={"gesture_id": gesture, "outcome": "accepted",
                                                       "note": "thanks\x00"},
                  headers={**headers, "Idempotency-Key": "k-nul"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "note"
    ok = http.post(f"/v1/decisions/{d}/outcomes", json={"gesture_id": gesture, "outcome": "accepted",
                                                        "note": "thanks \x01 🛞"},
                   headers={**headers, "Idempotency-Key": "k-nul"})
    assert ok.status_code == 201, ok.text  # nothing was recorded by the refused call: the key is still free
    assert http.get("/v1/customers/c-1", headers=headers).json()["gestures"][0]["note"] == "thanks \x01 🛞"


# -- item 6: the store cannot serve -----------------------------------------------------------

SECRET_BITS = ("127.0.0.1", "5432", "postgres", "psycopg", "permission", "denied", "SELECT", "relation",
               "Connection refused", "memtest_", "hardening_")


def _assert_generic(resp: Any, *extra: str) -> None:
    text = resp.text
    for bit in (*SECRET_BITS, *extra):
        assert bit not in text, f"{bit!r} leaked in {resp.status_code} {text}"


@pytest.fixture
def no_grants(rules: Path, pg_url: str) -> Iterator[dict[str, Any]]:
    """A migrated PostgreSQL schema, and a login role that may see it but read none of its tables."""
    from sqlalchemy.engine import make_url

    with open_store(pg_url, upgrade=True) as store:
        keys = KeyStore(store)
        _, key = keys.create("acme", ["recommend", "outcome"], "pos")
        _, admin = keys.create("acme", ["admin"], "ops")
    schema = make_url(pg_url).query["options"].split("=", 1)[1]
    role = f"hardening_{uuid.uuid4().hex[:10]}"
    _pg_exec(f'CREATE ROLE "{role}" LOGIN')
    _pg_exec(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
    _pg_exec(f'GRANT SELECT ON "{schema}".alembic_version TO "{role}"')  # the schema check at start-up passes
    url = with_search_path(make_url(require_pg()).set(username=role).render_as_string(hide_password=False), schema)
    try:
        yield {"url": url, "role": role, "schema": schema, "key": key, "admin": admin}
    finally:
        _pg_exec(f'DROP OWNED BY "{role}"')
        _pg_exec(f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.postgres
def test_a_permission_error_is_a_generic_503_and_readyz_tells_nothing(rules, no_grants):
    role = no_grants["role"]
    app = create_app(Settings(rules=[rules], store_url=no_grants["url"], autoload_plugins=False,
                              key_cache_seconds=0))
    with TestClient(app, raise_server_exceptions=False) as http:
        for key in (no_grants["key"], "rk_0123456789abcdef_madeup", no_grants["admin"]):
            r = _post(http, key, flat())
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "unavailable" and r.json()["message"] == \
                "the memory store is unavailable; try again later"
            _assert_generic(r, role)
        ready = http.get("/readyz")
        assert ready.status_code == 200 and set(ready.json()) == {"ready", "ruleset_version"}
        assert http.get("/readyz", headers={"X-API-Key": no_grants["admin"]}).json().get("checks") is None
        assert http.get("/healthz").status_code == 200
    # Without keys in the store (config keys), a request reaches the store and gets the same 503,
    # and an admin key sees why the store is not serving.
    admin = "k-admin-config"
    settings = Settings(rules=[rules], store_url=no_grants["url"], autoload_plugins=False, auth="config",
                        api_keys=[{"hash": hash_key(admin), "tenant": "acme", "scopes": ["admin"]},
                                  {"hash": hash_key("k-pos"), "tenant": "acme", "scopes": ["recommend"]}])
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        for call in (lambda: _post(http, "k-pos", flat()), lambda: _post(http, "k-pos", flat(), "/v1/explain"),
                     lambda: http.get("/v1/customers/c-1", headers={"X-API-Key": "k-pos"}),
                     lambda: http.get("/v1/insights", headers={"X-API-Key": "k-pos"})):
            r = call()
            assert r.status_code == 503, r.text
            _assert_generic(r, role)
        detailed = http.get("/readyz", headers={"X-API-Key": admin}).json()
        assert detailed["ready"] is True and detailed["checks"]["store"]["ok"] is True


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.postgres
def test_an_unreachable_database_is_a_generic_503_and_readyz_tells_nothing(rules, pg_url):
    from recommender.memory import db

    with open_store(pg_url, upgrade=True) as store:
        _, key = KeyStore(store).create("acme", ["recommend", "outcome"], "pos")
    port = _closed_port()
    admin = "k-admin-config"
    settings = Settings(rules=[rules], store_url=pg_url, autoload_plugins=False, auth="config",
                        api_keys=[{"hash": hash_key(admin), "tenant": "acme", "scopes": ["admin"]},
                                  {"hash": hash_key("k-pos"), "tenant": "acme", "scopes": ["recommend", "outcome"]}])
    app = create_app(settings)
    store = app.state.service.store
    gone = db.normalize_url(pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{port}"))
    store.engine.dispose()
    store._url, store.engine = gone, db.make_engine(gone)  # the database went away after start-up
    with TestClient(app, raise_server_exceptions=False) as http:
        for r in (_post(http, "k-pos", flat()), http.get("/v1/customers/c-1", headers={"X-API-Key": "k-pos"}),
                  http.post("/v1/decisions/d-1/outcomes", json={"gesture_id": "apology", "outcome": "accepted"},
                            headers={"X-API-Key": "k-pos"})):
            assert r.status_code == 503 and r.json()["error"] == "unavailable", r.text
            _assert_generic(r, str(port))
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json() == {"ready": False,
                                                             "ruleset_version": ready.json()["ruleset_version"]}
        assert set(http.get("/readyz", headers={"X-API-Key": "k-pos"}).json()) == {"ready", "ruleset_version"}
        detailed = http.get("/readyz", headers={"X-API-Key": admin}).json()  # an admin may see why
        assert detailed["checks"]["store"]["ok"] is False and str(port) in detailed["checks"]["store"]["detail"]
    # with the store's own keys, a made-up key during the outage gets a 503 that names nothing
    app = create_app(Settings(rules=[rules], store_url=pg_url, autoload_plugins=False, key_cache_seconds=0))
    store = app.state.service.store
    store.engine.dispose()
    store._url, store.engine = gone, db.make_engine(gone)
    with TestClient(app, raise_server_exceptions=False) as http:
        for k in ("rk_0123456789abcdef_madeup", key):
            r = _post(http, k, flat())
            assert r.status_code == 503, r.text
            _assert_generic(r, str(port))
        assert _post(http, "not-even-a-key", flat()).status_code == 401  # never looked up
