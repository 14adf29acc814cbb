"""The HTTP service in-process: endpoints, auth and tenants, errors, reload, metrics, settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from recommender.client import RecommenderClient, ServiceError  # noqa: E402
from recommender.service import Settings, create_app, hash_key  # noqa: E402
from recommender.service.settings import ConfigFileError  # noqa: E402
from helpers import OPEN_PROFILE  # noqa: E402
from service_fixtures import BROKEN  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PACK = """\
pack: svc
version: "1"
gestures:
  - id: waive_fee
    title: Waive the repair fee
    category: fee_waiver
    tier: exceed
    cost: interaction.cost
    authority: genuine
    script: "You've been with us {customer.tenure_years} years - this one's on us."
  - id: tire_check
    title: Free tire check
    category: freebie
    tier: exceed
    cost: 5
    script: "We'll check your tires for free."
rules:
  - id: loyal-flat
    when:
      all:
        - interaction.issue eq flat_tire
        - customer.tenure_years ge 2
        - interaction.cost le 40
    then: waive_fee
    priority: 70
    because: Don't nickel-and-dime loyal customers.
  - id: any-flat
    when: interaction.issue eq flat_tire
    then: tire_check
    because: Flat tires deserve a check.
"""


LOYAL = {"customer": {"id": "c-1", "tenure_years": 6}, "interaction": {"issue": "flat_tire", "cost": 25}}

KEYS = {
    "acme": ("k-acme-all", "acme", ["recommend", "outcome"]),
    "acme_outcome": ("k-acme-outcome", "acme", ["outcome"]),
    "globex": ("k-globex", "globex", ["recommend"]),
    "admin": ("k-admin", "acme", ["admin"]),
}


def key_entries() -> list[dict]:
    return [{"hash": hash_key(k), "tenant": t, "scopes": s, "name": n} for n, (k, t, s) in KEYS.items()]


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "svc.yaml").write_text(PACK)
    return d


@pytest.fixture
def app(rules_dir: Path):
    # OPEN_PROFILE: every extra offered, no listing caps (this tests the service, not the advice model)
    settings = Settings(rules=[rules_dir], api_keys=key_entries(), max_body_bytes=4096, autoload_plugins=False,
                        profiles={"default": OPEN_PROFILE})
    return create_app(settings)


@pytest.fixture
def http(app):
    with TestClient(app) as tc:
        yield tc


def client(http: TestClient, who: str | None = "acme") -> RecommenderClient:
    return RecommenderClient(api_key=KEYS[who][0] if who else None, client=http)


# -- recommendations -----------------------------------------------------------------


def test_recommendation_ranked_with_version_header_and_body(http):
    c = client(http)
    result = c.recommend(LOYAL)
    assert result.gesture_ids() == ["waive_fee", "tire_check"]
    assert result.business == "acme"  # the key's tenant when the context names none
    assert result.decision_id is None  # no store configured
    assert c.ruleset_version == result.ruleset_version == result.receipt.ruleset_version
    assert re.fullmatch(r"[0-9a-f]{12}", result.ruleset_version)


def test_budget_and_max_extras_query_parameters(http):
    c = client(http)
    result = c.recommend(LOYAL, budget=10)
    assert result.gesture_ids() == ["tire_check"]
    assert [w.gesture_id for w in result.withheld] == ["waive_fee"]
    assert c.recommend(LOYAL, max_extras=1).gesture_ids() == ["waive_fee"]


def test_explain_lists_matched_rules(http):
    exp = client(http).explain(LOYAL)
    assert exp.rules_matched == ["any-flat", "loyal-flat"]
    assert exp.rules_evaluated == 2


def test_every_response_has_the_ruleset_version_header(http):
    version = client(http).recommend(LOYAL).ruleset_version
    for method, path in [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/nope"),
                         ("GET", "/v1/gestures"), ("POST", "/v1/recommendations")]:
        resp = http.request(method, path)
        assert resp.headers["x-ruleset-version"] == version, path


def test_the_decision_endpoints_skip_the_router_and_answer_as_routed(http, monkeypatch):
    """POST /v1/recommendations and /v1/explain go straight to their endpoints (HotRoutes);
    the same paths with a trailing slash or another method, and every other route, are routed."""
    from fastapi.routing import APIRoute

    routed: list[str] = []
    real = APIRoute.handle

    async def handle(self, scope, receive, send):
        routed.append(self.path)
        await real(self, scope, receive, send)

    monkeypatch.setattr(APIRoute, "handle", handle)
    c = client(http)
    assert c.recommend(LOYAL).gesture_ids() == ["waive_fee", "tire_check"]
    assert c.explain(LOYAL).rules_matched == ["any-flat", "loyal-flat"]
    assert routed == []
    assert http.get("/v1/recommendations").status_code == 405
    assert routed == ["/v1/recommendations"]  # through the router, whose route answers 405
    slash = http.post("/v1/recommendations/", json=LOYAL, headers={"X-API-Key": KEYS["acme"][0]},
                      follow_redirects=False)
    assert slash.status_code == 307 and slash.headers["location"].endswith("/v1/recommendations")
    c.gestures()
    assert routed == ["/v1/recommendations", "/v1/gestures"]


def test_an_unexpected_error_on_a_decision_endpoint_is_a_500_in_the_error_format(app, caplog):
    """What the endpoint raises meets the app's own handlers, as through the router: a
    RecommenderError its mapped status, anything else a logged 500 without details."""
    from recommender.errors import EngineError

    state = app.state.service

    async def broken(ctx, **kwargs):
        raise RuntimeError("a bug with a secret in it")

    async def engine(ctx, **kwargs):
        raise EngineError("the engine gave up")

    headers = {"X-API-Key": KEYS["acme"][0]}
    with TestClient(app, raise_server_exceptions=False) as tc:
        version = client(tc).recommend(LOYAL).ruleset_version
        state.decide = broken
        resp = tc.post("/v1/recommendations", json=LOYAL, headers=headers)
        assert resp.status_code == 500 and resp.json()["error"] == "internal_error"
        assert "secret" not in resp.text and resp.headers["x-ruleset-version"] == version
        state.decide = engine
        resp = tc.post("/v1/explain", json=LOYAL, headers=headers)
        assert resp.status_code == 500 and resp.json() == {
            "error": "engine_error", "message": "the engine gave up", "errors": [], "problems": [],
            "ruleset_version": version}
        text = tc.get("/metrics").text
    assert "unhandled error on POST /v1/recommendations" in caplog.text
    assert 'recommender_http_requests_total{method="POST",route="/v1/recommendations",status="500"} 1.0' in text
    assert 'recommender_http_requests_total{method="POST",route="/v1/explain",status="500"} 1.0' in text


def test_catalogue_endpoints(http):
    c = client(http)
    gestures = c.gestures()
    assert {g["id"] for g in gestures["gestures"]} == {"waive_fee", "tire_check"}
    assert gestures["business"] == "acme"
    packs = c.rulepacks()
    assert packs["ruleset_version"] == c.ruleset_version
    assert [(p["name"], p["version"], p["rules"]) for p in packs["packs"]] == [("svc", "1", 2)]
    plugins = c.plugins()
    assert "plugins" in plugins and isinstance(plugins["plugins"], list)


def test_probes(http):
    assert http.get("/healthz").json()["status"] == "ok"
    ready = http.get("/readyz").json()
    assert set(ready) == {"ready", "ruleset_version"} and ready["ready"] is True  # no details without a key
    assert set(http.get("/readyz", headers={"X-API-Key": KEYS["acme"][0]}).json()) == {"ready", "ruleset_version"}
    ready = http.get("/readyz", headers={"X-API-Key": KEYS["admin"][0]}).json()
    assert ready["ready"] is True and ready["checks"]["rules"]["ok"] is True
    assert "store" not in ready["checks"]


# -- auth and tenants ----------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "Basic abc"}])
def test_missing_or_wrong_key_is_401(http, headers):
    resp = http.post("/v1/recommendations", json=LOYAL, headers=headers)
    assert resp.status_code == 401
    assert resp.json()["error"] == "unauthorized"
    assert resp.headers["www-authenticate"].startswith("Bearer")


def test_bearer_token_works(http):
    resp = http.post("/v1/recommendations", json=LOYAL, headers={"Authorization": f"Bearer {KEYS['acme'][0]}"})
    assert resp.status_code == 200


def test_key_outside_scope_is_403(http):
    with pytest.raises(ServiceError) as e:
        client(http, "acme_outcome").recommend(LOYAL)
    assert (e.value.status, e.value.code) == (403, "forbidden_scope")
    with pytest.raises(ServiceError) as e:
        client(http, "acme").reload()
    assert e.value.status == 403


def test_key_of_another_tenant_is_403(http):
    ctx = {**LOYAL, "business": {"id": "acme"}}
    assert client(http, "acme").recommend(ctx).business == "acme"
    with pytest.raises(ServiceError) as e:
        client(http, "globex").recommend(ctx)
    assert (e.value.status, e.value.code) == (403, "forbidden_tenant")
    # without business.id the key's tenant applies
    assert client(http, "globex").recommend(LOYAL).business == "globex"


def test_no_auth_mode_must_be_explicit(rules_dir):
    with TestClient(create_app(Settings(rules=[rules_dir], autoload_plugins=False))) as tc:  # config mode, no keys: 401
        assert tc.post("/v1/recommendations", json=LOYAL).status_code == 401
    with TestClient(create_app(Settings(rules=[rules_dir], auth="none", autoload_plugins=False))) as tc:
        resp = tc.post("/v1/recommendations", json={**LOYAL, "business": {"id": "any"}})
        assert resp.status_code == 200 and resp.json()["business"] == "any"


# -- bad input: 4xx with a field path or reason, never a 500 ---------------------------


def test_malformed_json_is_400(http):
    resp = http.post("/v1/recommendations", content=b'{"interaction": {', headers={
        "X-API-Key": KEYS["acme"][0], "Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["error"] == "malformed_json"


@pytest.mark.parametrize("body, field", [
    ({"interaction": {"issue": "flat_tire", "cost": "25"}}, "interaction.cost"),
    ({"interaction": {"issue": "flat_tire"}, "customer": {"tenure_years": True}}, "customer.tenure_years"),
    ({"interaction": {"issue": "flat_tire"}, "surprise": 1}, "surprise"),
    ({"interaction": {"issue": "flat_tire", "colour": "red"}}, "interaction.colour"),
    ({"customer": {}}, "interaction"),
    ([1, 2], ""),
    ({"interaction": {"issue": "flat tire!"}}, "interaction.issue"),
])
def test_invalid_context_is_422_with_field_path(http, body, field):
    with pytest.raises(ServiceError) as e:
        client(http).recommend(body)  # type: ignore[arg-type]
    assert e.value.status == 422 and e.value.code == "invalid_request"
    assert field in e.value.fields


def test_invalid_query_parameter_names_it(http):
    resp = http.post("/v1/recommendations?budget=-1", json=LOYAL, headers={"X-API-Key": KEYS["acme"][0]})
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "query.budget"


def test_body_over_the_limit_is_413(http):
    big = {"interaction": {"issue": "flat_tire", "attributes": {f"k{i}": "x" * 100 for i in range(60)}}}
    resp = http.post("/v1/recommendations", json=big, headers={"X-API-Key": KEYS["acme"][0]})
    assert resp.status_code == 413
    assert resp.json()["error"] == "payload_too_large"


def test_body_over_the_limit_streamed_without_length_is_413(http):
    def chunks():
        for _ in range(10):
            yield b" " * 1000

    resp = http.post("/v1/recommendations", content=chunks(), headers={"X-API-Key": KEYS["acme"][0],
                                                                       "Content-Type": "application/json"})
    assert resp.status_code == 413


def test_unknown_route_and_method(http):
    resp = http.get("/v1/nothing-here")
    assert resp.status_code == 404 and resp.json()["error"] == "not_found"
    resp = http.get("/v1/recommendations")
    assert resp.status_code == 405 and resp.json()["error"] == "method_not_allowed"


def test_store_endpoints_without_a_store_are_404_with_reason(http):
    c = client(http)
    with pytest.raises(ServiceError) as e:
        c.record_outcome("d-unknown", "waive_fee", "accepted")
    assert e.value.status == 404 and e.value.code == "no_store"
    with pytest.raises(ServiceError) as e:
        c.customer("c-1")
    assert e.value.status == 404 and "no memory store" in e.value.message


def test_outcome_body_is_validated(http):
    resp = http.post("/v1/decisions/d1/outcomes", json={"gesture_id": "waive_fee", "outcome": "loved"},
                     headers={"X-API-Key": KEYS["acme"][0]})
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "outcome"


# -- hot reload ------------------------------------------------------------------------


def test_reload_picks_up_changes_and_a_broken_pack_is_422_keeping_the_version(http, rules_dir):
    admin, user = client(http, "admin"), client(http)
    v1 = user.recommend(LOYAL).ruleset_version
    (rules_dir / "svc.yaml").write_text(PACK.replace("priority: 70", "priority: 71"))
    out = admin.reload()
    assert out["changed"] is True and out["previous_version"] == v1
    v2 = out["ruleset_version"]
    assert v2 != v1 and user.recommend(LOYAL).ruleset_version == v2

    (rules_dir / "broken.yaml").write_text(BROKEN)
    with pytest.raises(ServiceError) as e:
        admin.reload()
    assert e.value.status == 422 and e.value.code == "invalid_rule_pack"
    texts = [p["text"] for p in e.value.problems]
    assert any(re.search(r"broken\.yaml:\d+: .*no_such_gesture", t) for t in texts), texts
    assert all(p["line"] for p in e.value.problems)
    assert user.recommend(LOYAL).ruleset_version == v2  # the running version stays active
    assert f'recommender_ruleset_info{{version="{v2}"}} 1.0' in user.metrics()


# -- metrics ---------------------------------------------------------------------------


def test_metrics_use_route_templates_and_count_gestures(http):
    c = client(http)
    c.recommend(LOYAL)
    c.recommend(LOYAL)
    for d in ("d-1", "d-2"):
        http.post(f"/v1/decisions/{d}/outcomes", json={"gesture_id": "x", "outcome": "accepted"},
                  headers={"X-API-Key": KEYS["acme"][0]})
    text = c.metrics()
    assert 'recommender_http_requests_total{method="POST",route="/v1/recommendations",status="200"} 2.0' in text
    assert 'route="/v1/decisions/{decision_id}/outcomes",status="404"} 2.0' in text
    assert "d-1" not in text  # never the raw path
    assert 'recommender_http_request_duration_seconds_count{method="POST",route="/v1/recommendations"} 2.0' in text
    assert 'recommender_recommendations_total{gesture="waive_fee"} 2.0' in text
    assert 'recommender_recommendations_total{gesture="tire_check"} 2.0' in text
    assert f'recommender_ruleset_info{{version="{c.ruleset_version}"}} 1.0' in text
    assert "recommender_plugin_failures_total" in text


def test_plugin_failures_are_counted(rules_dir):
    from recommender import Recommender
    from recommender.plugins import hookimpl

    class Broken:
        @hookimpl
        def recommender_enrich_context(self, context, business):  # a hook that always fails
            raise RuntimeError("boom")

    rec = Recommender([rules_dir], plugins=[Broken()], autoload=False)
    with TestClient(create_app(Settings(auth="none"), recommender=rec)) as tc:
        result = tc.post("/v1/recommendations", json=LOYAL).json()
        assert "boom" in result["warnings"][0]["message"]
        text = tc.get("/metrics").text
    assert re.search(r'recommender_plugin_failures_total\{hook="[^"]+",plugin="[^"]+"\} 1.0', text) or \
        re.search(r'recommender_plugin_failures_total\{plugin="[^"]+",hook="[^"]+"\} 1.0', text)


def count_threadpool_calls(monkeypatch) -> list:
    """The functions the service hands to its threadpool from now on."""
    import recommender.service.app as app_module

    calls = []
    real = app_module.run_in_threadpool

    async def counted(fn, *args, **kwargs):
        calls.append(getattr(fn, "__name__", fn))
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(app_module, "run_in_threadpool", counted)
    return calls


def test_a_first_explanation_compiles_off_the_event_loop(rules_dir, monkeypatch):
    """Explaining compiles a matcher of every test once: that first call goes to the
    threadpool; later ones (and recommendations) run on the loop."""
    app = create_app(Settings(rules=[rules_dir], auth="none", autoload_plugins=False))
    hops = count_threadpool_calls(monkeypatch)
    with TestClient(app) as tc:
        assert tc.post("/v1/recommendations", json=LOYAL).status_code == 200
        assert hops == []
        first = tc.post("/v1/explain", json=LOYAL)
        assert first.status_code == 200 and hops == ["explain"]
        assert tc.post("/v1/explain", json=LOYAL).json() == first.json()
        assert hops == ["explain"]


@pytest.mark.parametrize("timeout, pooled", [("0.5", True), ("0", False)])
def test_plugin_timeout_setting_decides_where_hooks_run(rules_dir, tmp_path, monkeypatch, timeout, pooled):
    """Timed hooks run on the plugin pool, with the request waiting on the event loop (no
    threadpool hop besides); with plugin_timeout = 0 they run inline."""
    (tmp_path / "probe.py").write_text(
        "import threading\nfrom recommender import hookimpl\nseen = []\n"
        "@hookimpl\ndef recommender_enrich_context(context):\n    seen.append(threading.current_thread().name)\n")
    monkeypatch.setenv("RECOMMENDER_PLUGIN_TIMEOUT", timeout)
    settings = Settings(rules=[rules_dir], auth="none", autoload_plugins=False, plugins_dir=tmp_path)
    assert settings.plugin_timeout == float(timeout)
    app = create_app(settings)
    hops = count_threadpool_calls(monkeypatch)
    with TestClient(app) as tc:
        assert tc.post("/v1/recommendations", json=LOYAL).status_code == 200
        assert hops == []
    host = app.state.service.recommender.host
    seen = host.pm.get_plugin("probe").seen
    assert host.timeout == float(timeout) and len(seen) == 1
    assert seen[0].startswith("plugin") is pooled


# -- OpenAPI ---------------------------------------------------------------------------


def test_checked_in_openapi_document_is_current():
    from recommender.cli.serve_cmd import render_openapi

    path = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"
    assert path.read_text(encoding="utf-8") == render_openapi(), \
        "docs/openapi.json is stale: run `recommender openapi`"


def test_openapi_is_served(http):
    doc = http.get("/openapi.json").json()
    assert "/v1/recommendations" in doc["paths"]
    assert set(doc["components"]["securitySchemes"]) == {"ApiKey", "Bearer"}


# -- settings --------------------------------------------------------------------------


def test_settings_from_toml_env_and_arguments(tmp_path, monkeypatch):
    (tmp_path / "packs").mkdir()
    cfg = tmp_path / "service.toml"
    cfg.write_text(f"""
rules = ["packs"]
port = 9001
workers = 3
[[api_keys]]
name = "pos"
tenant = "acme"
scopes = ["recommend"]
hash = "{hash_key('secret')}"
""")
    s = Settings(config=cfg)
    assert s.rules == [tmp_path / "packs"]  # relative to the config file
    assert (s.port, s.workers, s.effective_auth) == (9001, 3, "config")
    assert s.api_keys[0].tenant == "acme"
    monkeypatch.setenv("RECOMMENDER_PORT", "9002")
    monkeypatch.setenv("RECOMMENDER_RULES", "/a:/b")
    monkeypatch.setenv("RECOMMENDER_STORE_URL", "sqlite:///x.db")
    s = Settings(config=cfg)
    assert (s.port, s.rules, s.effective_auth) == (9002, [Path("/a"), Path("/b")], "store")
    assert Settings(config=cfg, port=9003).port == 9003
    monkeypatch.setenv("RECOMMENDER_CONFIG", str(cfg))
    assert Settings().workers == 3


def test_settings_from_yaml_and_errors(tmp_path):
    cfg = tmp_path / "service.yaml"
    cfg.write_text("host: 0.0.0.0\nmax_body_bytes: 2048\nauth: none\n")
    s = Settings(config=cfg)
    assert (s.host, s.max_body_bytes, s.effective_auth) == ("0.0.0.0", 2048, "none")
    bad = tmp_path / "bad.toml"
    bad.write_text("port = [")
    with pytest.raises(ConfigFileError, match="bad.toml"):
        Settings(config=bad)
    with pytest.raises(Exception, match="prot"):
        cfg.write_text("prot: 1\n")
        Settings(config=cfg)


def test_cli_config_key_and_openapi_check(tmp_path):
    from typer.testing import CliRunner

    from recommender.cli import app
    from recommender.cli.app import load_command_groups

    load_command_groups()
    runner = CliRunner()
    res = runner.invoke(app, ["config-key", "--tenant", "acme", "--scope", "recommend", "--key", "s3cret"])
    assert res.exit_code == 0, res.output
    assert hash_key("s3cret") in res.output and 'tenant = "acme"' in res.output
    target = tmp_path / "openapi.json"
    assert runner.invoke(app, ["openapi", "-o", str(target)]).exit_code == 0
    assert json.loads(target.read_text())["info"]["title"] == "Service recommender"
    assert runner.invoke(app, ["openapi", "-o", str(target), "--check"]).exit_code == 0
    target.write_text("{}")
    assert runner.invoke(app, ["openapi", "-o", str(target), "--check"]).exit_code == 1


def test_client_against_asgi_transport(app):
    """The async path: httpx.AsyncClient over ASGITransport talks to the same app."""
    import asyncio

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as ac:
            resp = await ac.post("/v1/recommendations", json=LOYAL, headers={"X-API-Key": KEYS["acme"][0]})
            return resp

    resp = asyncio.run(go())
    assert resp.status_code == 200
    assert resp.json()["recommendations"][0]["gesture_id"] == "waive_fee"
