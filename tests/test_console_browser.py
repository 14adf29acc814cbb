"""The agent console end to end in headless Chromium (Debian's /usr/bin/chromium), against the
real server in its own process with a SQLite store (issue 18).

The form flow with the customer look-up merged into it, answers for people, bad input marked on
the field before any request and the server's 4xx beside the field it names, an approval asked
for by an agent and given with a second key, the side panel at 380 px in an iframe of a
help-desk tool the allow-list names (and refused to one it does not), the sign-in message of a
panel without a valid token, the what-if pane, the rules browser, the insights charts and what
outcomes taught (learning's state, for an admin key), the front door and keyboard-only use. No page fetches anything but the server.
"""

from __future__ import annotations

import re
import time
from typing import Any, Iterator

import httpx
import pytest

from test_console_support import (  # noqa: F401 - fixtures
    CHROMIUM,
    LEARNING_TENANT,
    SECRET,
    Outside,
    Site,
    browser,
    browser_or_skip,
    new_context,
    seed_learning,
    sign_in,
    site,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# What other browser tests import from here (tests/test_hardening_http_browser.py): a tiny pack.
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
_browser_or_skip = browser_or_skip


@pytest.fixture(scope="module")
def outside() -> Iterator[Outside]:
    seen = Outside()
    yield seen
    assert seen.urls == [], f"pages fetched from outside the server: {seen.urls}"


@pytest.fixture
def page(browser: Any, site: Site, outside: Outside) -> Iterator[Any]:
    ctx = new_context(browser, site, outside, viewport={"width": 1280, "height": 900})
    p = ctx.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    yield p
    ctx.close()
    assert errors == [], errors


def _fill_billing_case(page: Any, customer: str | None = None, staff: str = "synthetic") -> None:
    if customer:
        page.fill("#f-customer-id", customer)
    page.fill("#f-interaction-issue", "billing_error")
    page.fill("#f-interaction-amount", "120")
    page.check("#f-interaction-sentiment-m1")
    page.select_option("#f-staff-level", staff)


def _recommend(page: Any) -> None:
    page.click("#recommend")
    page.locator("#answer .gesture").first.wait_for()


def test_form_flow_customer_merge_and_answers_for_people(page: Any, site: Site) -> None:
    page.goto(site.url + "/console")
    sign_in(page, site.agent)
    page.locator("#business-line", has_text="amounts in USD").wait_for()
    # the look-up merges what the store knows into the form and keeps what was typed
    page.fill("#f-customer-name", "Maria")
    page.fill("#f-customer-visits", "")
    page.fill("#f-customer-id", "c-1000")
    page.click("#f-customer-id-lookup")
    page.locator("#customer-summary", has_text="Known customer").wait_for()
    summary = page.inner_text("#customer-summary")
    assert "10 visits on record" in summary and "cycling" in summary and "what you typed is kept" in summary
    assert page.input_value("#f-customer-name") == "Maria"
    assert page.input_value("#f-customer-visits") == "11"
    assert "merged" in page.get_attribute('.field[data-path="customer.visits"]', "class")
    # the issue comes from the business's vocabulary, with type-ahead
    page.fill("#f-interaction-issue", "bill")
    assert page.locator('#f-interaction-issue-list option[value="billing_error"]').count() == 1
    _fill_billing_case(page)
    assert "billing error" in page.inner_text("#f-interaction-issue-family")
    _recommend(page)

    # the case, plainly
    case = page.inner_text("#assessment")
    assert re.search(r"(Major|Critical)\s+billing error, severity [34] of 4", case), case
    assert "120 USD at stake" in case
    # each gesture: tier label, title, cost in the business's currency, script, one sentence of why
    card = page.locator("#answer article.gesture").first
    head = card.locator(".card-head").inner_text()
    assert re.search(r"^(Recover|Baseline|Extra)", head) and re.search(r"\$\d+\.\d\d", head), head
    assert card.locator("blockquote.script").inner_text().strip()
    reason = card.locator("p.reason").inner_text()
    assert reason.count(". ") == 0 and reason.endswith((".", "!", "?"))
    why = card.locator("details.why")
    assert not why.evaluate("d => d.open") and not why.locator(".rule").first.is_visible()
    why.locator("summary").click()
    assert why.locator(".rule").first.is_visible() and "Score" in why.inner_text()
    # gestures above a synthetic agent's authority: what would be said, and why
    approval = page.locator("#answer article.needs-approval").first
    assert "Needs approval" in approval.inner_text() and approval.locator("blockquote.script").count() == 1
    assert approval.locator("button.request-approval").count() == 1
    # what a rule asked for and the form lacks is highlighted where it is typed
    asks = page.locator(".field.ask .ask-note")
    assert asks.count() >= 1
    channel = page.locator('.field.ask[data-path="interaction.channel"]', has_text="Asking the channel could change this")
    assert channel.count() == 1
    card.locator('button[data-outcome="accepted"]').click()
    card.locator(".status", has_text="accepted recorded").wait_for()
    card.locator('button[data-outcome="accepted"]').click()  # a double click counts once
    page.wait_for_timeout(200)
    assert "accepted recorded" in card.locator(".outcomes .status").inner_text()
    site.shot(page, "console")


def test_bad_input_is_marked_before_any_request_and_server_errors_beside_their_field(page: Any, site: Site) -> None:
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if re.search(r"/v1/(recommendations|explain)", r.url) else None)
    page.goto(site.url + "/console")
    sign_in(page, site.agent)
    page.locator("#business-line", has_text="USD").wait_for()
    page.fill("#f-customer-tenure_years", "six")
    page.fill("#f-interaction-amount", "-5")
    page.fill("#f-interaction-issue", "")
    page.click("#recommend")
    page.locator("#f-customer-tenure_years-error", has_text="Enter a number from 0 to 200").wait_for()
    assert page.get_attribute("#f-customer-tenure_years", "aria-invalid") == "true"
    assert "Enter a number" in page.inner_text("#f-interaction-amount-error")
    assert "Required" in page.inner_text("#f-interaction-issue-error")
    assert page.evaluate("document.activeElement.id") == "f-customer-tenure_years"  # the first bad field
    assert sent == []  # nothing was sent
    site.shot(page, "console-errors", full_page=False)

    # fixed on the field: its mark goes
    page.fill("#f-customer-tenure_years", "6")
    page.dispatch_event("#f-customer-tenure_years", "change")
    assert page.get_attribute("#f-customer-tenure_years", "aria-invalid") is None
    # the server's 4xx beside the field it names: an unknown customer, a detail out of range
    page.fill("#f-customer-id", "nobody-knows-me")
    page.click("#f-customer-id-lookup")
    page.locator("#f-customer-id-error", has_text="No customer with this id").wait_for()
    page.fill("#f-interaction-amount", "120")
    page.fill("#f-interaction-issue", "billing_error")
    page.click("#f-interaction-attributes-add")
    page.fill(".kv-row .kv-key", "ticket_ref")
    page.fill(".kv-row .kv-value", "100000000000000000000")  # past 2**53: only the server knows
    page.click("#recommend")
    page.locator(".kv-row .field-error", has_text="2**53").wait_for()
    assert page.get_attribute(".kv-row .kv-value", "aria-invalid") == "true"
    assert len(sent) >= 1  # that one reached the server
    # JSON mode: invalid JSON is marked on the text area, nothing sent
    before = len(sent)
    page.click("#json-toggle")
    page.fill("#context", "{not json")
    page.click("#recommend")
    page.locator("#context-error", has_text="Not valid JSON").wait_for()
    assert len(sent) == before


def test_approval_requested_by_an_agent_and_given_by_a_second_key(browser: Any, site: Site, outside: Outside) -> None:
    agent_ctx = new_context(browser, site, outside, viewport={"width": 1280, "height": 900})
    lead_ctx = new_context(browser, site, outside, viewport={"width": 1280, "height": 900})
    try:
        agent = agent_ctx.new_page()
        agent.goto(site.url + "/console")
        sign_in(agent, site.agent)
        agent.locator("#business-line", has_text="USD").wait_for()
        _fill_billing_case(agent, customer="c-2000")
        _recommend(agent)
        card = agent.locator('#answer article.needs-approval[data-gesture="goodwill_credit"]')
        assert "For the trouble" in card.locator("blockquote.script").inner_text()
        card.locator("input[type=text]").fill("Charged twice this month")
        card.locator("button.request-approval").click()
        card.locator(".status", has_text="Waiting for a supervisor").wait_for()
        decision_id = re.search(r"decision (\S+)", agent.inner_text("#receipt")).group(1)

        # the agent's key cannot approve
        r = httpx.get(site.url + "/v1/approvals", headers={"X-API-Key": site.agent})
        assert r.status_code == 403 and r.json()["error"] == "forbidden_scope"

        lead = lead_ctx.new_page()
        lead.goto(site.url + "/console/approvals")
        sign_in(lead, site.lead)
        request = lead.locator("article[data-approval]", has_text="Goodwill credit")
        request.wait_for()
        text = request.inner_text()
        assert "For the trouble" in text and "Charged twice this month" in text and "Dana (agent)" in text
        assert "needs genuine staff authority" in text and re.search(r"\$\d+\.\d\d", text)
        site.shot(lead, "approvals")
        request.locator("textarea").fill("Fine: repeat billing error")
        request.locator('button[data-decision="approved"]').click()
        request.locator(".status", has_text="Approved").wait_for()
        lead.locator("#decided tr", has_text="Fine: repeat billing error").wait_for()

        card.locator("p.status", has_text="Approved by Lee (supervisor)").wait_for()
        assert "Fine: repeat billing error" in card.locator("p.status").inner_text()
        card.locator('button[data-outcome="delivered"]').click()
        card.locator(".outcomes .status", has_text="delivered recorded (approved by Lee (supervisor))").wait_for()
        site.shot(agent, "console-approved")
    finally:
        agent_ctx.close()
        lead_ctx.close()

    from recommender.memory import open_store

    with open_store(site.store_url) as store:
        record = store.get_decision(decision_id)
    held = next(h for h in record.held if h["gesture_id"] == "goodwill_credit")
    assert held["approval"]["by"] == "Lee (supervisor)" and held["approval"]["status"] == "approved"
    assert held["approval"]["requested_by"] == "Dana (agent)"
    delivered = [o for o in record.outcomes if o.gesture_id == "goodwill_credit" and o.outcome == "delivered"]
    assert [o.approved_by for o in delivered] == ["Lee (supervisor)"]


def _mint(site: Site, **body: Any) -> str:
    r = httpx.post(site.url + "/v1/panel-tokens", json=body, headers={"X-API-Key": site.backend})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def _ticket(frame_src: str) -> str:
    return f"""<!doctype html><html lang="en"><head><title>Ticket 42</title></head>
<body style="margin:0;font-family:sans-serif;display:flex">
<div style="flex:1;padding:16px"><h1>Ticket #42: charged twice</h1><p>From: Maria (c-1000), by phone.</p></div>
<iframe title="Service recommender" src="{frame_src}" width="380" height="860"
 style="border:0;border-left:1px solid #ccc"></iframe>
</body></html>"""


def test_side_panel_at_380px_in_an_allowed_iframe_and_refused_elsewhere(browser: Any, site: Site,
                                                                        outside: Outside) -> None:
    token = _mint(site, agent="sam@helpdesk", seconds=600)
    src = f"{site.url}/console/panel?customer=c-1000&issue=billing_error&channel=phone#token={token}"
    ctx = new_context(browser, site, outside, viewport={"width": 1100, "height": 900})
    refused: list[str] = []
    try:
        page = ctx.new_page()
        page.on("console", lambda m: refused.append(m.text) if "frame-ancestors" in m.text else None)
        for host in (site.helpdesk, site.elsewhere):
            host.pages["/ticket/42"] = _ticket(src)
        page.goto(site.helpdesk.origin + "/ticket/42")
        frame = page.frame_locator("iframe")
        frame.locator("#f-customer-id").wait_for()
        assert frame.locator("#f-customer-id").input_value() == "c-1000"
        assert frame.locator("#f-interaction-issue").input_value() == "billing_error"
        assert frame.locator("#f-interaction-channel").input_value() == "phone"
        site.shot(page, "panel", full_page=False)
        frame.locator("#recommend").click()
        frame.locator("#answer .gesture").first.wait_for()
        inner = next(f for f in page.frames if f.url.startswith(site.url + "/"))
        assert "#token" not in inner.url  # the token left the address bar once read
        width = inner.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width[0] <= width[1] <= 380, width  # laid out for the frame: no sideways scrolling
        assert refused == []
        assert "could change the answer" in frame.locator("details.more summary").inner_text()  # kept closed
        site.shot(page, "panel-answer", full_page=False)

        page.goto(site.elsewhere.origin + "/ticket/42")  # not on the allow-list: the browser refuses the frame
        page.wait_for_timeout(1500)
        assert not any(f.url.startswith(site.url + "/") and f.locator("#f-customer-id").count() for f in page.frames)
        assert refused, "Chromium did not report the frame-ancestors refusal"
    finally:
        ctx.close()


def test_panel_without_a_valid_token_says_how_to_sign_in(page: Any, site: Site) -> None:
    from recommender.service.auth import PanelTokens

    page.set_viewport_size({"width": 380, "height": 700})
    page.goto(site.url + "/console/panel?customer=c-1")
    page.locator("#signin", has_text="open it from a ticket").wait_for()
    assert page.locator("#panel-body").is_hidden()
    expired, _ = PanelTokens(SECRET, clock=lambda: time.time() - 7200).mint(
        tenant="default", scopes=["recommend"], seconds=600, agent="sam", key_id="k")
    page.goto("about:blank")  # a new document each time (a changed fragment alone is no new page)
    page.goto(site.url + f"/console/panel?customer=c-1#token={expired}")
    page.locator("#signin", has_text="has expired").wait_for()
    assert "reopen this panel" in page.inner_text("#signin").lower()
    site.shot(page, "panel-signin", full_page=False)
    forged = _mint(site)[:-4] + "AAAA"
    page.goto("about:blank")
    page.goto(site.url + f"/console/panel?customer=c-1#token={forged}")
    page.locator("#signin", has_text="could not sign you in").wait_for()


def test_what_if_pane_shows_gestures_that_appear_and_go(page: Any, site: Site) -> None:
    page.goto(site.url + "/console")
    sign_in(page, site.agent)
    page.locator("#business-line", has_text="USD").wait_for()
    _fill_billing_case(page, customer="c-3000", staff="super")
    _recommend(page)
    page.locator("#whatif").wait_for()
    page.select_option("#whatif-field", "interaction.escalated")
    page.select_option("#whatif-value", "true")
    page.click("#whatif-run")
    appear = page.locator('#whatif-result li[data-change="appear"]')
    appear.first.wait_for()
    assert any("case owner" in t.lower() for t in appear.all_inner_texts())
    assert "If escalated or disputed were Yes" in page.inner_text("#whatif-result")
    page.select_option("#whatif-field", "interaction.issue")
    page.fill("#whatif-value", "question")
    page.click("#whatif-run")
    page.locator("#whatif-result h3", has_text="If issue were question").wait_for()
    page.locator('#whatif-result li[data-change="go"]').first.wait_for()  # a question needs no recovery
    page.select_option("#whatif-field", "interaction.escalated")
    page.select_option("#whatif-value", "true")
    page.click("#whatif-run")
    appear.first.wait_for()
    page.locator("#whatif").scroll_into_view_if_needed()
    site.shot(page, "what-if")


def test_rules_browser_lists_searches_and_filters(page: Any, site: Site) -> None:
    page.goto(site.url + "/console/rules")
    sign_in(page, site.agent)
    page.locator("#summary", has_text="rules").wait_for()
    total = page.locator("#rules article").count()
    assert total > 20 and page.locator("#packs tr").count() >= 3
    first = page.locator("#rules article").first
    assert first.locator(".because").inner_text() and first.locator(".when code").count() >= 1
    page.fill("#rule-search", "repeat")
    shown = page.locator("#rules article")
    assert 0 < shown.count() < total
    assert all("repeat" in t.lower() for t in shown.all_inner_texts())
    page.fill("#rule-search", "")
    page.select_option("#filter-tier", "exceed")
    assert 0 < page.locator("#rules article").count() < total
    assert all("Extra" in t for t in page.locator("#rules article").all_inner_texts())
    assert all(t == "Extra" for t in page.locator("#gestures tr .chip").all_inner_texts())
    page.select_option("#filter-tier", "")
    page.select_option("#filter-category", index=1)
    assert page.locator("#rules article").count() < total
    page.select_option("#filter-category", "")
    page.fill("#rule-search", "billing")
    site.shot(page, "rules")


def test_insights_charts_people_read(page: Any, site: Site) -> None:
    page.goto(site.url + "/console/insights")
    sign_in(page, site.agent)
    page.locator("#acceptance", has_text="%").wait_for()
    assert re.fullmatch(r"\d+ accepted of \d+ answered", page.inner_text("#answered"))
    assert "%" in page.inner_text("#coverage") and "negative experiences" in page.inner_text("#coverage-text")
    assert "target 10%" in page.inner_text("#extras-text")
    assert page.inner_text("#spent").startswith("$")
    charts = page.locator("#chart-grid figure svg[role=img]")
    assert charts.count() == 4
    labels = [charts.nth(i).get_attribute("aria-label") for i in range(4)]
    assert labels[0].startswith("Acceptance rate per day:") and re.search(r"\d{4}-\d\d-\d\d \d+%", labels[0])
    assert "target" in labels[2]
    assert page.locator("#chart-grid polyline").count() == 1 and page.locator("#chart-grid rect").count() >= 10
    rows = page.locator("#per-gesture tr")
    assert rows.count() >= 3
    names = rows.locator("td:first-child").all_inner_texts()
    assert all(" " in n and "_" not in n for n in names), names  # titles, not ids
    assert rows.first.locator("svg[role=img]").count() == 1
    assert all("_" not in t for t in page.locator("#recent tr td:nth-child(2)").all_inner_texts())
    site.shot(page, "insights")


def test_insights_show_what_outcomes_taught(page: Any, site: Site) -> None:
    page.goto(site.url + "/console/insights")
    sign_in(page, site.agent)  # not an admin: told so, nothing breaks
    page.locator("#learning-state[data-state=admin]").wait_for()
    assert page.inner_text("#learning-state").startswith("Needs admin")
    assert page.locator("#learning-details").is_hidden()

    admin = seed_learning(site.store_url)  # a business of its own, from real outcomes in the store
    served = httpx.get(site.url + "/v1/learning?limit=200", headers={"X-API-Key": admin}).json()
    sign_in(page, admin)
    page.locator("#learning-state[data-state=on]").wait_for()
    assert page.inner_text("#learning-state").startswith(f"On for {LEARNING_TENANT}:")
    assert "once it has 30 outcomes there" in page.inner_text("#learning-model")
    assert re.search(r"\d+ of \d+ interactions with an extra on offer got one \(\d+%\), against the business's "
                     r"extras rate of 10%", page.inner_text("#learning-explore"))
    headers = page.locator("#learning thead th[scope=col]").all_inner_texts()
    assert headers == ["Gesture", "Similar customers", "What they did", "Likely acceptance (95%)",
                       "Changes the order?", "Last outcome"]
    rows = page.locator("#learning-rows tr")
    assert rows.count() == len(served["segments"]) >= 5
    for i, want in enumerate(served["segments"]):  # what the API serves, in words, in its order
        row = rows.nth(i)
        cells = row.locator("td").all_inner_texts()
        assert row.get_attribute("data-gesture") == want["gesture_id"]
        assert "_" not in row.locator("th[scope=row]").inner_text()  # the title, not the id
        assert "|" not in cells[0] and "=" not in cells[0], cells  # the segment in words
        assert cells[1] == want["text"]
        lo, hi = (round(v * 100) for v in want["interval"])
        assert cells[2].strip() == f"{lo}% to {hi}%"
        assert cells[3] == ("Yes" if want["learned"] else f"Not yet: {want['outcomes']} of 30 outcomes")
    texts = page.locator("#learning-rows td:nth-child(3)").all_inner_texts()
    assert any(re.fullmatch(r"accepted by \d+% of similar customers \(36 outcomes\)", t) for t in texts)
    assert "billing error · Recover tier · standard customers · genuine staff" in \
        page.locator("#learning-rows td:nth-child(2)").all_inner_texts()
    page.locator("#learning").screenshot(path=str(site.shots / "insights-learning.png"))

    # from the keyboard: only the segments with enough evidence, then one gesture
    page.focus("#learning-which")
    page.keyboard.press("ArrowDown")
    assert page.input_value("#learning-which") == "learned"
    assert rows.count() == sum(r["learned"] for r in served["segments"])
    assert set(rows.locator("td:nth-child(5)").all_inner_texts()) == {"Yes"}
    page.keyboard.press("Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.id") == "learning-gesture"
    page.keyboard.press("ArrowDown")
    picked = page.input_value("#learning-gesture")
    assert picked and {rows.nth(i).get_attribute("data-gesture") for i in range(rows.count())} == {picked}
    assert re.fullmatch(r"\d+ of \d+ segments shown\.", page.inner_text("#learning-shown"))

    from recommender.memory import open_store

    with open_store(site.store_url) as store:
        store.freeze_learning(LEARNING_TENANT)
    try:
        page.click("#refresh")
        page.locator("#learning-state[data-state=frozen]").wait_for()
        assert "new outcomes no longer change it" in page.inner_text("#learning-state")
    finally:
        with open_store(site.store_url) as store:
            store.freeze_learning(LEARNING_TENANT, False)


def test_front_door_goes_to_the_console(page: Any, site: Site) -> None:
    page.goto(site.url + "/")
    assert page.url == site.url + "/console"
    for path in ("/docs", "/redoc"):
        assert httpx.get(site.url + path).status_code == 200


def test_keyboard_only(page: Any, site: Site) -> None:
    page.goto(site.url + "/console")

    def tab_to(predicate: str, limit: int = 80) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate(f"(() => {{ const a = document.activeElement; return {predicate}; }})()"):
                return
        raise AssertionError(f"Tab never reached {predicate}")

    tab_to("a.id === 'apikey'")
    page.keyboard.type(site.agent)
    tab_to("a.id === 'f-interaction-issue'")
    page.keyboard.type("billing_error")
    tab_to("a.id === 'f-interaction-amount'")
    page.keyboard.type("120")
    page.keyboard.press("Enter")  # submits the form
    page.locator("#answer .gesture").first.wait_for()
    assert page.evaluate("document.activeElement.id") == "answer-title"  # focus moves to the answer
    tab_to("a.tagName === 'BUTTON' && a.classList.contains('copy')")
    page.keyboard.press("Enter")
    page.locator("#answer .status", has_text="Copied").first.wait_for()
    tab_to("a.tagName === 'SUMMARY' && a.textContent === 'Why?'")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.parentElement.open") is True
    tab_to("a.dataset.outcome === 'offered'")
    page.keyboard.press("Enter")
    page.locator(".outcomes .status", has_text="offered recorded").first.wait_for()
