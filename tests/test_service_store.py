"""The HTTP service with a memory store (SQLite file, in-process): decisions, outcomes,
idempotency, customers, tenants, budgets, and API keys from the store's KeyStore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")

from fastapi.testclient import TestClient  # noqa: E402

from recommender.client import RecommenderClient, ServiceError  # noqa: E402
from recommender.service import Settings, create_app  # noqa: E402
from helpers import OPEN_PROFILE  # noqa: E402
from service_fixtures import TIRE_PACK as PACK  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


POLICY = {"budgets": {"acme": {"daily": 12}}, "contact": [{"tier": "exceed", "suppress_days": 90}]}


def flat(customer: str | None = "c-1", tenant: str | None = None) -> dict:
    out: dict = {"interaction": {"issue": "flat_tire", "cost": 20}}
    if customer:
        out["customer"] = {"id": customer}
    if tenant:
        out["business"] = {"id": tenant}
    return out


@pytest.fixture
def env(tmp_path: Path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "p.yaml").write_text(PACK)
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(POLICY))
    settings = Settings(rules=[rules], store_url=f"sqlite:///{tmp_path / 'mem.db'}", store_policy=policy,
                        profiles={"default": OPEN_PROFILE},
                        autoload_plugins=False, key_cache_seconds=0)
    app = create_app(settings)
    from recommender.memory import KeyStore

    keys = KeyStore(app.state.service.store)
    plain = {
        "acme": keys.create("acme", ["recommend", "outcome"], "acme pos")[1],
        "acme_read": keys.create("acme", ["recommend"], "acme read-only")[1],
        "globex": keys.create("globex", ["recommend", "outcome"], "globex")[1],
        "admin": keys.create("acme", ["admin"], "ops")[1],
    }
    with TestClient(app) as http:
        yield http, plain, keys


def client(env, who: str) -> RecommenderClient:
    http, plain, _ = env
    return RecommenderClient(api_key=plain[who], client=http)


def test_decision_id_outcome_and_idempotent_replay(env):
    c = client(env, "acme")
    result = c.recommend(flat())
    assert result.decision_id and result.business == "acme"
    assert result.gesture_ids() == ["apology", "tire_check"]
    first = c.record_outcome(result.decision_id, "tire_check", "accepted", note="liked it", idempotency_key="k-1")
    assert first["replayed"] is False and first["tenant"] == "acme" and first["note"] == "liked it"
    http = env[0]
    again = http.post(f"/v1/decisions/{result.decision_id}/outcomes",
                      json={"gesture_id": "tire_check", "outcome": "accepted", "note": "liked it"},
                      headers={"X-API-Key": env[1]["acme"], "Idempotency-Key": "k-1"})
    assert again.status_code == 200 and again.json()["replayed"] is True and again.json()["id"] == first["id"]
    with pytest.raises(ServiceError) as e:  # same key, another payload
        c.record_outcome(result.decision_id, "tire_check", "declined", idempotency_key="k-1")
    assert e.value.status == 409
    with pytest.raises(ServiceError) as e:  # a gesture the decision did not list
        c.record_outcome(result.decision_id, "nope", "accepted")
    assert e.value.status == 404 and "not recommended" in e.value.message
    text = c.metrics()
    assert 'recommender_outcomes_total{outcome="accepted"} 1.0' in text


def test_unknown_decision_is_404_and_another_tenants_decision_is_hidden(env):
    acme, globex = client(env, "acme"), client(env, "globex")
    with pytest.raises(ServiceError) as e:
        acme.record_outcome("00000000-0000-0000-0000-000000000000", "tire_check", "accepted")
    assert (e.value.status, e.value.code) == (404, "not_found")
    decision = acme.recommend(flat()).decision_id
    with pytest.raises(ServiceError) as e:
        globex.record_outcome(decision, "tire_check", "accepted")
    assert e.value.status == 404 and decision not in e.value.message


def test_customer_profile_and_history_per_tenant(env):
    acme = client(env, "acme")
    result = acme.recommend(flat("c-42"))
    acme.record_outcome(result.decision_id, "apology", "delivered")
    view = acme.customer("c-42")
    assert view["tenant"] == "acme" and view["known"] is True
    assert [g["gesture_id"] for g in view["gestures"]] == ["apology"]
    assert view["visits"][0]["decision_id"] == result.decision_id
    globex = client(env, "globex")
    with pytest.raises(ServiceError) as e:  # globex has no such customer
        globex.customer("c-42")
    assert e.value.status == 404
    with pytest.raises(ServiceError) as e:  # and cannot ask for acme's
        globex.customer("c-42", tenant="acme")
    assert e.value.status == 403
    with pytest.raises(ServiceError) as e:
        acme.customer("nobody")
    assert e.value.status == 404


def test_store_keys_scopes_tenants_and_revocation(env):
    http, plain, keys = env
    read = client(env, "acme_read")
    assert read.recommend(flat(None)).business == "acme"
    with pytest.raises(ServiceError) as e:
        read.record_outcome("d", "tire_check", "accepted")
    assert e.value.status == 403
    with pytest.raises(ServiceError) as e:
        client(env, "globex").recommend(flat(None, tenant="acme"))
    assert e.value.status == 403
    admin = client(env, "admin")
    assert admin.reload()["changed"] is False
    assert admin.recommend(flat(None)).business == "acme"  # admin allows everything
    key_id = plain["acme_read"].split("_")[1]
    assert keys.revoke(key_id)
    with pytest.raises(ServiceError) as e:
        read.recommend(flat(None))
    assert e.value.status == 401
    assert http.post("/v1/recommendations", json=flat(None), headers={"X-API-Key": "rk_x_y"}).status_code == 401


def test_budget_is_never_overspent_and_holds_show(env):
    acme = client(env, "acme")
    delivered, refused = 0, 0
    for i in range(5):  # tire_check costs 5, the daily budget is 12: two deliveries fit
        result = acme.recommend(flat(f"c-b{i}"))
        if "tire_check" not in result.gesture_ids():
            assert any(w.gesture_id == "tire_check" and w.reason == "over_budget" for w in result.withheld)
            continue
        try:
            acme.record_outcome(result.decision_id, "tire_check", "delivered")
            delivered += 1
        except ServiceError as exc:
            assert exc.status == 409 and exc.code == "over_budget"
            refused += 1
    assert delivered == 2


def test_readyz_checks_the_store(env):
    http = env[0]
    assert http.get("/readyz").json() == {"ready": True, "ruleset_version": http.get("/healthz").json()["ruleset_version"]}
    ready = http.get("/readyz", headers={"X-API-Key": env[1]["admin"]}).json()
    assert ready["ready"] is True and ready["checks"]["store"]["ok"] is True


def test_unreachable_store_fails_fast_with_its_url(tmp_path):
    from recommender.memory import StoreError

    with pytest.raises(StoreError, match="127.0.0.1:1"):
        create_app(Settings(store_url="postgresql://nobody@127.0.0.1:1/none", autoload_plugins=False,
                            rules=[]))


def test_no_auth_mode_records_outcomes_for_the_decisions_tenant(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "p.yaml").write_text(PACK)
    app = create_app(Settings(rules=[rules], store_url=f"sqlite:///{tmp_path / 'm.db'}", auth="none",
                              autoload_plugins=False))
    with TestClient(app) as http:
        c = RecommenderClient(client=http)
        result = c.recommend(flat("c-9", tenant="globex"))
        assert result.business == "globex"
        out = c.record_outcome(result.decision_id, "apology", "accepted")
        assert out["tenant"] == "globex"
        assert c.customer("c-9", tenant="globex")["known"] is True
        with pytest.raises(ServiceError) as e:
            c.record_outcome("11111111-1111-1111-1111-111111111111", "apology", "accepted")
        assert e.value.status == 404
