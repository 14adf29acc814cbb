"""What the agent console's browser tests share (no tests here): a real server with a SQLite
store holding ten days of decisions and outcomes, its keys (an agent, a supervisor, a help-desk
tool's backend), and headless Chromium (Debian's /usr/bin/chromium; Playwright never downloads
a browser).

Without Chromium the browser tests skip locally and fail in CI (``RECOMMENDER_REQUIRE_BROWSER=1``
or ``CI=true``); without Playwright (not installed) they skip, as the console's first browser
test did.
``RECOMMENDER_SCREENSHOTS=docs/img`` writes each page's screenshot there (docs/console.md shows them).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from test_service_server import Server, free_port

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-extensions"]
SECRET = "console-test-panel-secret-0123456789abcdef"
AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"


def browser_or_skip() -> Any:
    required = os.environ.get("CI", "").lower() == "true" or os.environ.get("RECOMMENDER_REQUIRE_BROWSER") == "1"
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        if required:
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    # Playwright comes with the test extra; an environment without it (CI's lowest-versions run)
    # skips, as the console's first browser test always did.
    return pytest.importorskip("playwright.sync_api")


# -- the data: ten days of a help desk's decisions and outcomes ---------------------------------

CONTEXTS = [
    {"interaction": {"issue": "billing_error", "amount": 60, "sentiment": -0.6, "channel": "phone"},
     "customer": {"tenure_years": 4, "lifetime_value": 1800}},
    {"interaction": {"issue": "late_delivery", "delay_days": 5, "amount": 80, "channel": "email"},
     "customer": {"tenure_years": 1}},
    {"interaction": {"issue": "complaint", "sentiment": -0.7, "repeat_count": 1, "channel": "chat"},
     "customer": {"tenure_years": 7, "visits": 30}},
    {"interaction": {"issue": "purchase", "cost": 20, "channel": "in_person"},
     "customer": {"tenure_years": 6, "visits": 12, "lifetime_value": 3000}},
]


_SEEDED: dict[int, Path] = {}


def seeded_copy(target: Path, days: int = 10) -> str:
    """A SQLite store at ``target`` holding :func:`seed`'s data: seeded once per process, then copied."""
    template = _SEEDED.get(days)
    if template is None or not template.exists():
        import tempfile

        template = Path(tempfile.mkdtemp(prefix="console-seed-")) / "seed.db"
        seed(f"sqlite:///{template}", days)  # every connection closed: the WAL is checkpointed
        _SEEDED[days] = template
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def seed(url: str, days: int = 10) -> None:
    """Decisions and outcomes over the last ``days`` days (the store's clock set to each day)."""
    from recommender import Recommender
    from recommender.memory import open_store

    rec = Recommender(autoload=False)
    start = datetime.now(timezone.utc).replace(hour=9, minute=0, second=0, microsecond=0) - timedelta(days=days)
    for d in range(days):
        when = start + timedelta(days=d)
        with open_store(url, clock=lambda w=when: w) as store:
            for i, base in enumerate(CONTEXTS):
                ctx = json.loads(json.dumps(base))
                ctx["customer"]["id"] = f"c-{1000 + i}"
                result = rec.recommend(ctx, store=store)
                for j, r in enumerate(result.recommendations):
                    key = f"seed-{d}-{i}-{j}"
                    answer = "declined" if (d + i + j) % 4 == 0 else "accepted"
                    store.record_outcome(result.decision_id, r.gesture_id, answer, key + "-a", now=when)
                    if answer == "accepted" and r.cost:
                        store.record_outcome(result.decision_id, r.gesture_id, "delivered", key + "-d", now=when)
    with open_store(url) as store:
        store.update_customer("default", "c-1000", preferences={"contact_by": "email"}, interests=["cycling"])


#: A business of its own for the learning panel: its evidence changes no other test's answers
#: (learning is per business).
LEARNING_TENANT = "bistro"


def seed_learning(url: str, tenant: str = LEARNING_TENANT) -> str:
    """Outcomes enough for ``tenant`` to have learned (36 alike billing errors: past the minimum
    of 30 outcomes) and a few not yet (6 late deliveries); returns an admin key of ``tenant``."""
    from recommender import Recommender
    from recommender.memory import KeyStore, open_store

    rec = Recommender(autoload=False)
    with open_store(url) as store:
        for i, (base, n) in enumerate(((CONTEXTS[0], 36), (CONTEXTS[1], 6))):
            for k in range(n):
                ctx = json.loads(json.dumps(base))
                ctx["customer"]["id"] = f"b-{i}-{k}"
                ctx["business"] = {"id": tenant}
                result = rec.recommend(ctx, store=store)
                for j, r in enumerate(result.recommendations):
                    answer = "declined" if (k * (j + 1)) % 5 <= j else "accepted"  # 80%, 60%, 40%, 20% taken
                    store.record_outcome(result.decision_id, r.gesture_id, answer, f"learn-{i}-{k}-{j}")
        return KeyStore(store).create(tenant, ["admin"], "Robin (owner)")[1]


class HostSite:
    """A help-desk tool's page on a loopback origin of its own (another port: another origin),
    serving whatever HTML a test puts under a path."""

    def __init__(self, port: int) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = pages.get(self.path.split("?")[0], "<!doctype html><title>none</title>").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.origin = f"http://127.0.0.1:{port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Site:
    server: Server
    agent: str  # recommend, outcome
    lead: str  # approve (a supervisor)
    backend: str  # recommend, outcome: the help-desk tool's backend, which mints panel tokens
    url: str
    store_url: str
    shots: Path
    helpdesk: HostSite  # on the frame_ancestors allow-list
    elsewhere: HostSite  # not on it

    def shot(self, page: Any, name: str, full_page: bool = True) -> None:
        page.screenshot(path=str(self.shots / f"{name}.png"), full_page=full_page)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    browser_or_skip()
    from recommender.memory import KeyStore, open_store

    tmp = tmp_path_factory.mktemp("console")
    url = seeded_copy(tmp / "console.db")
    with open_store(url) as store:
        keys = KeyStore(store)
        _, agent = keys.create("default", ["recommend", "outcome"], "Dana (agent)")
        _, lead = keys.create("default", ["approve"], "Lee (supervisor)")
        _, backend = keys.create("default", ["recommend", "outcome"], "helpdesk-backend")
    cfg = tmp / "service.toml"
    helpdesk, elsewhere = HostSite(free_port()), HostSite(free_port())
    ancestors = json.dumps(["'self'", helpdesk.origin])
    cfg.write_text("\n".join([
        "autoload_plugins = false", 'log_level = "warning"', f"store_url = {json.dumps(url)}",
        f"frame_ancestors = {ancestors}", f'panel_secret = "{SECRET}"', ""]))
    shots = Path(os.environ.get("RECOMMENDER_SCREENSHOTS") or tmp / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with Server(["--config", str(cfg)], tmp / "server.log") as srv:
            yield Site(srv, agent, lead, backend, srv.url, url, shots, helpdesk, elsewhere)
    finally:
        helpdesk.close()
        elsewhere.close()


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    sync_api = browser_or_skip()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Outside:
    """Every request a page made to anywhere but the server (and the fake help-desk sites)."""

    def __init__(self) -> None:
        self.urls: list[str] = []


def new_context(browser: Any, site: Site, outside: Outside, **kw: Any) -> Any:
    """A fresh browser context (its own session storage) in which the network is only the server."""
    ctx = browser.new_context(**kw)

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith((site.url + "/", "data:", "blob:", site.helpdesk.origin + "/", site.elsewhere.origin + "/")):
            r.continue_()
        else:
            outside.urls.append(url)
            r.abort()

    ctx.route("**/*", route)
    ctx.set_default_timeout(15000)
    return ctx


def sign_in(page: Any, key: str) -> None:
    page.fill("#apikey", key)
    page.dispatch_event("#apikey", "change")


def run_axe(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (WCAG 2 A and AA, best practices)."""
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    result = page.evaluate("""async () => {
        const tags = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'];
        const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ': ' + n.failureSummary)}));
    }""")
    return list(result)


def serious(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in violations if v["impact"] in ("serious", "critical")]
