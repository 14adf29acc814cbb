"""The in-process baseline of ``bench/load.py``: ``recommend()`` on the bodies the load test
posts, in a process of its own built from the server's configuration, taking its turns in
the same run as the servers.

What the service adds to a recommendation is its server CPU per request less what the same
``recommend()`` costs in a hot loop (and less what any request costs, ``GET /healthz``). The
worker runs on the interpreter the server runs on, from the run's temporary folder (so the
installed build, as the server), with the same config file (plugins setting, rules) and the
``recommender serve`` flags that shape the recommender (``--rules``, ``--plugins-dir``). It
calls ``recommend(body)`` with the posted JSON bytes, so validating the context counts on
both sides; it never has a store (the target is for the service without one).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["InProcess", "recommender_flags"]

#: The worker: build the recommender as ``recommender serve`` does, warm it (each business's
#: rulebook compiled, plugin hooks trusted inline, as in a server that has served a while),
#: then answer each line ``SECONDS`` on stdin with ``CALLS CPU_SECONDS`` over that many seconds
#: of ``recommend()`` calls (process CPU: every thread, as the server's is counted).
WORKER = """\
import json, sys, time
from recommender.service.app import build_recommender
from recommender.service.settings import Settings

config, overrides, bodies_file = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
bodies = json.loads(open(bodies_file, encoding="utf-8").read())
bodies = [b.encode() for b in bodies]
rec = build_recommender(Settings(config=config, **overrides))
for _ in range(3):
    for body in bodies:
        rec.recommend(body)
print("ready", flush=True)
for line in sys.stdin:
    seconds = float(line)
    calls, cpu, wall = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - wall < seconds:
        for body in bodies:
            rec.recommend(body)
        calls += len(bodies)
    print(calls, time.process_time() - cpu, flush=True)
"""


def recommender_flags(serve_args: list[str]) -> dict[str, Any]:
    """The settings that ``recommender serve`` flags among ``serve_args`` give the recommender
    (the rest, such as ``--store-url`` or ``--log-level``, do not change ``recommend()``)."""
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--rules", "-r", action="append")
    ap.add_argument("--plugins-dir")
    known, _ = ap.parse_known_args(serve_args)
    out: dict[str, Any] = {}
    if known.rules:
        out["rules"] = known.rules
    if known.plugins_dir:
        out["plugins_dir"] = known.plugins_dir
    return out


class InProcess:
    """The baseline worker (a context manager): :meth:`measure` runs it for a while."""

    def __init__(self, config: Path, serve_args: list[str], bodies: list[bytes], cwd: Path) -> None:
        bodies_file = cwd / "baseline-bodies.json"
        bodies_file.write_text(json.dumps([b.decode() for b in bodies]), encoding="utf-8")
        self._log = cwd / "baseline.log"  # a file, not a pipe: plugin warnings could fill a pipe
        self.calls = 0
        self.cpu = 0.0
        self.seconds = 0.0
        with open(self._log, "wb") as log:  # the child keeps its own copy of the descriptor
            self._proc = subprocess.Popen(
                [sys.executable, "-c", WORKER, str(config), json.dumps(recommender_flags(serve_args)),
                 str(bodies_file)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                cwd=str(cwd))  # not the checkout: the installed build runs, as in the server
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"the in-process baseline failed to start:\n{self._stderr()}")

    def measure(self, seconds: float) -> None:
        """``seconds`` more of ``recommend()`` calls, added to the totals."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f"{seconds}\n")
        self._proc.stdin.flush()
        answer = self._proc.stdout.readline().split()
        if len(answer) != 2:
            raise SystemExit(f"the in-process baseline stopped:\n{self._stderr()}")
        self.calls += int(answer[0])
        self.cpu += float(answer[1])
        self.seconds += seconds

    def summary(self) -> dict[str, Any]:
        return {"calls": self.calls, "seconds": round(self.seconds, 2),
                "cpu_ms": round(self.cpu / self.calls * 1000, 3) if self.calls else None}

    def _stderr(self) -> str:
        self.close()
        return self._log.read_text(errors="replace")[-4000:]

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.close()  # the worker's loop ends with its input
            except OSError:  # pragma: no cover - it died meanwhile
                pass
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(15)
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> "InProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
