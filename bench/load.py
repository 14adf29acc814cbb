"""Load test of the HTTP service: recommendations against a trivial endpoint, same server, same run.

    python bench/load.py                       # starts `recommender serve` itself (1 worker)
    python bench/load.py --workers 2 --duration 20
    python bench/load.py --url http://127.0.0.1:8000 --api-key rk_...   # a running server

Several concurrent clients (keep-alive connections, a lean asyncio HTTP/1.1 client so the
load generator costs the machine as little as possible) drive ``GET /healthz`` and then
``POST /v1/recommendations`` (the bundled example contexts, in turn), each for half of
``--duration`` seconds, in alternating turns (``--rounds``) after a short warm-up each. Prints requests/s, p50/p99 latency and the
error count of each, the ratio of their throughputs, and the server's CPU per request
(from /proc). Target: zero errors (``--check`` exits 1 when a target is missed; against a
``--url`` server, whose CPU is not known, recommendations at >= half the trivial endpoint's
throughput). Loopback addresses only: the run is bounded in time and never leaves the machine.

``--store none,sqlite,postgresql`` (or the flag repeated) starts one server per store, all
taking turns in the same run, and prints each store's server CPU per recommendation against
the run without one (target for PostgreSQL: <= 2x, zero errors). The SQLite store is a file
in the run's temporary folder; the PostgreSQL one is a schema of its own (``--pg-url``,
``$RECOMMENDER_BENCH_PG_URL``, default ``postgresql://postgres@127.0.0.1:5432/test``),
created, migrated and dropped by the run.

Without a store, the run also measures ``recommend()`` in a process of its own, configured
as the server (``bench/inprocess.py``), on the same bodies, in turns with the servers, and
prints the server CPU per recommendation against the server CPU per ``/healthz`` plus that
in-process CPU per call (target: <= 1.5x; ``--check`` tests it instead of the throughput
ratio, which is reported).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
STORES = ("none", "sqlite", "postgresql")
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
#: PostgreSQL server CPU per recommendation at most this many times the run without a store
STORE_CPU_TARGET = 2.0
#: Without a store, server CPU per recommendation at most this many times (server CPU per
#: /healthz + in-process recommend() CPU on the same bodies)
HTTP_CPU_TARGET = 1.5


@dataclass
class Phase:
    name: str
    method: str
    path: str
    bodies: list[bytes] = field(default_factory=lambda: [b""])
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    server_cpu: float | None = None  # CPU seconds the server spent in the measured windows (None: unknown)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float:
            if not lat:
                return float("nan")
            return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))] * 1000

        total = len(self.latencies) + self.errors
        cpu = round(self.server_cpu / total * 1000, 3) if self.server_cpu is not None and total else None
        return {"endpoint": f"{self.method} {self.path}", "requests": total,
                "rps": round(len(self.latencies) / self.seconds, 1) if self.seconds else 0.0,
                "p50_ms": round(pct(50), 2), "p99_ms": round(pct(99), 2), "errors": self.errors,
                "server_cpu_ms": cpu,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())}}


def server_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` and its live descendants (uvicorn's
    workers), from /proc; None without /proc or without that process."""
    try:
        names = [n for n in os.listdir("/proc") if n.isdigit()]
    except OSError:
        return None
    ticks: dict[int, int] = {}
    children: dict[int, list[int]] = {}
    for name in names:
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()  # after "(comm)", which may hold spaces
        except OSError:
            continue  # gone meanwhile
        ticks[int(name)] = int(fields[11]) + int(fields[12])  # utime + stime
        children.setdefault(int(fields[1]), []).append(int(name))
    if pid not in ticks:
        return None
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += ticks[p]
        todo += children.get(p, [])
    return total / os.sysconf("SC_CLK_TCK")


def loopback_only(url: str) -> tuple[str, int]:
    """``(host, port)`` of ``url``; ValueError unless it is http:// on a loopback address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "http":
        raise ValueError(f"only http:// URLs are supported, got {url!r}")
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"refusing to load-test {host!r}: loopback addresses only (127.0.0.0/8, ::1, localhost)")
    return host, parts.port or 80


def request_bytes(phase: Phase, host: str, port: int, api_key: str | None, body: bytes) -> bytes:
    lines = [f"{phase.method} {phase.path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
    if api_key:
        lines.append(f"X-API-Key: {api_key}")
    if phase.method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def connect_and_prime(phase: Phase, host: str, port: int, api_key: str | None) -> tuple[Any, Any, list[bytes]]:
    """Open a keep-alive connection and send every request body once, unmeasured (the first
    use of a business vertical compiles its rulebook: a one-time cost, not throughput)."""
    reader, writer = await asyncio.open_connection(host, port)
    requests = [request_bytes(phase, host, port, api_key, b) for b in phase.bodies]
    for payload in requests:
        writer.write(payload)
        await read_response(reader)
    return reader, writer, requests


async def client_loop(phase: Phase, conn: tuple[Any, Any, list[bytes]], host: str, port: int, until: float,
                      record_from: float, offset: int) -> None:
    reader, writer, requests = conn
    i = offset
    try:
        while True:
            now = time.perf_counter()
            if now >= until:
                break
            payload = requests[i % len(requests)]
            i += 1
            start = time.perf_counter()
            try:
                writer.write(payload)
                status = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                if start >= record_from:
                    phase.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            elapsed = time.perf_counter() - start
            if start < record_from:
                continue  # warm-up
            phase.statuses[status] = phase.statuses.get(status, 0) + 1
            if status >= 400:
                phase.errors += 1
            else:
                phase.latencies.append(elapsed)
    finally:
        writer.close()


async def run_phase(phase: Phase, host: str, port: int, api_key: str | None, seconds: float,
                    concurrency: int, warmup: float, server_pid: int | None = None) -> None:
    conns = await asyncio.gather(*(connect_and_prime(phase, host, port, api_key) for _ in range(concurrency)))
    start = time.perf_counter()
    record_from = start + warmup
    until = record_from + seconds

    async def cpu_window() -> float | None:  # the server's CPU over the measured window
        await asyncio.sleep(max(0.0, record_from - time.perf_counter()))
        before = server_cpu_seconds(server_pid) if server_pid else None
        await asyncio.sleep(max(0.0, until - time.perf_counter()))
        after = server_cpu_seconds(server_pid) if server_pid else None
        return after - before if before is not None and after is not None else None

    *_, cpu = await asyncio.gather(*(client_loop(phase, conn, host, port, until, record_from, n)
                                     for n, conn in enumerate(conns)), cpu_window())
    if cpu is not None:
        phase.server_cpu = (phase.server_cpu or 0.0) + cpu
    phase.seconds += seconds


def example_bodies() -> list[bytes]:
    sys.path.append(str(ROOT))  # a checkout without an install; an installed recommender comes first
    from recommender.examples import load_examples

    bodies = []
    for _, _, ctx in load_examples():
        business = {k: v for k, v in (ctx.get("business") or {}).items() if k != "id"}  # the key's tenant
        bodies.append(json.dumps({**ctx, "business": business} if business else
                                 {k: v for k, v in ctx.items() if k != "business"}).encode())
    return bodies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workers: int, extra: list[str], plugins: bool = True) -> tuple[subprocess.Popen[bytes], str, str, Path]:
    """`recommender serve` with a throw-away API key from a config file."""
    import hashlib
    import secrets

    port = free_port()
    key = "bench_" + secrets.token_hex(16)
    tmp = Path(tempfile.mkdtemp(prefix="recommender-bench-"))
    cfg = tmp / "bench.toml"
    # auth = "config" with or without a store (a store would default to its own keys): every
    # server checks the key alike, so only the decision's store work differs between them
    cfg.write_text(f'log_level = "warning"\nauth = "config"\nautoload_plugins = {"true" if plugins else "false"}\n\n[[api_keys]]\nname = "bench"\ntenant = "default"\n'
                   f'scopes = ["recommend"]\nhash = "sha256:{hashlib.sha256(key.encode()).hexdigest()}"\n')
    launch = "import sys; from recommender.cli import main; sys.argv[0] = 'recommender'; main()"
    log = tmp / "server.log"
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-c", launch, "serve", "--config", str(cfg), "--host", "127.0.0.1",
                                 "--port", str(port), "--workers", str(workers), *extra],
                                stdout=out, stderr=subprocess.STDOUT, cwd=str(tmp))  # not ROOT: the installed build runs
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text()
            shutil.rmtree(tmp, ignore_errors=True)
            raise SystemExit(f"server exited ({proc.returncode}):\n{text}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b" 200 " in s.recv(100):
                    # all workers up: give the others a moment
                    time.sleep(0.5 * (workers - 1))
                    return proc, url, key, log
        except OSError:
            pass
        time.sleep(0.2)
    proc.terminate()
    proc.wait(15)
    text = log.read_text()
    shutil.rmtree(tmp, ignore_errors=True)
    raise SystemExit(f"server not ready:\n{text}")


def store_list(text: str) -> list[str]:
    """``--store``'s value: one or more of :data:`STORES`, comma-separated."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in STORES]
    if not kinds or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: expected one or more of {', '.join(STORES)} (comma-separated)")
    return kinds


@contextlib.contextmanager
def bench_store(kind: str, folder: Path, pg_url: str) -> Iterator[str | None]:
    """A fresh, migrated store for one server: None (no store), a SQLite file in ``folder``,
    or a PostgreSQL schema of its own (dropped on exit, whatever happened), so nothing
    else's data is touched."""
    if kind == "none":
        yield None
        return
    sys.path.append(str(ROOT))
    from recommender.memory import open_store

    if kind == "sqlite":
        url = f"sqlite:///{folder / 'bench-store.db'}"
        open_store(url, upgrade=True).close()
        yield url
        return
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(pg_url)
    libpq = base.set(drivername="postgresql").render_as_string(hide_password=False)
    schema = f"recommender_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        url = base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
        open_store(url, upgrade=True).close()
        yield url
    finally:
        with psycopg.connect(libpq, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(15)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="A running server (loopback only); default: start one")
    ap.add_argument("--api-key", default=os.environ.get("RECOMMENDER_API_KEY"))
    ap.add_argument("--duration", type=float, default=10.0, help="Total measured seconds (split over the two endpoints)")
    ap.add_argument("--warmup", type=float, default=0.5, help="Seconds of unmeasured warm-up per turn")
    ap.add_argument("--rounds", type=int, default=5, help="Turns each endpoint takes (alternating)")
    ap.add_argument("--concurrency", type=int, default=8, help="Concurrent clients (connections)")
    ap.add_argument("--workers", type=int, default=1, help="Worker processes of the server this starts")
    ap.add_argument("--serve-arg", action="append", default=[], help="Extra `recommender serve` argument")
    ap.add_argument("--no-plugins", action="store_true",
                    help="Start the server without the plugins installed as entry points (autoload_plugins = false)")
    ap.add_argument("--store", type=store_list, action="extend", metavar="KIND[,KIND...]",
                    help="Memory store of the server(s) this starts: none, sqlite, postgresql; comma-separated or "
                         "repeated, one server each, measured in turns in the same run (default: none)")
    ap.add_argument("--pg-url", default=os.environ.get("RECOMMENDER_BENCH_PG_URL", PG_DEFAULT),
                    help="PostgreSQL for --store postgresql (a schema of its own is created and dropped); "
                         "env: RECOMMENDER_BENCH_PG_URL")
    ap.add_argument("--json", action="store_true", help="Print JSON")
    ap.add_argument("--check", action="store_true",
                    help="Exit 1 unless zero errors, server CPU per recommendation without a store <= "
                         f"{HTTP_CPU_TARGET:g}x (/healthz + in-process recommend()) (with --url: ratio >= 0.5), and "
                         f"PostgreSQL's server CPU per recommendation <= {STORE_CPU_TARGET:g}x without a store")
    args = ap.parse_args(argv)
    if not (0 < args.duration <= 600):
        ap.error("--duration must be in (0, 600] seconds")
    if not (0 <= args.warmup <= 60):
        ap.error("--warmup must be in [0, 60] seconds")
    if not (1 <= args.rounds <= 100):
        ap.error("--rounds must be in [1, 100]")
    if not (1 <= args.concurrency <= 256):
        ap.error("--concurrency must be in [1, 256]")
    if not (1 <= args.workers <= 64):
        ap.error("--workers must be in [1, 64]")
    if args.url:
        try:
            loopback_only(args.url)
        except ValueError as exc:
            ap.error(f"--url: {exc}")
        if args.store:
            ap.error("--store: only for servers this starts (not with --url)")
    kinds = list(dict.fromkeys(args.store or ["none"])) if not args.url else ["external"]

    bodies = example_bodies()
    started = not args.url
    servers: list[tuple[str, int | None, str, str | None]] = []  # kind, pid, url, key
    baseline = None  # recommend() in a process of its own, configured as the server without a store
    phases: dict[str, tuple[Phase, Phase]] = {}
    with contextlib.ExitStack() as stack:
        if args.url:
            servers.append(("external", None, args.url, args.api_key))
        else:
            folder = Path(tempfile.mkdtemp(prefix="recommender-bench-store-"))
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
            for kind in kinds:
                try:
                    store_url = stack.enter_context(bench_store(kind, folder, args.pg_url))
                except Exception as exc:  # noqa: BLE001 - a store that cannot be set up is a usage error
                    ap.error(f"--store {kind}: cannot set up the store ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:300]})")
                extra = [*args.serve_arg, *(["--store-url", store_url] if store_url else [])]
                proc, url, key, log = start_server(args.workers, extra, plugins=not args.no_plugins)
                stack.callback(shutil.rmtree, log.parent, ignore_errors=True)  # the config (a key's hash), the log
                stack.callback(stop_server, proc)
                servers.append((kind, proc.pid, url, key))
                if kind == "none":
                    sys.path.append(str(ROOT))
                    from bench.inprocess import InProcess

                    baseline = stack.enter_context(InProcess(log.parent / "bench.toml", args.serve_arg, bodies,
                                                             log.parent))
        for kind, _, _, _ in servers:
            phases[kind] = (Phase("trivial", "GET", "/healthz"),
                            Phase("recommendations", "POST", "/v1/recommendations", bodies=bodies))
        slot = args.duration / 2 / args.rounds
        try:  # the leanest event loop, so the load generator takes as little CPU as it can
            import uvloop
            run = uvloop.run
        except ImportError:  # pragma: no cover
            run = asyncio.run
        # The endpoints and servers take turns (trivial, recommendations, next server, ...), so a
        # change in the machine's background load during the run affects all alike.
        for _ in range(args.rounds):
            for kind, pid, url, key in servers:
                host, port = loopback_only(url)
                for phase in phases[kind]:
                    run(run_phase(phase, host, port, key, slot, args.concurrency, args.warmup, pid))
            if baseline is not None:
                baseline.measure(slot)
    runs: dict[str, dict[str, Any]] = {}
    for kind, (trivial, recs) in phases.items():
        a, b = trivial.summary(), recs.summary()
        runs[kind] = {"trivial": a, "recommendations": b, "ratio": round(b["rps"] / a["rps"], 3) if a["rps"] else 0.0}
    base_cpu = runs["none"]["recommendations"]["server_cpu_ms"] if "none" in runs else None
    cpu_ratio = {kind: (round(r["recommendations"]["server_cpu_ms"] / base_cpu, 2)
                        if base_cpu and r["recommendations"]["server_cpu_ms"] is not None else None)
                 for kind, r in runs.items() if kind in ("sqlite", "postgresql")}
    checks: dict[str, bool] = {f"{kind}: zero errors": r["trivial"]["errors"] == 0 and
                               r["recommendations"]["errors"] == 0 for kind, r in runs.items()}
    if "external" in runs:  # no server CPU: the throughput ratio stands in
        checks["external: recommendations/trivial >= 0.5"] = runs["external"]["ratio"] >= 0.5
    overhead = None
    if baseline is not None:
        inproc = baseline.summary()
        healthz, served = runs["none"]["trivial"]["server_cpu_ms"], runs["none"]["recommendations"]["server_cpu_ms"]
        base = healthz + inproc["cpu_ms"] if healthz is not None and inproc["cpu_ms"] is not None else None
        overhead = {"server_cpu_ms": served, "healthz_cpu_ms": healthz, "recommend_cpu_ms": inproc["cpu_ms"],
                    "recommend_calls": inproc["calls"],
                    "ratio": round(served / base, 2) if served is not None and base else None,
                    "target": HTTP_CPU_TARGET}
        checks[f"none: server CPU per recommendation <= {HTTP_CPU_TARGET:g}x (/healthz + in-process recommend())"] = (
            overhead["ratio"] is not None and overhead["ratio"] <= HTTP_CPU_TARGET)
    if "postgresql" in runs:
        pg = cpu_ratio["postgresql"]
        checks[f"postgresql: server CPU per recommendation <= {STORE_CPU_TARGET:g}x no store"] = (
            pg is not None and pg <= STORE_CPU_TARGET)
    build = None
    if started:  # the server ran on this interpreter, so on this install
        sys.path.append(str(ROOT))
        from bench import build_label
        build = build_label()
    first = runs[kinds[0]]
    report = {"url": servers[0][2], "workers": args.workers if started else None, "concurrency": args.concurrency,
              "rounds": args.rounds, "build": build, "plugins": (not args.no_plugins) if started else None,
              "seconds_per_endpoint": args.duration / 2, "cpus": os.cpu_count(),
              "load_average": [round(x, 2) for x in os.getloadavg()],
              "trivial": first["trivial"], "recommendations": first["recommendations"], "ratio": first["ratio"],
              "stores": runs, "store_cpu_ratio": cpu_ratio, "http_overhead": overhead, "checks": checks, "target_met": all(checks.values())}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        if build:
            print(f"server build: {build}")
        print(f"{'store':<10} {'endpoint':<28} {'requests':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
              f" {'server CPU ms/req':>18}")
        for kind, r in runs.items():
            for s in (r["trivial"], r["recommendations"]):
                cpu = "-" if s["server_cpu_ms"] is None else f"{s['server_cpu_ms']:.3f}"
                print(f"{kind:<10} {s['endpoint']:<28} {s['requests']:>9} {s['rps']:>9.1f} {s['p50_ms']:>8.2f} "
                      f"{s['p99_ms']:>8.2f} {s['errors']:>7} {cpu:>18}")
        for kind, r in runs.items():
            print(f"{kind}: ratio recommendations/trivial {r['ratio']:.3f}")
        if overhead is not None:
            shown = "-" if overhead["ratio"] is None else f"{overhead['ratio']:.2f}x"
            print(f"none: in-process recommend() CPU {overhead['recommend_cpu_ms']} ms/call "
                  f"({overhead['recommend_calls']} calls); server CPU per recommendation / (/healthz + "
                  f"recommend()): {shown} (target <= {HTTP_CPU_TARGET:g}x)")
        for kind, ratio in cpu_ratio.items():
            shown = "unknown (needs --store none in the same run)" if ratio is None else f"{ratio:.2f}x"
            print(f"{kind}: server CPU per recommendation vs no store: {shown}")
        print(f"load average: {' '.join(str(x) for x in report['load_average'])}")
        for name, met in checks.items():
            print(f"target {name}: {'met' if met else 'MISSED'}")
    return 0 if (report["target_met"] or not args.check) else 1

if __name__ == "__main__":
    sys.exit(main())
