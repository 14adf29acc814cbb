"""Issue 15, item 14: JSON bodies must say so, the console's pages carry a CSP whose
``frame-ancestors`` is configurable, and the API docs load nothing from outside the server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from recommender.service import Settings, create_app  # noqa: E402
from service_fixtures import TIRE_PACK  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CTX = json.dumps({"customer": {"id": "c-1"}, "interaction": {"issue": "flat_tire", "cost": 20}})
PAGES = ["/docs", "/redoc", "/docs/oauth2-redirect", "/console", "/console/insights"]


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "p.yaml").write_text(TIRE_PACK)
    return d


def _app(rules: Path, tmp_path: Path, **kw: Any) -> Any:
    return create_app(Settings(rules=[rules], auth="none", autoload_plugins=False,
                               store_url=f"sqlite:///{tmp_path / 'm.db'}", **kw))


@pytest.fixture
def http(rules: Path, tmp_path: Path) -> Iterator[TestClient]:
    """``--no-auth`` mode: where a cross-site form post would otherwise get through."""
    with TestClient(_app(rules, tmp_path)) as tc:
        yield tc


# -- Content-Type ---------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/jsonx", "json"])
@pytest.mark.parametrize("path", ["/v1/recommendations", "/v1/explain"])
def test_recommend_and_explain_take_only_json(http, path, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    r = http.post(path, content=CTX, headers=headers)
    assert r.status_code == 415, r.text
    body = r.json()
    assert body["error"] == "unsupported_media_type" and body["errors"][0]["field"] == "header.Content-Type"
    assert "application/json" in body["message"]


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON", "application/merge-patch+json"])
def test_json_media_types_are_accepted(http, content_type):
    assert http.post("/v1/recommendations", content=CTX, headers={"Content-Type": content_type}).status_code == 200


def test_outcomes_take_only_json_and_nothing_is_recorded_otherwise(http):
    decision = http.post("/v1/recommendations", json=json.loads(CTX)).json()
    d, gesture = decision["decision_id"], decision["recommendations"][0]["gesture_id"]
    outcome = json.dumps({"gesture_id": gesture, "outcome": "accepted"})
    for headers in ({}, {"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}):
        r = http.post(f"/v1/decisions/{d}/outcomes", content=outcome, headers={**headers, "Idempotency-Key": "k"})
        assert r.status_code == 415, r.text
    ok = http.post(f"/v1/decisions/{d}/outcomes", content=outcome,
                   headers={"Content-Type": "application/json", "Idempotency-Key": "k"})
    assert ok.status_code == 201 and ok.json()["replayed"] is False  # the refused ones recorded nothing


def test_a_cross_site_form_cannot_reload_the_rules(http):
    form = http.post("/v1/admin/reload", content=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    assert http.post("/v1/admin/reload").status_code == 200  # no body, no Content-Type: fine


# -- the console's Content-Security-Policy --------------------------------------------------


def _csp(resp: Any) -> dict[str, str]:
    return {d.split(" ", 1)[0]: d.split(" ", 1)[1] if " " in d else ""
            for d in (p.strip() for p in resp.headers["content-security-policy"].split(";"))}


def test_console_pages_send_a_csp_allowing_only_this_server(http):
    for path in ("/console", "/console/insights"):
        r = http.get(path)
        csp = _csp(r)
        assert csp["default-src"] == "'none'" and csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
        assert csp["connect-src"] == "'self'" and csp["frame-ancestors"] == "'self'"
        assert csp["form-action"] == "'none'" and csp["base-uri"] == "'none'"
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "no-referrer"


def test_frame_ancestors_is_an_allow_list_in_the_settings(rules, tmp_path, monkeypatch):
    allowed = ["'self'", "https://helpdesk.example.com", "https://*.zendesk.com:8443"]
    with TestClient(_app(rules, tmp_path, frame_ancestors=allowed)) as tc:
        assert _csp(tc.get("/console"))["frame-ancestors"] == " ".join(allowed)
        assert _csp(tc.get("/docs"))["frame-ancestors"] == " ".join(allowed)
    monkeypatch.setenv("RECOMMENDER_FRAME_ANCESTORS", "https://desk.example.org 'self'")
    assert Settings().frame_ancestors == ["https://desk.example.org", "'self'"]
    monkeypatch.setenv("RECOMMENDER_FRAME_ANCESTORS", "'none'")
    assert Settings().frame_ancestors == ["'none'"]
    monkeypatch.delenv("RECOMMENDER_FRAME_ANCESTORS")
    for bad in ([], ["*"], ["https://x.example; script-src *"], ["'none'", "'self'"], ["javascript:alert(1)"],
                ["http://a.example/path"]):
        with pytest.raises(ValueError, match="frame_ancestors"):
            Settings(frame_ancestors=bad)


# -- the API docs, offline ---------------------------------------------------------------------

_REF = re.compile(r"""(?:src|href|action|spec-url|url)\s*[=:]\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)""", re.I)


def _references(text: str) -> list[str]:
    return [a or b for a, b in _REF.findall(text)]


def test_no_page_references_anything_outside_the_server(http):
    seen: set[str] = set()
    for path in PAGES:
        r = http.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
        text = r.text
        assert not re.search(r"(?:https?:)?//[A-Za-z0-9]", re.sub(r"<!--.*?-->", "", text, flags=re.S)), \
            f"{path} names an outside URL"
        refs = _references(text)
        assert refs or path == "/docs/oauth2-redirect"
        for ref in refs:
            assert ref.startswith("/") and not ref.startswith("//"), f"{path}: {ref}"
            seen.add(ref)
        csp = _csp(r)
        assert csp["default-src"] == "'none'" and csp["connect-src"] == "'self'" and "http" not in str(csp)
    assert {"/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css", "/docs/static/redoc.standalone.js",
            "/openapi.json", "/console/static/console.css", "/console/static/console.js"} <= seen
    for ref in sorted(seen):  # every asset a page names is served by this server
        r = http.get(ref)
        assert r.status_code == 200 and len(r.content) > 0, ref
        if ref.endswith(".css"):
            assert all(not re.match(r"(?:https?:)?//", u) for u in _references(r.text)), ref
    assert http.get("/docs/static/../settings.py").status_code == 404
    assert http.get("/docs/static/swagger-ui.css").headers["x-content-type-options"] == "nosniff"


def test_swagger_ui_does_not_ask_an_online_validator(http):
    assert '"validatorUrl": null' in http.get("/docs").text
