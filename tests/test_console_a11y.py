"""Every console page passes axe-core (vendored under tests/vendor, for tests only) in Chromium
with zero serious or critical violations, filled with what an agent sees: an answer with its
disclosures open and fields asked for, the side panel at 380 px, a pending approval, the rules
browser, the insights charts (issue 18, item 8), and what outcomes taught, both as an admin
sees it (the learning table) and as an agent does ("needs admin") (issue 19, item 6). Labels on every control and colour contrast
are among axe's rules.
"""

from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest

from test_console_support import (  # noqa: F401 - fixtures
    Outside,
    Site,
    browser,
    new_context,
    run_axe,
    seed_learning,
    serious,
    sign_in,
    site,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BILLING = {"customer": {"id": "c-a11y"}, "staff": {"level": "synthetic"},
           "interaction": {"issue": "billing_error", "amount": 120, "sentiment": -0.8}}


@pytest.fixture(scope="module")
def context(browser: Any, site: Site) -> Iterator[Any]:
    outside = Outside()
    ctx = new_context(browser, site, outside, viewport={"width": 1280, "height": 900})
    yield ctx
    ctx.close()
    assert outside.urls == []


def _check(page: Any, where: str) -> None:
    found = serious(run_axe(page))
    assert found == [], f"{where}: " + "\n".join(f"{v['id']} ({v['impact']}): {v['help']} {v['nodes']}" for v in found)


def test_console_with_an_answer(context: Any, site: Site) -> None:
    page = context.new_page()
    page.goto(site.url + "/console")
    sign_in(page, site.agent)
    page.locator("#business-line", has_text="USD").wait_for()
    _check(page, "/console (empty)")
    page.fill("#f-customer-id", "c-a11y")
    page.fill("#f-interaction-issue", "billing_error")
    page.fill("#f-interaction-amount", "120")
    page.check("#f-interaction-sentiment-m1")
    page.select_option("#f-staff-level", "synthetic")
    page.click("#f-interaction-attributes-add")
    page.click("#recommend")
    page.locator("#answer .gesture").first.wait_for()
    page.locator("details.why summary").first.click()
    if page.locator("details.withheld summary").count():
        page.locator("details.withheld summary").first.click()
    page.select_option("#whatif-field", "interaction.escalated")
    page.select_option("#whatif-value", "true")
    page.click("#whatif-run")
    page.locator("#whatif-result li").first.wait_for()
    _check(page, "/console (answer, why, what-if)")
    page.fill("#f-customer-tenure_years", "-1")
    page.click("#recommend")
    page.locator("#f-customer-tenure_years-error").wait_for()
    _check(page, "/console (a field marked invalid)")
    page.close()


def test_side_panel_at_380px(context: Any, site: Site) -> None:
    r = httpx.post(site.url + "/v1/panel-tokens", json={"agent": "sam"}, headers={"X-API-Key": site.backend})
    page = context.new_page()
    page.set_viewport_size({"width": 380, "height": 800})
    page.goto(site.url + f"/console/panel?customer=c-1000&issue=billing_error&channel=phone#token={r.json()['token']}")
    page.locator("#f-customer-id").wait_for()
    page.click("#recommend")
    page.locator("#answer .gesture").first.wait_for()
    _check(page, "/console/panel (answer)")
    page.close()
    page = context.new_page()  # a new tab: no token kept
    page.set_viewport_size({"width": 380, "height": 800})
    page.goto(site.url + "/console/panel")
    page.locator("#signin").wait_for()
    _check(page, "/console/panel (sign-in message)")
    page.close()


def test_approvals_rules_and_insights(context: Any, site: Site) -> None:
    key = {"X-API-Key": site.agent}
    decision = httpx.post(site.url + "/v1/recommendations", json=BILLING, headers=key).json()
    httpx.post(site.url + "/v1/approvals",
               json={"decision_id": decision["decision_id"], "gesture_id": "goodwill_credit"},
               headers=key)
    page = context.new_page()
    page.goto(site.url + "/console/approvals")
    sign_in(page, site.lead)
    page.locator("article[data-approval]").first.wait_for()
    _check(page, "/console/approvals")
    page.goto(site.url + "/console/rules")
    sign_in(page, site.agent)
    page.locator("#rules article").first.wait_for()
    _check(page, "/console/rules")
    page.goto(site.url + "/console/insights")
    page.locator("#chart-grid figure").first.wait_for()
    page.locator("#per-gesture tr").first.wait_for()
    _check(page, "/console/insights")
    page.close()


def test_what_outcomes_taught(context: Any, site: Site) -> None:
    admin = seed_learning(site.store_url)
    page = context.new_page()
    page.goto(site.url + "/console/insights")
    sign_in(page, site.agent)
    page.locator("#learning-state[data-state=admin]").wait_for()
    _check(page, "/console/insights (learning: needs admin)")
    sign_in(page, admin)
    page.locator("#learning-rows tr").first.wait_for()
    _check(page, "/console/insights (learning: the table)")
    page.close()
