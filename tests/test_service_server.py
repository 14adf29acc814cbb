"""The real server: ``recommender serve`` started as a separate process on a free local
port, spoken to over HTTP with :class:`recommender.client.RecommenderClient`.

Covers the config file and env vars, bad input over the wire, SIGHUP and API hot reload
under load (no request fails), several workers, and, with PostgreSQL, two servers sharing
one store (a budget is never overspent; an outcome recorded on one is seen by the other).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

pytest.importorskip("uvicorn")

from recommender.client import RecommenderClient, ServiceError  # noqa: E402
from recommender.service import hash_key  # noqa: E402
from service_fixtures import BROKEN, TIRE_PACK as PACK  # noqa: E402



KEY, ADMIN_KEY = "srv-key", "srv-admin"
FLAT = {"interaction": {"issue": "flat_tire", "cost": 20}}
LAUNCH = "import sys; from recommender.cli import main; sys.argv[0] = 'recommender'; main()"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``recommender serve ARGS`` in a child process, ready when /healthz answers."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None, timeout: float = 60.0,
                 wait: bool = True):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        full_env = {**os.environ, **(env or {})}
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self._log_file = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-c", LAUNCH, "serve", "--port", str(self.port), *args],
                                     stdout=self._log_file, stderr=subprocess.STDOUT, env=full_env)
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0) -> "Server":
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server not ready after {timeout}s:\n{self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")

    def hup(self) -> None:
        os.kill(self.proc.pid, signal.SIGHUP)

    def client(self, key: str | None = KEY) -> RecommenderClient:
        return RecommenderClient(self.url, api_key=key, timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
                self.proc.wait(5)
        self._log_file.close()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def write_config(tmp: Path, **extra: Any) -> Path:
    rules = tmp / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "srv.yaml").write_text(PACK)
    lines = ['rules = ["rules"]', "autoload_plugins = false", 'log_level = "warning"']
    for key, value in extra.items():
        lines.append(f"{key} = {json.dumps(value)}")
    # every extra offered, no listing caps: these tests are about the server, not the advice model
    lines += ["", "[profiles.default]", "extras_rate = 1.0", "listing = {recover = 20, meet = 20, exceed = 20}",
              "", "[[api_keys]]", 'name = "pos"', 'tenant = "acme"', 'scopes = ["recommend", "outcome"]',
              f'hash = "{hash_key(KEY)}"', "", "[[api_keys]]", 'name = "ops"', 'tenant = "acme"',
              'scopes = ["admin"]', f'hash = "{hash_key(ADMIN_KEY)}"']
    cfg = tmp / "service.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


class Hammer:
    """Background clients sending recommendations until stopped; records every failure."""

    def __init__(self, url: str, threads: int = 3):
        self.url = url
        self.ok = 0
        self.failures: list[str] = []
        self.versions: set[str] = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self._lock = threading.Lock()

    def _run(self) -> None:
        with RecommenderClient(self.url, api_key=KEY, timeout=30) as c:
            while not self._stop.is_set():
                try:
                    result = c.recommend(FLAT)
                    with self._lock:
                        self.ok += 1
                        self.versions.add(result.ruleset_version)
                except Exception as exc:  # noqa: BLE001 - every failure is a finding
                    with self._lock:
                        self.failures.append(repr(exc))

    def __enter__(self) -> "Hammer":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


# -- one worker ------------------------------------------------------------------------


def test_serve_from_config_file_and_env(tmp_path):
    cfg = write_config(tmp_path)
    env = {"RECOMMENDER_MAX_BODY_BYTES": "2048"}
    with Server(["--config", str(cfg)], tmp_path / "server.log", env=env) as srv:
        c = srv.client()
        result = c.recommend(FLAT)
        assert result.gesture_ids() == ["apology", "tire_check"] and result.business == "acme"
        assert c.ruleset_version == result.ruleset_version
        raw = httpx.post(srv.url + "/v1/recommendations", json=FLAT)
        assert raw.status_code == 401 and raw.headers["x-ruleset-version"] == result.ruleset_version
        big = {"interaction": {"issue": "flat_tire", "attributes": {f"k{i}": "x" * 100 for i in range(30)}}}
        assert httpx.post(srv.url + "/v1/recommendations", json=big, headers={"X-API-Key": KEY}).status_code == 413
        bad = httpx.post(srv.url + "/v1/recommendations", content=b"{nope", headers={
            "X-API-Key": KEY, "Content-Type": "application/json"})
        assert bad.status_code == 400 and bad.json()["error"] == "malformed_json"
        wrong = httpx.post(srv.url + "/v1/recommendations", json={"interaction": {"issue": 3}},
                           headers={"X-API-Key": KEY})
        assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "interaction.issue"
        assert c.ready()["ready"] is True
        assert httpx.get(srv.url + "/openapi.json").json()["info"]["title"] == "Service recommender"
        with pytest.raises(ServiceError) as e:
            c.record_outcome("d-1", "tire_check", "accepted")
        assert e.value.status == 404 and e.value.code == "no_store"


def test_a_hung_plugin_hook_neither_stalls_requests_nor_the_server(tmp_path):
    """Hooks past plugin_timeout are skipped and reported; while they hang on worker threads
    the event loop keeps answering."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "hangs.py").write_text(
        "import time\nfrom recommender import hookimpl\n\n"
        "@hookimpl\ndef recommender_enrich_context(context):\n    time.sleep(5)\n")
    cfg = write_config(tmp_path, plugins_dir=str(plugins), plugin_timeout=0.2)
    with Server(["--config", str(cfg)], tmp_path / "server.log") as srv:
        results: list[Any] = []

        def ask() -> None:
            with srv.client() as c:
                started = time.monotonic()
                results.append((c.recommend(FLAT), time.monotonic() - started))

        ask()  # the tenant's first request (its rulebook is built on the threadpool)
        askers = [threading.Thread(target=ask) for _ in range(4)]
        for t in askers:
            t.start()
        time.sleep(0.05)
        started = time.monotonic()
        assert httpx.get(srv.url + "/healthz", timeout=5).status_code == 200
        assert time.monotonic() - started < 2.5  # answered while the hooks hang (5 s each)
        for t in askers:
            t.join(10)
        assert len(results) == 5
        for result, took in results:
            assert result.gesture_ids() == ["apology", "tire_check"]
            assert [(w.plugin, w.hook) for w in result.warnings] == [("hangs", "recommender_enrich_context")]
            assert "took longer than 0.2 s" in result.warnings[0].message
            assert took < 2.5  # not the hook's 5 s


def test_sighup_and_api_reload_under_load_drop_nothing(tmp_path):
    cfg = write_config(tmp_path)
    pack = tmp_path / "rules" / "srv.yaml"
    with Server(["--config", str(cfg)], tmp_path / "server.log") as srv:
        c, admin = srv.client(), srv.client(ADMIN_KEY)
        v1 = c.recommend(FLAT).ruleset_version
        with Hammer(srv.url) as load:
            pack.write_text(PACK.replace("priority: 50", "priority: 60"))
            srv.hup()
            assert wait_for(lambda: c.recommend(FLAT).ruleset_version != v1), srv.output()
            v2 = c.ruleset_version
            (tmp_path / "rules" / "broken.yaml").write_text(BROKEN)
            srv.hup()  # a broken pack: logged, the running version stays
            assert wait_for(lambda: "reload failed" in srv.output()), srv.output()
            assert c.recommend(FLAT).ruleset_version == v2
            with pytest.raises(ServiceError) as e:
                admin.reload()
            assert e.value.status == 422
            assert any("broken.yaml:" in p["text"] and "no_such_gesture" in p["text"] for p in e.value.problems)
            (tmp_path / "rules" / "broken.yaml").unlink()
            pack.write_text(PACK.replace("priority: 50", "priority: 70"))
            out = admin.reload()
            assert out["changed"] is True and out["previous_version"] == v2
            time.sleep(0.5)
        assert load.failures == [], load.failures[:5]
        assert load.ok > 20
        assert load.versions <= {v1, v2, out["ruleset_version"]}
        metrics = c.metrics()
        assert 'recommender_reloads_total{result="error"} 2.0' in metrics
        assert f'recommender_ruleset_info{{version="{out["ruleset_version"]}"}} 1.0' in metrics


# -- several workers ---------------------------------------------------------------------


def test_two_workers_reload_together_and_share_metrics(tmp_path):
    cfg = write_config(tmp_path)
    pack = tmp_path / "rules" / "srv.yaml"
    with Server(["--config", str(cfg), "--workers", "2"], tmp_path / "server.log") as srv:
        def versions(n: int = 12) -> set[str]:
            seen = set()
            for _ in range(n):  # a fresh connection each time, so both workers answer
                seen.add(httpx.get(srv.url + "/healthz").json()["ruleset_version"])
            return seen

        v1 = versions()
        assert len(v1) == 1
        pack.write_text(PACK.replace("priority: 50", "priority: 55"))
        srv.hup()  # the supervisor forwards SIGHUP: each worker reloads in place
        assert wait_for(lambda: len(versions()) == 1 and versions() != v1), srv.output()
        v2 = versions()
        pack.write_text(PACK.replace("priority: 50", "priority: 65"))
        out = srv.client(ADMIN_KEY).reload()  # through the API: fanned out to every worker
        assert out["workers_signalled"] is True
        assert wait_for(lambda: versions() == {out["ruleset_version"]}), srv.output()
        assert v2 != {out["ruleset_version"]}
        with RecommenderClient(srv.url, api_key=KEY) as c:
            for _ in range(10):
                c.recommend(FLAT)
        total = 0.0
        for line in httpx.get(srv.url + "/metrics").text.splitlines():
            if line.startswith('recommender_http_requests_total{method="POST",route="/v1/recommendations"'):
                total += float(line.rsplit(" ", 1)[1])
        assert total == 10.0  # summed over both workers


# -- two servers, one PostgreSQL store ------------------------------------------------------


@pytest.fixture
def pg_store_url():
    psycopg = pytest.importorskip("psycopg")
    base = os.environ.get("RECOMMENDER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        with psycopg.connect(base, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI", "").lower() == "true" or os.environ.get("RECOMMENDER_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL not reachable at {base}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {base}: {exc}")
    schema = f"svctest_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.postgres
def test_two_servers_share_one_store(tmp_path, pg_store_url):
    from recommender.memory import KeyStore, open_store

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"budgets": {"acme": {"daily": 50}}}))
    with open_store(pg_store_url, upgrade=True, policy=policy) as store:  # migrate once, make a key
        _, key = KeyStore(store).create("acme", ["recommend", "outcome"], "pos")
    cfg = write_config(tmp_path, store_url=pg_store_url, store_policy=str(policy))
    a = Server(["--config", str(cfg)], tmp_path / "a.log", wait=False)
    b = Server(["--config", str(cfg)], tmp_path / "b.log", wait=False)  # both start at once
    with a, b:
        a.wait_ready()
        b.wait_ready()
        ca, cb = RecommenderClient(a.url, api_key=key), RecommenderClient(b.url, api_key=key)
        assert cb.ready()["ready"] is True

        # an outcome recorded on A is seen by B
        result = ca.recommend({"customer": {"id": "c-shared"}, **FLAT})
        assert result.decision_id
        first = ca.record_outcome(result.decision_id, "apology", "accepted", idempotency_key="shared-1")
        view = cb.customer("c-shared")
        assert [(g["gesture_id"], g["outcome"]) for g in view["gestures"]] == [("apology", "accepted")]
        replay = cb.record_outcome(result.decision_id, "apology", "accepted", idempotency_key="shared-1")
        assert replay["replayed"] is True and replay["id"] == first["id"]

        # a daily budget of 50 and a gesture of 5: at most 10 deliveries over both servers
        decisions: list[str] = []
        for i in range(16):
            r = (ca if i % 2 else cb).recommend({"customer": {"id": f"c-{i}"}, **FLAT})
            if "tire_check" in r.gesture_ids():
                decisions.append(r.decision_id)
        assert len(decisions) == 16  # nothing spent yet: every decision offers the check
        outcomes: list[int] = []
        lock = threading.Lock()

        def deliver(idx: int, decision: str) -> None:
            with RecommenderClient((a if idx % 2 else b).url, api_key=key) as c:
                try:
                    c.record_outcome(decision, "tire_check", "delivered")
                    status = 201
                except ServiceError as exc:
                    status = exc.status
                with lock:
                    outcomes.append(status)

        threads = [threading.Thread(target=deliver, args=(i, d)) for i, d in enumerate(decisions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(set(outcomes)) == [201, 409], outcomes
        assert outcomes.count(201) == 10
        with open_store(pg_store_url, policy=policy) as store:
            spent = sum(line.spent for line in store.budget_usage("acme"))
        assert spent == 50.0
        # and now both servers hold the check back: the budget is spent
        for c in (ca, cb):
            r = c.recommend({"customer": {"id": "c-late"}, **FLAT})
            assert "tire_check" not in r.gesture_ids()
            assert any(w.gesture_id == "tire_check" and w.reason == "over_budget" for w in r.withheld)
