"""``bench/load.py`` against a real ``recommender serve`` it starts itself: both endpoints
measured with zero errors and the ratio computed; bad flags are usage errors (exit 2).
No throughput is asserted: that is the benchmark's job, not the test suite's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LOAD = Path(__file__).resolve().parent.parent / "bench" / "load.py"


def _load(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(LOAD), *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def test_a_short_run_measures_both_endpoints_of_a_real_server(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # where the run's config and server log go
    done = _load("--duration", "1", "--rounds", "1", "--warmup", "0.1", "--concurrency", "2", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []  # the temporary folder (a key's hash, the log) is removed
    report = json.loads(done.stdout)
    trivial, recs = report["trivial"], report["recommendations"]
    assert trivial["endpoint"] == "GET /healthz" and recs["endpoint"] == "POST /v1/recommendations"
    for phase in (trivial, recs):
        assert phase["errors"] == 0
        assert phase["requests"] > 0 and set(phase["statuses"]) == {"200"}
        assert 0 < phase["p50_ms"] <= phase["p99_ms"]
        # the server's own CPU per request, from /proc (this suite runs on Linux)
        assert phase["server_cpu_ms"] is not None and phase["server_cpu_ms"] >= 0
    assert report["ratio"] == pytest.approx(recs["rps"] / trivial["rps"], abs=0.001)
    # the in-process baseline: recommend() on the same bodies, in turns with the server
    overhead = report["http_overhead"]
    assert overhead["recommend_calls"] > 0 and overhead["recommend_cpu_ms"] > 0
    assert overhead["server_cpu_ms"] == recs["server_cpu_ms"] and overhead["healthz_cpu_ms"] == trivial["server_cpu_ms"]
    assert overhead["ratio"] == pytest.approx(
        recs["server_cpu_ms"] / (trivial["server_cpu_ms"] + overhead["recommend_cpu_ms"]), abs=0.01)
    check = "none: server CPU per recommendation <= 1.5x (/healthz + in-process recommend())"
    assert report["checks"][check] == (overhead["ratio"] <= 1.5)
    assert "none: recommendations/trivial >= 0.5" not in report["checks"]  # reported, no longer a target
    assert report["target_met"] == all(report["checks"].values())


@pytest.mark.parametrize("flag, value, message", [
    ("--workers", "0", "--workers must be in [1, 64]"),
    ("--concurrency", "0", "--concurrency must be in [1, 256]"),
    ("--duration", "-1", "--duration must be in (0, 600] seconds"),
    ("--warmup", "61", "--warmup must be in [0, 60] seconds"),
])
def test_bad_flags_are_usage_errors(flag: str, value: str, message: str) -> None:
    done = _load(flag, value, timeout=30)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_only_loopback_servers_are_load_tested() -> None:
    done = _load("--url", "http://192.0.2.1:8000", "--api-key", "x", timeout=30)
    assert done.returncode == 2
    assert "--url: refusing to load-test '192.0.2.1': loopback addresses only" in done.stderr


def test_server_cpu_counts_the_process_and_its_descendants() -> None:
    sys.path.append(str(LOAD.parent.parent))
    from bench.load import server_cpu_seconds

    # a child that starts a grandchild burning ~0.4 s of CPU, then waits for it
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])"])
    try:
        peak = 0.0
        while parent.poll() is None:
            peak = max(peak, server_cpu_seconds(parent.pid) or 0.0)
    finally:
        parent.wait(30)
    assert peak >= 0.2  # the grandchild's CPU, seen through its parent
    assert server_cpu_seconds(parent.pid) is None  # a process that is gone: unknown, not zero


def test_the_baseline_takes_the_serve_flags_that_shape_the_recommender() -> None:
    sys.path.append(str(LOAD.parent.parent))
    from bench.inprocess import recommender_flags

    flags = ["--rules", "a", "--log-level", "info", "-r", "b", "--plugins-dir", "p", "--store-url", "sqlite://"]
    assert recommender_flags(flags) == {"rules": ["a", "b"], "plugins_dir": "p"}
    assert recommender_flags(["--max-body-bytes", "10"]) == {}


def _bench_schemas() -> set[str]:
    import psycopg
    from memory_fixtures import pg_base_url

    with psycopg.connect(pg_base_url(), autocommit=True, connect_timeout=5) as conn:
        return {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'recommender_bench_%'")}


@pytest.mark.postgres
def test_stores_are_measured_side_by_side_against_no_store_and_cleaned_up(tmp_path: Path) -> None:
    from memory_fixtures import pg_base_url, require_pg

    require_pg()
    before = _bench_schemas()
    env = {**os.environ, "TMPDIR": str(tmp_path), "RECOMMENDER_BENCH_PG_URL": pg_base_url()}
    done = _load("--store", "none,sqlite", "--store", "postgresql", "--duration", "1", "--rounds", "1",
                 "--warmup", "0.1", "--concurrency", "2", "--json", env=env, timeout=240)
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []  # the SQLite store's file and each server's folder are removed
    assert _bench_schemas() <= before  # the PostgreSQL schema is dropped
    report = json.loads(done.stdout)
    assert list(report["stores"]) == ["none", "sqlite", "postgresql"]
    for kind, run in report["stores"].items():
        for phase in (run["trivial"], run["recommendations"]):
            assert phase["errors"] == 0 and set(phase["statuses"]) == {"200"}, kind
            assert 0 < phase["p50_ms"] <= phase["p99_ms"] and phase["server_cpu_ms"] is not None
    base = report["stores"]["none"]["recommendations"]["server_cpu_ms"]
    for kind in ("sqlite", "postgresql"):
        cpu = report["stores"][kind]["recommendations"]["server_cpu_ms"]
        assert report["store_cpu_ratio"][kind] == pytest.approx(cpu / base, abs=0.01)
    check = "postgresql: server CPU per recommendation <= 2x no store"
    assert report["checks"][check] == (report["store_cpu_ratio"]["postgresql"] <= 2.0)
    assert report["checks"]["postgresql: zero errors"] and report["checks"]["sqlite: zero errors"]
    assert report["target_met"] == all(report["checks"].values())
    assert report["recommendations"] == report["stores"]["none"]["recommendations"]  # the first store's, as before


@pytest.mark.parametrize("args, message", [
    (["--store", "mysql"], "--store: 'mysql': expected one or more of none, sqlite, postgresql"),
    (["--store", "sqlite", "--url", "http://127.0.0.1:9", "--api-key", "x"],
     "--store: only for servers this starts (not with --url)"),
    (["--store", "postgresql", "--pg-url", "postgresql://postgres@127.0.0.1:1/test"],
     "--store postgresql: cannot set up the store (OperationalError"),
])
def test_bad_store_flags_are_usage_errors(args: list[str], message: str) -> None:
    done = _load(*args, timeout=30)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
