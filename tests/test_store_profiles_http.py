"""Issue 14, store side, over HTTP and the CLI: ``GET/PUT/DELETE /v1/profile`` and
``recommender profile show|set|clear``, on SQLite and PostgreSQL: a tenant's own profile is
set by an admin, applies to the next recommendation, and bad input is 422 / exit 2 naming the
key with nothing stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from memory_fixtures import db_url, pg_url  # noqa: E402,F401  (fixtures)
from test_store_profiles import PACK, visit  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from recommender.memory import KeyStore, open_store  # noqa: E402
from recommender.service import Settings, create_app  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MEMBER = visit("m-1", tenure_years=1.5)


def _rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "profiles.yaml").write_text(json.dumps(PACK))  # JSON is YAML
    return rules


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], Any]]:
    store = open_store(db_url, upgrade=True)
    settings = Settings(rules=[_rules(tmp_path)], store_url=db_url, autoload_plugins=False, key_cache_seconds=0,
                        profiles={"default": {"money_limits": {"genuine": 200, "super": 500}}})
    app = create_app(settings, store=store)
    keys = KeyStore(store)
    plain = {"pos": keys.create("gym", ["recommend", "outcome"], "gym pos")[1],
             "admin": keys.create("gym", ["admin"], "ops")[1],
             "other": keys.create("spa", ["admin"], "spa ops")[1]}
    with TestClient(app) as http:
        yield http, plain, store
    store.close()


def _h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def _put(http: TestClient, key: str, body: Any, **kw: Any) -> Any:
    return http.put("/v1/profile", content=body if isinstance(body, (bytes, str)) else json.dumps(body),
                    headers={**_h(key), "Content-Type": kw.pop("content_type", "application/json")}, **kw)


def _loyal(http: TestClient, key: str) -> bool:
    r = http.post("/v1/recommendations", json=MEMBER, headers=_h(key))
    assert r.status_code == 200, r.text
    return "loyal_thanks" in [g["gesture_id"] for g in r.json()["recommendations"]]


def test_get_shows_the_profile_in_force_with_each_key_s_source(env: Any) -> None:
    http, keys, _ = env
    r = http.get("/v1/profile", headers=_h(keys["pos"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["business"] == "gym" and body["stored"] is None and body["warnings"] == []
    assert body["profile"]["loyal_tenure_years"] == 3.0 and body["profile"]["money_limits"]["genuine"] == 200
    assert body["sources"]["loyal_tenure_years"] == "default"
    assert body["sources"]["money_limits.genuine"] == "config:default"
    assert body["sources"]["money_limits.synthetic"] == "default"
    assert body["cache_seconds"] == 30
    assert body["profile"]["extras_key"] == "***"  # the draw's key: admins only
    assert http.get("/v1/profile", headers=_h(keys["admin"])).json()["profile"]["extras_key"] == "recommender-extras"


def test_an_admin_sets_the_profile_and_the_next_recommendation_uses_it(env: Any) -> None:
    http, keys, store = env
    assert not _loyal(http, keys["pos"])
    r = _put(http, keys["admin"], {"loyal_tenure_years": 1, "money_limits": {"synthetic": 150}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stored"]["revision"] == 1 and body["stored"]["updated_by"] == "key:ops"
    assert body["stored"]["profile"] == {"loyal_tenure_years": 1.0, "money_limits": {"synthetic": 150.0}}
    assert body["sources"]["loyal_tenure_years"] == "store"
    assert body["sources"]["money_limits.synthetic"] == "store"  # valid over the configured layer under it
    assert body["sources"]["money_limits.genuine"] == "config:default"
    assert body["profile"]["loyal_tenure_years"] == 1.0
    assert _loyal(http, keys["pos"])  # this server: at once
    assert store.tenant_profile("gym").revision == 1
    assert http.get("/v1/profile", headers=_h(keys["pos"])).json()["stored"]["revision"] == 1
    r = http.delete("/v1/profile", headers=_h(keys["admin"]))
    assert r.status_code == 200 and r.json()["stored"] is None
    assert r.json()["sources"]["loyal_tenure_years"] == "default"
    assert not _loyal(http, keys["pos"])
    assert http.delete("/v1/profile", headers=_h(keys["admin"])).status_code == 200  # idempotent


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"loyal_tenur_years": 2}, "profile.loyal_tenur_years", "unknown profile key (did you mean 'loyal_tenure_years'?)"),
    ({"extras_rate": 2}, "profile.extras_rate", "less than or equal to 1"),
    ({"listing": {"exceed": -1}}, "profile.listing.exceed", "greater than or equal to 0"),
    ({"money_limits": {"synthetic": 900}}, "profile.money_limits", "must not fall with authority"),
    ({"extras_key": "a\u0000b"}, "profile.extras_key", "NUL"),
    (["loyal_tenure_years"], "profile", "a profile is a mapping"),
])
def test_invalid_profiles_are_422_naming_the_key_and_nothing_is_stored(env: Any, body: Any, field: str,
                                                                      message: str) -> None:
    http, keys, store = env
    assert _put(http, keys["admin"], {"high_value": 600}).status_code == 200
    r = _put(http, keys["admin"], body)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["error"] == "invalid_request"
    assert err["errors"][0]["field"] == field and message in err["errors"][0]["message"]
    assert err["message"].startswith(f"{field}: ")
    assert store.tenant_profile("gym").profile == {"high_value": 600.0}  # nothing stored, nothing lost


def test_who_may_set_it_and_bad_bodies(env: Any) -> None:
    http, keys, store = env
    r = _put(http, keys["pos"], {"loyal_tenure_years": 1})
    assert r.status_code == 403 and r.json()["error"] == "forbidden_scope"
    assert http.delete("/v1/profile", headers=_h(keys["pos"])).status_code == 403
    r = _put(http, keys["admin"], {"loyal_tenure_years": 1}, params={"tenant": "spa"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden_tenant"
    assert _put(http, keys["admin"], b"{not json").status_code == 400
    assert _put(http, keys["admin"], b'{"loyal_tenure_years": 1}', content_type="text/plain").status_code == 415
    assert http.put("/v1/profile", json={"loyal_tenure_years": 1}).status_code == 401
    assert store.tenant_profile("gym") is None and store.tenant_profile("spa") is None
    # each tenant its own
    assert _put(http, keys["other"], {"loyal_tenure_years": 1}).status_code == 200
    assert store.tenant_profile("spa").revision == 1 and store.tenant_profile("gym") is None
    assert not _loyal(http, keys["pos"])


def test_without_a_store_the_profile_is_shown_but_not_set(tmp_path: Path) -> None:
    settings = Settings(rules=[_rules(tmp_path)], autoload_plugins=False, auth="none")
    with TestClient(create_app(settings)) as http:
        r = http.get("/v1/profile", params={"tenant": "gym"})
        assert r.status_code == 200 and r.json()["stored"] is None and r.json()["cache_seconds"] is None
        r = http.put("/v1/profile", json={"loyal_tenure_years": 1})
        assert r.status_code == 404 and r.json()["error"] == "no_store"
        assert http.delete("/v1/profile").status_code == 404


def test_the_openapi_document_describes_the_profile_endpoints(env: Any) -> None:
    http, _, _ = env
    doc = http.get("/openapi.json").json()
    ops = doc["paths"]["/v1/profile"]
    assert set(ops) == {"get", "put", "delete"}
    assert ops["put"]["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Profile"}
    assert "422" in ops["put"]["responses"] and "404" in ops["put"]["responses"]
    assert "loyal_tenure_years" in doc["components"]["schemas"]["Profile"]["properties"]


# -- the CLI -------------------------------------------------------------------------------


@pytest.fixture
def cli() -> Any:
    import typer

    from recommender.cli import profile_cmd

    app = typer.Typer()
    profile_cmd.register(app)
    app.command("noop")(lambda: None)  # a second command keeps 'profile' a group
    runner = CliRunner()
    return lambda *args, input=None: runner.invoke(app, list(args), input=input, catch_exceptions=False)


def test_cli_show_set_and_clear(cli: Any, db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("postgresql"):
        open_store(db_url, upgrade=True).close()
    good = tmp_path / "gym.yaml"
    good.write_text("loyal_tenure_years: 1\nmoney_limits:\n  genuine: 80\n")
    r = cli("profile", "set", str(good), "--tenant", "gym", "--url", db_url, "--by", "amy")
    assert r.exit_code == 0, r.output
    assert "stored profile revision 1 for tenant gym (loyal_tenure_years, money_limits.genuine)" in r.output
    r = cli("profile", "show", "--tenant", "gym", "--url", db_url, "--json")
    shown = json.loads(r.output)
    assert shown["stored"]["updated_by"] == "amy" and shown["stored"]["revision"] == 1
    assert shown["profile"]["money_limits"]["genuine"] == 80 and shown["sources"]["money_limits.genuine"] == "store"
    table = cli("profile", "show", "--tenant", "gym", "--url", db_url).output
    assert "revision 1, set by amy" in table and "loyal_tenure_years" in table
    r = cli("profile", "set", "-", "--tenant", "gym", "--url", db_url, input='{"high_value": 600}')
    assert r.exit_code == 0 and "revision 2" in r.output
    assert "cleared the stored profile of tenant gym" in cli("profile", "clear", "--tenant", "gym", "--url", db_url).output
    assert "nothing changed" in cli("profile", "clear", "--tenant", "gym", "--url", db_url).output
    assert "no stored profile for tenant gym" in cli("profile", "show", "--tenant", "gym", "--url", db_url).output


@pytest.mark.parametrize(("text", "message"), [
    ('{"loyal_tenur_years": 2}', "profile.loyal_tenur_years: unknown profile key (did you mean 'loyal_tenure_years'?)"),
    ('{"extras_rate": 2}', "profile.extras_rate: Input should be less than or equal to 1"),
    ('["x"]', "profile: a profile is a mapping of keys to values, got list"),
    ("{bad json", "invalid JSON"),
    ("", "is empty"),
])
def test_cli_bad_input_exits_2_naming_the_key_and_stores_nothing(cli: Any, db_url: str, tmp_path: Path,
                                                                 text: str, message: str) -> None:
    if db_url.startswith("postgresql"):
        open_store(db_url, upgrade=True).close()
    else:
        assert not Path(db_url.removeprefix("sqlite:///")).exists()
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    r = cli("profile", "set", str(bad), "--tenant", "gym", "--url", db_url)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    if db_url.startswith("sqlite"):
        assert not Path(db_url.removeprefix("sqlite:///")).exists()  # bad input creates nothing
    else:
        with open_store(db_url) as store:
            assert store.tenant_profile("gym") is None
