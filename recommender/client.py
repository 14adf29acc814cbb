"""A small HTTP client for integrators of the recommender service (on httpx).

::

    from recommender.client import RecommenderClient

    with RecommenderClient("http://127.0.0.1:8000", api_key="rk_...") as client:
        result = client.recommend({"interaction": {"issue": "flat_tire", "cost": 25}})
        for rec in result.recommendations:
            print(rec.title, rec.script)
        if result.decision_id:
            client.record_outcome(result.decision_id, result.recommendations[0].gesture_id, "accepted")

Errors come back as :class:`ServiceError` (with ``status``, ``code``, the field paths in
``errors`` and the ``file:line`` problems of a broken pack in ``problems``).
"""

from __future__ import annotations

import uuid
from typing import Any, Mapping

import httpx

from .context import Context
from .errors import RecommenderError
from .results import Explanation, RecommendationResult

__all__ = ["RecommenderClient", "ServiceError"]


class ServiceError(RecommenderError):
    """A non-2xx answer from the service."""

    def __init__(self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None,
                 problems: list[dict[str, Any]] | None = None, body: Any = None):
        self.status, self.code, self.message = status, code, message
        self.errors = errors or []
        self.problems = problems or []
        self.body = body
        super().__init__(f"HTTP {status} {code}: {message}")

    @property
    def fields(self) -> list[str]:
        """The field paths the service blamed."""
        return [e.get("field", "") for e in self.errors]


class RecommenderClient:
    """Talks to ``recommender serve``. Thread-safe (one httpx connection pool); close it when done.

    ``client`` may be a ready httpx client with its own ``base_url`` (e.g. FastAPI's
    ``TestClient`` for in-process use); it is not closed by :meth:`close`.
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, *,
                 timeout: float = 10.0, client: httpx.Client | None = None,
                 headers: Mapping[str, str] | None = None):
        self.base_url = base_url.rstrip("/")
        hdrs = {"Accept": "application/json", **(headers or {})}
        if api_key:
            hdrs["X-API-Key"] = api_key
        self._headers = hdrs
        self._own = client is None
        self._http = client if client is not None else httpx.Client(base_url=self.base_url, timeout=timeout)
        #: X-Ruleset-Version of the last response.
        self.ruleset_version: str | None = None

    # -- plumbing --------------------------------------------------------------

    def close(self) -> None:
        if self._own:
            self._http.close()

    def __enter__(self) -> "RecommenderClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, content: bytes | None = None) -> httpx.Response:
        """One call; raises :class:`ServiceError` on a 4xx/5xx answer."""
        hdrs = {**self._headers, **(headers or {})}
        params = {k: v for k, v in (params or {}).items() if v is not None}
        resp = self._http.request(method, path, json=json, params=params or None, headers=hdrs, content=content)
        self.ruleset_version = resp.headers.get("x-ruleset-version", self.ruleset_version)
        if resp.status_code >= 400:
            raise _error(resp)
        return resp

    # -- the API ---------------------------------------------------------------

    def recommend(self, context: Context | Mapping[str, Any], *, budget: float | None = None,
                  max_extras: int | None = None) -> RecommendationResult:
        """Ranked gestures for one interaction context (``decision_id`` set when the server has a store)."""
        resp = self.request("POST", "/v1/recommendations", json=_context_json(context),
                            params={"budget": budget, "max_extras": max_extras})
        return RecommendationResult.model_validate_json(resp.content)

    def explain(self, context: Context | Mapping[str, Any], *, budget: float | None = None,
                max_extras: int | None = None) -> Explanation:
        resp = self.request("POST", "/v1/explain", json=_context_json(context),
                            params={"budget": budget, "max_extras": max_extras})
        return Explanation.model_validate_json(resp.content)

    def record_outcome(self, decision_id: str, gesture_id: str, outcome: str, *, note: str | None = None,
                       actual_cost: float | None = None, idempotency_key: str | None = None) -> dict[str, Any]:
        """Record what happened to a recommended gesture. Retrying with the same
        ``idempotency_key`` (one is generated when omitted) records it once."""
        body: dict[str, Any] = {"gesture_id": gesture_id, "outcome": outcome}
        if note is not None:
            body["note"] = note
        if actual_cost is not None:
            body["actual_cost"] = actual_cost
        key = idempotency_key or uuid.uuid4().hex
        resp = self.request("POST", f"/v1/decisions/{decision_id}/outcomes", json=body,
                            headers={"Idempotency-Key": key})
        return resp.json()

    def gestures(self) -> dict[str, Any]:
        """The gestures in force for the key's tenant."""
        return self.request("GET", "/v1/gestures").json()

    def rulepacks(self) -> dict[str, Any]:
        """The rule packs in force for the key's tenant, with the ruleset version."""
        return self.request("GET", "/v1/rulepacks").json()

    def plugins(self) -> dict[str, Any]:
        return self.request("GET", "/v1/plugins").json()

    def customer(self, customer_id: str, *, tenant: str | None = None, limit: int | None = None) -> dict[str, Any]:
        from urllib.parse import quote

        return self.request("GET", f"/v1/customers/{quote(customer_id, safe='')}",
                            params={"tenant": tenant, "limit": limit}).json()

    def reload(self) -> dict[str, Any]:
        """Hot-reload the server's rule packs (admin scope). A broken pack raises
        :class:`ServiceError` (422) with its ``file:line`` problems; the old version stays."""
        return self.request("POST", "/v1/admin/reload").json()

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/healthz").json()

    def ready(self) -> dict[str, Any]:
        """The readiness report (raises :class:`ServiceError` 503 when not ready); which check
        failed and why only with an admin key."""
        return self.request("GET", "/readyz").json()

    def metrics(self) -> str:
        return self.request("GET", "/metrics", headers={"Accept": "text/plain"}).text


def _context_json(context: Context | Mapping[str, Any]) -> Any:
    if isinstance(context, Context):
        return context.model_dump(mode="json", exclude_unset=True)
    return context


def _error(resp: httpx.Response) -> ServiceError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        return ServiceError(resp.status_code, str(body.get("error")), str(body.get("message", "")),
                            body.get("errors") or [], body.get("problems") or [], body)
    if isinstance(body, dict) and "ready" in body:  # /readyz (checks only for an admin key)
        checks = body.get("checks") or {}
        failing = [f"{k}: {v.get('detail', '')}" for k, v in checks.items() if not v.get("ok")]
        return ServiceError(resp.status_code, "not_ready", "; ".join(failing) or "not ready", body=body)
    return ServiceError(resp.status_code, "http_error", resp.text[:500], body=body)
