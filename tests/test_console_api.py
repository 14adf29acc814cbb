"""The agent console's endpoints and pages over HTTP, in process (issue 18): the vocabulary,
the business profile and the rules browser's data; approvals (scopes, a second key, the
decision log and outcomes recording who approved, conflicts, tenants); panel tokens (scoped,
short-lived, signed, refused when forged or expired); the front door; no page or asset naming
anything outside the server; the parts pages share, written once; the approvals migration up
and down.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from recommender.service import Settings, create_app, hash_key  # noqa: E402
from recommender.service.auth import MAX_TOKEN_LENGTH, PanelTokens  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SECRET = "s" * 40
KEYS = {"agent": ("acme", ["recommend", "outcome"]), "lead": ("acme", ["approve"]),
        "both": ("acme", ["recommend", "approve"]), "admin": ("acme", ["admin"]),
        "other": ("globex", ["recommend", "outcome", "approve"])}
BILLING = {"customer": {"id": "c-1", "name": "Ada"}, "staff": {"level": "synthetic"},
           "interaction": {"issue": "billing_error", "amount": 120, "sentiment": -0.8, "repeat_issue": True}}


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("console-api")
    settings = Settings(
        api_keys=[{"hash": hash_key(k), "tenant": t, "scopes": s, "name": k} for k, (t, s) in KEYS.items()],
        auth="config", store_url=f"sqlite:///{tmp / 'api.db'}", autoload_plugins=False, panel_secret=SECRET)
    with TestClient(create_app(settings)) as client:
        yield client


def h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def _decision(http: TestClient, key: str = "agent") -> dict[str, Any]:
    r = http.post("/v1/recommendations", json=BILLING, headers=h(key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert {n["gesture_id"] for n in body["needs_approval"]} >= {"goodwill_credit"}
    return dict(body)


def test_vocabulary_profile_and_rules_for_the_callers_business(http: TestClient) -> None:
    issues = http.get("/v1/issues", headers=h("agent")).json()
    billing = next(i for i in issues["issues"] if i["code"] == "billing_error")
    assert billing["family"] == "billing_error" and billing["negative"] and "overcharge" in billing["aliases"]
    assert issues["business"] == "acme"
    business = http.get("/v1/business", headers=h("agent")).json()
    assert business["currency"] == "USD" and business["extras_rate"] == 0.1
    assert business["money_limits"] == {"synthetic": 10.0, "genuine": 50.0, "super": 250.0}
    assert "extras_key" not in business  # the extras draw's key is nobody's business
    rules = http.get("/v1/rules", headers=h("agent")).json()
    assert rules["packs"] and rules["gestures"] and rules["rules"]
    rule = next(r for r in rules["rules"] if r["id"] == "outcome-failure-goodwill")
    assert rule["because"] and rule["gestures"] == ["goodwill_credit"] and "all" in rule["when"]
    gesture = next(g for g in rules["gestures"] if g["id"] == "goodwill_credit")
    assert gesture["tier"] == "recover" and "per unit of" in gesture["cost"]
    assert http.get("/v1/rules?vertical=no spaces", headers=h("agent")).status_code == 422
    assert http.get("/v1/rules").status_code == 401


def test_approval_requested_decided_by_a_second_key_and_recorded(http: TestClient) -> None:
    body = _decision(http)
    ask = {"decision_id": body["decision_id"], "gesture_id": "goodwill_credit", "note": "charged twice"}
    r = http.post("/v1/approvals", json=ask, headers=h("agent"))
    assert r.status_code == 201, r.text
    approval = r.json()
    assert approval["status"] == "pending" and approval["requested_by"] == "agent"
    assert approval["script"].startswith("For the trouble") and approval["agent_reason"]
    assert "synthetic" in approval["detail"] and approval["cost"] == 40.0
    again = http.post("/v1/approvals", json=ask, headers=h("agent"))
    assert again.status_code == 200 and again.json()["id"] == approval["id"]  # one request per gesture

    assert http.get("/v1/approvals", headers=h("agent")).status_code == 403  # the agent cannot approve
    pending = http.get("/v1/approvals", headers=h("lead")).json()["approvals"]
    assert [a["id"] for a in pending] == [approval["id"]]
    assert http.get("/v1/approvals", headers=h("other")).json()["approvals"] == []  # another tenant's: none
    assert http.get(f"/v1/approvals/{approval['id']}", headers=h("other")).status_code == 404
    decide = f"/v1/approvals/{approval['id']}/decision"
    assert http.post(decide, json={"decision": "approved"}, headers=h("agent")).status_code == 403
    r = http.post(decide, json={"decision": "approved", "note": "ok"}, headers=h("lead"))
    assert r.status_code == 200, r.text
    assert r.json()["decided_by"] == "lead" and r.json()["decision_note"] == "ok"
    assert http.post(decide, json={"decision": "approved", "note": "ok"}, headers=h("lead")).status_code == 200
    conflict = http.post(decide, json={"decision": "declined"}, headers=h("lead"))
    assert conflict.status_code == 409 and "already approved by lead" in conflict.json()["message"]
    assert http.get(f"/v1/approvals/{approval['id']}", headers=h("agent")).json()["status"] == "approved"

    outcome = http.post(f"/v1/decisions/{body['decision_id']}/outcomes",
                        headers={**h("agent"), "Idempotency-Key": "a-1"},
                        json={"gesture_id": "goodwill_credit", "outcome": "delivered"})
    assert outcome.status_code == 201 and outcome.json()["approved_by"] == "lead"
    other = http.post(f"/v1/decisions/{body['decision_id']}/outcomes", headers={**h("agent"), "Idempotency-Key": "a-2"},
                      json={"gesture_id": body["recommendations"][0]["gesture_id"], "outcome": "accepted"})
    assert other.json()["approved_by"] is None
    store = http.app.state.service.store  # type: ignore[attr-defined]
    held = next(x for x in store.get_decision(body["decision_id"]).held if x["gesture_id"] == "goodwill_credit")
    assert held["approval"]["by"] == "lead" and held["approval"]["note"] == "ok"
    assert held["approval"]["status"] == "approved"


def test_nobody_approves_their_own_request_and_bad_requests_name_the_field(http: TestClient) -> None:
    body = _decision(http, "both")
    r = http.post("/v1/approvals", json={"decision_id": body["decision_id"], "gesture_id": "goodwill_credit"},
                  headers=h("both"))
    own = http.post(f"/v1/approvals/{r.json()['id']}/decision", json={"decision": "approved"}, headers=h("both"))
    assert own.status_code == 403 and own.json()["error"] == "forbidden_self_approval"
    listed = body["recommendations"][0]["gesture_id"]
    bad = http.post("/v1/approvals", json={"decision_id": body["decision_id"], "gesture_id": listed}, headers=h("both"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "gesture_id"
    unknown = http.post("/v1/approvals", json={"decision_id": "nope", "gesture_id": "goodwill_credit"},
                        headers=h("agent"))
    assert unknown.status_code == 404
    theirs = http.post("/v1/approvals", json={"decision_id": body["decision_id"], "gesture_id": "goodwill_credit"},
                       headers=h("other"))
    assert theirs.status_code == 404  # another tenant's decision is not found
    wrong = http.post(f"/v1/approvals/{r.json()['id']}/decision", json={"decision": "maybe"}, headers=h("lead"))
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "decision"
    assert http.get("/v1/approvals/not..an-id", headers=h("lead")).status_code == 422


def test_panel_tokens_are_scoped_short_lived_and_signed(http: TestClient) -> None:
    r = http.post("/v1/panel-tokens", json={"agent": "sam@helpdesk", "seconds": 300}, headers=h("agent"))
    assert r.status_code == 201, r.text
    out = r.json()
    token = out["token"]
    assert out["tenant"] == "acme" and out["scopes"] == ["recommend", "outcome"] and 290 <= out["expires_in"] <= 300
    assert token.startswith("pt1.") and "#token={token}" in out["panel_url"] and len(token) <= MAX_TOKEN_LENGTH
    bearer = {"Authorization": f"Bearer {token}"}
    assert http.post("/v1/recommendations", json=BILLING, headers=bearer).status_code == 200
    assert http.get("/v1/approvals", headers=bearer).status_code == 403  # not a scope it was given
    # a token never carries more than its key: never admin, never a scope the key lacks
    assert http.post("/v1/panel-tokens", json={"scopes": ["approve"]}, headers=h("agent")).status_code == 403
    assert http.post("/v1/panel-tokens", json={"scopes": ["admin"]}, headers=h("admin")).status_code == 422
    assert http.post("/v1/panel-tokens", json={"seconds": 7200}, headers=h("agent")).status_code == 422
    assert http.post("/v1/panel-tokens", json={"tenant": "globex"}, headers=h("agent")).status_code == 403
    assert http.post("/v1/panel-tokens", json={}, headers=h("lead")).status_code == 403  # minting needs recommend
    renewed = http.post("/v1/panel-tokens", json={}, headers=bearer)  # a token cannot renew itself
    assert renewed.status_code == 403 and "cannot mint" in renewed.json()["message"]
    expired, _ = PanelTokens(SECRET, clock=lambda: time.time() - 3600).mint(
        tenant="acme", scopes=["recommend"], seconds=60, agent="sam", key_id="x")
    r = http.get("/v1/business", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json()["error"] == "token_expired" and "reopen the panel" in r.json()["message"]
    forged, _ = PanelTokens("another secret of thirty-two chars!!").mint(
        tenant="acme", scopes=["recommend"], seconds=60, agent="sam", key_id="x")
    assert http.get("/v1/business", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    tampered = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    assert http.get("/v1/business", headers={"Authorization": f"Bearer {tampered}"}).status_code == 401
    other = http.post("/v1/panel-tokens", json={}, headers=h("other")).json()["token"]
    assert http.get("/v1/business", headers={"Authorization": f"Bearer {other}"}).json()["business"] == "globex"


def test_panel_token_of_a_long_name_still_fits() -> None:
    tokens = PanelTokens(SECRET)
    token, _ = tokens.mint(tenant="t" * 128, scopes=["recommend", "outcome", "approve"], seconds=60,
                           agent="\u00e9" * 64, key_id="k" * 40)
    assert len(token) <= MAX_TOKEN_LENGTH and tokens.verify(token).tenant == "t" * 128


def test_insights_carry_titles_trends_coverage_and_the_extras_target(http: TestClient) -> None:
    body = _decision(http)
    http.post(f"/v1/decisions/{body['decision_id']}/outcomes", headers={**h("agent"), "Idempotency-Key": "i-1"},
              json={"gesture_id": "correct_the_charge", "outcome": "delivered"})
    data = http.get("/v1/insights", headers=h("agent")).json()
    assert data["currency"] == "USD" and data["titles"]["correct_the_charge"] == "Correct the charge now"
    assert data["coverage"]["negative"] >= 1 and data["coverage"]["covered"] == data["coverage"]["negative"]
    assert data["extras"]["target"] == 0.1
    assert data["days"] and data["days"][-1]["delivered"] >= 1
    assert "correct_the_charge" in data["gesture_days"]


PAGES = ["/console", "/console/panel", "/console/approvals", "/console/rules", "/console/insights"]
_URL = re.compile(r"(?:https?:)?//[A-Za-z0-9]", re.I)
_REF = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.I)


def test_no_page_or_asset_names_anything_outside_the_server(http: TestClient) -> None:
    assets: set[str] = set()
    for path in PAGES:
        r = http.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "frame-ancestors" in r.headers["content-security-policy"]
        assert not _URL.search(r.text), path
        for ref in _REF.findall(r.text):
            assert ref.startswith("/") and not ref.startswith("//"), (path, ref)
            if "/static/" in ref:
                assets.add(ref)
    assert len(assets) >= 9
    for ref in sorted(assets):
        r = http.get(ref)
        assert r.status_code == 200 and r.content, ref
        assert not _URL.search(r.text), f"{ref} names an outside address"
    assert http.get("/console/static/../console.py").status_code == 404


def test_pages_are_served_with_the_parts_they_share(http: TestClient) -> None:
    """The header, and the console's form and scripts, are written once (static/parts) and put
    into every page that shows them; the header marks the page's own link."""
    bodies = {path: http.get(path).text for path in PAGES}
    for path, body in bodies.items():
        assert "<!--#include" not in body, path
        current = re.findall(r'<a href="([^"]+)" aria-current="page">', body)
        assert current == ([] if path == "/console/panel" else [path]), path
        assert body.count('<nav aria-label="Console pages">') == (0 if path == "/console/panel" else 1), path
    for path in ("/console", "/console/panel"):
        body = bodies[path]
        for piece in ('id="form-fields"', 'id="json-toggle"', 'aria-controls="json-pane"', '<textarea id="context"',
                      'id="error" class="error" role="alert"', '<script src="/console/static/panel.js">'):
            assert body.count(piece) == 1, (path, piece)


def test_front_door_redirects_to_the_console(http: TestClient) -> None:
    r = http.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/console"


def test_approvals_migration_goes_up_and_down(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from recommender.memory import db, open_store

    with open_store(f"sqlite:///{tmp_path / 'm.db'}") as store:
        assert "approvals" in inspect(store.engine).get_table_names()
        cfg = db._alembic_config()
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0002_tenant_profiles")
        assert "approvals" not in inspect(store.engine).get_table_names()
        assert "approved_by" not in {c["name"] for c in inspect(store.engine).get_columns("outcomes")}
        store.upgrade()
        assert "approvals" in inspect(store.engine).get_table_names()
