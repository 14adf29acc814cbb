"""Issue 15, item 14, in headless Chromium: ``/docs`` and ``/redoc`` render with every request
to anywhere but the server refused (offline), and neither they nor the console break their
own Content-Security-Policy (the policy only ever refuses outside loads)."""

from __future__ import annotations

import json

import pytest
from test_console_browser import CHROMIUM, PACK, _browser_or_skip
from test_service_server import Server


@pytest.fixture
def server(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "console.yaml").write_text(PACK)
    cfg = tmp_path / "service.toml"
    ancestors = json.dumps(["'self'", "https://helpdesk.example.com"])
    cfg.write_text('rules = ["rules"]\nautoload_plugins = false\nlog_level = "warning"\nauth = "none"\n'
                   f"frame_ancestors = {ancestors}\n")
    with Server(["--config", str(cfg)], tmp_path / "server.log") as srv:
        yield srv


def test_docs_render_offline_and_no_page_breaks_its_csp(server):
    sync_api = _browser_or_skip()
    outside: list[str] = []
    violations: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            context = browser.new_context()

            def route(r: object) -> None:  # the machine is offline: only the server answers
                request = r.request  # type: ignore[attr-defined]
                if request.url.startswith(server.url) or request.url.startswith(("data:", "blob:")):
                    r.continue_()  # type: ignore[attr-defined]
                else:
                    outside.append(request.url)
                    r.abort()  # type: ignore[attr-defined]

            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)

            page.goto(server.url + "/docs")
            page.locator(".opblock").first.wait_for(timeout=20000)  # Swagger UI drew the operations
            assert page.locator(".opblock").count() >= 5
            assert "Service recommender" in page.inner_text(".info")

            page.goto(server.url + "/redoc")
            page.locator("h1", has_text="Service recommender").wait_for(timeout=20000)  # ReDoc drew the API
            page.locator("h2", has_text="Rank the gestures worth making now").wait_for(timeout=20000)

            page.goto(server.url + "/console")
            page.locator("#recommend").wait_for(timeout=10000)
            page.click("#json-toggle")  # the console's form, as JSON (issue 18)
            page.fill("#context", json.dumps({"customer": {"tenure_years": 6},
                                              "interaction": {"issue": "flat_tire", "cost": 25}}))
            page.click("#recommend")
            page.locator("#receipt", has_text="receipt").wait_for(timeout=15000)  # the API answered the page
            assert page.inner_text("#error") == ""
        finally:
            browser.close()
    assert outside == []  # nothing was fetched from anywhere but the server
    # The policy held: the only thing it refused is ReDoc's own footer logo (its bundle names
    # cdn.redoc.ly), an outside image that was therefore never fetched; no script or style broke.
    broken = [v for v in violations if not ("Loading the image 'https://cdn.redoc.ly/" in v and "img-src" in v)]
    assert broken == []
