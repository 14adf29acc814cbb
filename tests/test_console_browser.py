"""The agent console end to end in headless Chromium (Debian's /usr/bin/chromium).

Load the page, submit a context, see the waived flat-tire fee, record acceptance, and see
it counted on the insights page. The server is the real one, in its own process, with a
SQLite store and an API key made by the store's KeyStore.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from test_service_server import Server

CHROMIUM = "/usr/bin/chromium"
PACK = """\
pack: console
gestures:
  - id: waive_flat_fee
    title: Waive the flat-tire repair fee
    category: fee_waiver
    tier: exceed
    cost: interaction.cost
    script: "You've been with us {customer.tenure_years} years - this repair is on us."
rules:
  - id: loyal-flat
    when: [interaction.issue eq flat_tire, customer.tenure_years ge 2, interaction.cost le 40]
    then: waive_flat_fee
    because: Don't nickel-and-dime a loyal customer.
"""


def _browser_or_skip():
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        if os.environ.get("CI", "").lower() == "true" or os.environ.get("RECOMMENDER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return pytest.importorskip("playwright.sync_api")


@pytest.fixture
def console_server(tmp_path):
    from recommender.memory import KeyStore, open_store

    url = f"sqlite:///{tmp_path / 'console.db'}"
    with open_store(url) as store:
        _, key = KeyStore(store).create("default", ["recommend", "outcome"], "desk")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "console.yaml").write_text(PACK)
    cfg = tmp_path / "service.toml"
    cfg.write_text(f'rules = ["rules"]\nautoload_plugins = false\nlog_level = "warning"\nstore_url = {json.dumps(url)}\n')
    with Server(["--config", str(cfg)], tmp_path / "server.log") as srv:
        yield srv, key


def test_console_recommend_and_record_acceptance(console_server):
    sync_api = _browser_or_skip()
    srv, key = console_server
    context = {"customer": {"id": "c-1", "tenure_years": 6, "lifetime_value": 2400},
               "interaction": {"issue": "flat_tire", "cost": 25}}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page()
            page.goto(srv.url + "/console")
            page.fill("#apikey", key)
            page.dispatch_event("#apikey", "change")
            page.fill("#context", json.dumps(context))
            page.click("#recommend")
            card = page.locator('.gesture[data-gesture="waive_flat_fee"]')
            card.wait_for(timeout=15000)
            assert "6 years - this repair is on us" in card.inner_text()
            card.locator('button[data-outcome="accepted"]').click()
            page.locator(".status", has_text="accepted recorded").wait_for(timeout=15000)
            card.locator('button[data-outcome="accepted"]').click()  # a double click counts once

            page.goto(srv.url + "/console/insights")
            page.locator("#acceptance", has_text="100%").wait_for(timeout=15000)
            assert "1 accepted of 1 answered" in page.inner_text("#answered")
            assert page.locator("#recent tr", has_text="waive_flat_fee").count() == 1
            assert page.locator("#charts svg").count() == 2
            page.screenshot(path=str(srv.log.parent / "insights.png"))
        finally:
            browser.close()
