"""A small HTTP client for integrators of the recommender service (on httpx).

::

    from recommender.client import RecommenderClient

    with RecommenderClient("http://127.0.0.1:8000", api_key="rk_...") as client:
        result = client.recommend({"interaction": {"issue": "flat_tire", "cost": 25}})
        for rec in result.recommendations:
            print(rec.title, rec.script)
        if result.decision_id:
            client.record_outcome(result.decision_id, result.recommendations[0].gesture_id, "accepted")

Every failure comes back as :class:`ServiceError`: an error answer (``status``, ``code``,
the field paths in ``errors`` and the ``file:line`` problems of a broken pack in
``problems``), and equally a call that got no usable answer: the server unreachable
(``status`` 0, ``code`` ``"unreachable"``), a timeout (0, ``"timeout"``) or an answer that
is not the JSON expected (its status, ``"bad_response"``).

Needs httpx: ``pip install 'service-recommender[client]'``.
"""

from __future__ import annotations

from typing import Any, Mapping

from .context import Context
from .errors import RecommenderError
from .optional import MissingExtra
from .results import Explanation, RecommendationResult

try:
    import httpx
except ModuleNotFoundError as _exc:  # pragma: no cover - depends on the install
    if _exc.name != "httpx":
        raise
    raise MissingExtra("recommender.client", "httpx") from None

__all__ = ["RecommenderClient", "ServiceError"]


class ServiceError(RecommenderError):
    """A call that failed: a non-2xx answer, no answer (``status`` 0: unreachable, timed
    out), or an answer that is not what the API returns (``code`` ``"bad_response"``)."""

    def __init__(self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None,
                 problems: list[dict[str, Any]] | None = None, body: Any = None):
        self.status, self.code, self.message = status, code, message
        self.errors = errors or []
        self.problems = problems or []
        self.body = body
        super().__init__(f"HTTP {status} {code}: {message}" if status else f"{code}: {message}")

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
        try:
            resp = self._http.request(method, path, json=json, params=params or None, headers=hdrs, content=content)
        except httpx.TimeoutException as exc:
            raise ServiceError(0, "timeout", f"{method} {path}: no answer from {self.base_url} in time "
                                             f"({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise ServiceError(0, "unreachable", f"{method} {path}: cannot reach {self.base_url}: "
                                                 f"{type(exc).__name__}: {exc}") from exc
        except httpx.HTTPError as exc:  # an invalid URL, a redirect loop, ...
            raise ServiceError(0, "http_error", f"{method} {path}: {type(exc).__name__}: {exc}") from exc
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
        return _parse(resp, RecommendationResult)

    def explain(self, context: Context | Mapping[str, Any], *, budget: float | None = None,
                max_extras: int | None = None) -> Explanation:
        resp = self.request("POST", "/v1/explain", json=_context_json(context),
                            params={"budget": budget, "max_extras": max_extras})
        return _parse(resp, Explanation)

    def record_outcome(self, decision_id: str, gesture_id: str, outcome: str, *, note: str | None = None,
                       actual_cost: float | None = None, idempotency_key: str | None = None) -> dict[str, Any]:
        """Record what happened to a recommended gesture, once: a retry replays the stored
        outcome. Without ``idempotency_key`` the service keys the outcome by what it records
        (decision, gesture, outcome); give your own (a till's transaction id) to tie it to your
        records. The rule is the CLI's and the store's: docs/memory.md "Outcomes"."""
        body: dict[str, Any] = {"gesture_id": gesture_id, "outcome": outcome}
        if note is not None:
            body["note"] = note
        if actual_cost is not None:
            body["actual_cost"] = actual_cost
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        resp = self.request("POST", f"/v1/decisions/{decision_id}/outcomes", json=body, headers=headers)
        return _json(resp)

    def gestures(self) -> dict[str, Any]:
        """The gestures in force for the key's tenant."""
        return _json(self.request("GET", "/v1/gestures"))

    def rulepacks(self) -> dict[str, Any]:
        """The rule packs in force for the key's tenant, with the ruleset version."""
        return _json(self.request("GET", "/v1/rulepacks"))

    def plugins(self) -> dict[str, Any]:
        return _json(self.request("GET", "/v1/plugins"))

    def customer(self, customer_id: str, *, tenant: str | None = None, limit: int | None = None) -> dict[str, Any]:
        from urllib.parse import quote

        return _json(self.request("GET", f"/v1/customers/{quote(customer_id, safe='')}",
                                  params={"tenant": tenant, "limit": limit}))

    def reload(self) -> dict[str, Any]:
        """Hot-reload the server's rule packs (admin scope). A broken pack raises
        :class:`ServiceError` (422) with its ``file:line`` problems; the old version stays."""
        return _json(self.request("POST", "/v1/admin/reload"))

    def health(self) -> dict[str, Any]:
        return _json(self.request("GET", "/healthz"))

    def ready(self) -> dict[str, Any]:
        """The readiness report (raises :class:`ServiceError` 503 when not ready); which check
        failed and why only with an admin key."""
        return _json(self.request("GET", "/readyz"))

    def metrics(self) -> str:
        return self.request("GET", "/metrics", headers={"Accept": "text/plain"}).text


def _context_json(context: Context | Mapping[str, Any]) -> Any:
    if isinstance(context, Context):
        return context.model_dump(mode="json", exclude_unset=True)
    return context


def _json(resp: httpx.Response) -> Any:
    """The JSON body of a successful answer, or :class:`ServiceError` ``bad_response``."""
    try:
        return resp.json()
    except ValueError as exc:
        raise _bad(resp, f"not JSON ({exc})") from None


def _parse(resp: httpx.Response, model: Any) -> Any:
    """A successful answer read as ``model``, or :class:`ServiceError` ``bad_response``."""
    from pydantic import ValidationError

    try:
        return model.model_validate_json(resp.content)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
        where = ".".join(str(p) for p in first["loc"]) or "<body>"
        raise _bad(resp, f"not a {model.__name__}: {where}: {first['msg']}") from None


def _bad(resp: httpx.Response, why: str) -> ServiceError:
    return ServiceError(resp.status_code, "bad_response", f"{resp.request.method} {resp.request.url.path}: "
                                                          f"the answer is {why}", body=resp.text[:500])


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
