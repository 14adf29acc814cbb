"""Prometheus metrics of the service.

* ``recommender_http_requests_total{method,route,status}`` and
  ``recommender_http_request_duration_seconds{method,route}``: ``route`` is the route
  template (``/v1/decisions/{decision_id}/outcomes``), never the raw path;
* ``recommender_recommendations_total{gesture}``: gestures recommended;
* ``recommender_plugin_failures_total{plugin,hook}``: plugin warnings in results;
* ``recommender_outcomes_total{outcome}``: outcomes recorded;
* ``recommender_reloads_total{result}``: hot reloads (``ok`` / ``error``);
* ``recommender_ruleset_info{version}``: 1 for the ruleset version in force.

With several workers, ``recommender serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` so that
``/metrics`` on any worker reports the sum over all workers.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "MetricsMiddleware", "CONTENT_TYPE_LATEST"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


class Metrics:
    """The metrics of one app (its own registry, so several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = multiprocess_dir() is not None
        r = self.registry
        self.requests = Counter("recommender_http_requests", "HTTP requests by route template and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("recommender_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route"], buckets=_BUCKETS, registry=r)
        self.recommended = Counter("recommender_recommendations", "Gestures recommended", ["gesture"], registry=r)
        self.plugin_failures = Counter("recommender_plugin_failures", "Plugin failures (warnings in results)",
                                       ["plugin", "hook"], registry=r)
        self.outcomes = Counter("recommender_outcomes", "Outcomes recorded", ["outcome"], registry=r)
        self.reloads = Counter("recommender_reloads", "Rule hot reloads", ["result"], registry=r)
        self.ruleset = Gauge("recommender_ruleset_info", "The ruleset version in force (value 1)", ["version"],
                             registry=r, multiprocess_mode="liveall")
        self._version: str | None = None
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._gestures: dict[str, Any] = {}  # gesture id -> its counter (labels() takes a lock and a tuple)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._series[key] = series
        series[0].inc()
        series[1].observe(seconds)

    def set_version(self, version: str) -> None:
        if version == self._version:
            return
        if self._version is not None:
            if self.multiprocess:
                self.ruleset.labels(self._version).set(0)
            else:
                self.ruleset.remove(self._version)
        self.ruleset.labels(version).set(1)
        self._version = version

    def count_result(self, result: Any) -> None:
        gestures = self._gestures
        for rec in result.recommendations:
            counter = gestures.get(rec.gesture_id)
            if counter is None:
                if len(gestures) >= 10_000:  # ids come from the rule packs; a bound all the same
                    gestures.clear()
                counter = gestures[rec.gesture_id] = self.recommended.labels(rec.gesture_id)
            counter.inc()
        for w in result.warnings:
            self.plugin_failures.labels(w.plugin, w.hook).inc()

    def render(self) -> bytes:
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

    def shutdown(self) -> None:
        if self.multiprocess:
            from prometheus_client import multiprocess

            try:
                multiprocess.mark_process_dead(os.getpid())
            except Exception:  # pragma: no cover
                pass


class MetricsMiddleware:
    """Pure ASGI: counts and times every HTTP request by route template; sets X-Ruleset-Version."""

    def __init__(self, app: ASGIApp, metrics: Metrics, version: Any, routes: Any = ()) -> None:
        self.app = app
        self.metrics = metrics
        self.version = version  # a callable returning the current ruleset version
        # endpoint -> template, for routers that do not put the matched route in the scope
        self._templates = {getattr(r, "endpoint", None): getattr(r, "path", None) for r in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        version = self.version

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or ())
                if not any(k.lower() == b"x-ruleset-version" for k, _ in headers):
                    headers.append((b"x-ruleset-version", version().encode()))
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = (getattr(route, "path", None) or self._templates.get(scope.get("endpoint"))
                        or "<unmatched>")
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - start)
