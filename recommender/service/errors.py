"""Every error the service returns is JSON of one shape (:class:`ErrorBody`), never a bare 500.

* malformed JSON -> 400 ``malformed_json`` (with line/column);
* a context or parameter that fails validation -> 422 ``invalid_request`` with one entry
  per field path (``interaction.cost``, ``query.budget``);
* :class:`~recommender.errors.ContextError` -> 422 ``invalid_context``;
* :class:`~recommender.errors.RulePackError` (hot reload) -> 422 ``invalid_rule_pack`` with
  ``file:line`` problems;
* missing/unknown API key -> 401, wrong scope or tenant -> 403, unknown id -> 404,
  body over the size limit -> 413, a JSON body sent as another media type -> 415;
* the memory store unreachable, refusing us (permissions) or without its schema -> 503
  with a generic message: the database's name, user, host and driver message go to the
  server log only, never to a client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ContextError, EngineError, PluginError, RecommenderError, RulePackError
from .auth import AuthError

__all__ = ["ErrorBody", "FieldError", "PackProblemOut", "ServiceError", "install_error_handlers",
           "error_response", "store_error", "ERROR_RESPONSES", "STORE_STATUS", "is_json", "unsupported_media"]

log = logging.getLogger("recommender.service")


class FieldError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="Dotted path of the offending field ('' for the whole body)")
    message: str


class PackProblemOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    line: int | None = None
    field: str = ""
    message: str
    text: str = Field(description="file:line: field: message")


class ErrorBody(BaseModel):
    """What every 4xx/5xx response carries."""

    model_config = ConfigDict(extra="forbid")

    error: str = Field(description="A stable machine-readable code, e.g. invalid_request, unauthorized")
    message: str
    errors: list[FieldError] = Field(default_factory=list)
    problems: list[PackProblemOut] = Field(default_factory=list)
    ruleset_version: str | None = None


class ServiceError(Exception):
    """Raised by routes for a 4xx with a code and a reason."""

    def __init__(self, status: int, code: str, message: str, *, errors: list[FieldError] | None = None,
                 headers: dict[str, str] | None = None):
        self.status, self.code, self.message = status, code, message
        self.errors = errors or []
        self.headers = headers
        super().__init__(message)


def is_json(content_type: str | None) -> bool:
    """True for ``application/json`` or ``application/*+json`` (any parameters, e.g. a charset)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def unsupported_media(content_type: str | None) -> ServiceError:
    """415 for a body that is not declared as JSON (a cross-site form cannot post to the API)."""
    shown = (content_type or "").split(";", 1)[0].strip()[:100]
    got = f"got {shown!r}" if shown else "none was sent"
    return ServiceError(415, "unsupported_media_type",
                        f"the request body must be JSON: send Content-Type: application/json ({got})",
                        errors=[FieldError(field="header.Content-Type", message=f"must be application/json ({got})")])


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


#: The error responses every /v1 operation may return (for the OpenAPI document).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _doc("Malformed JSON"),
    401: _doc("Missing or unknown API key"),
    403: _doc("The key lacks the scope, or belongs to another tenant"),
    413: _doc("Request body over the size limit"),
    415: _doc("A body sent as anything but application/json"),
    422: _doc("Invalid request: one entry per field path"),
    503: _doc("The memory store is unavailable (only with a store)"),
}

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 406: "not_acceptable", 413: "payload_too_large",
                 415: "unsupported_media_type", 422: "invalid_request", 429: "too_many_requests",
                 500: "internal_error", 503: "unavailable"}


def error_response(status: int, code: str, message: str, *, errors: list[FieldError] | None = None,
                   problems: list[PackProblemOut] | None = None, headers: dict[str, str] | None = None,
                   version: str | None = None) -> JSONResponse:
    body = ErrorBody(error=code, message=message, errors=errors or [], problems=problems or [],
                     ruleset_version=version)
    if version is not None:  # also on a 500, which is sent outside the metrics middleware
        headers = {**(headers or {}), "X-Ruleset-Version": version}
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


#: Memory-store errors by their ``code``. A decision or customer of another tenant is
#: reported as not found (``forbidden`` -> 404): other tenants' ids never leak.
STORE_STATUS = {"not_found": 404, "forbidden": 404, "conflict": 409, "over_budget": 409, "invalid": 422,
                "unavailable": 503, "schema": 503}

#: What a client is told when the store cannot serve (the details are logged).
UNAVAILABLE_MESSAGE = "the memory store is unavailable; try again later"


def store_error(exc: Exception, fields: dict[str, str] | None = None) -> ServiceError | None:
    """The HTTP error for a memory-store error (None if ``exc`` is not one).

    ``fields`` renames the store's argument names to the request's (``customer_id`` ->
    ``path.customer_id``). An unavailable store is a 503 with a generic message: the
    error itself (the URL, the database user, the driver's message) is logged here.
    """
    code = getattr(exc, "code", None)
    if not isinstance(code, str) or code not in STORE_STATUS:
        return None
    status = STORE_STATUS[code]
    if status == 503:
        log.error("memory store unavailable: %s", exc)
        return ServiceError(503, "unavailable", UNAVAILABLE_MESSAGE, headers={"Retry-After": "5"})
    if code == "forbidden":
        return ServiceError(404, "not_found", "not found for this tenant")
    if code == "invalid":  # the store's messages read "field: reason"
        field, message = getattr(exc, "field", None), str(exc)
        if not isinstance(field, str):
            return ServiceError(422, "invalid_request", message)
        shown = (fields or {}).get(field, field)
        reason = message[len(field) + 1:].strip() if message.startswith(f"{field}:") else message
        return ServiceError(422, "invalid_request", f"{shown}: {reason}",
                            errors=[FieldError(field=shown, message=reason)])
    return ServiceError(status, code, str(exc))


def _version(request: Request) -> str | None:
    state = getattr(request.app.state, "service", None)
    try:
        return state.recommender.ruleset_version if state is not None else None
    except Exception:  # pragma: no cover
        return None


def _loc_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts)


def _validation_response(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    for err in errors:
        if err.get("type") == "json_invalid":
            loc = list(err.get("loc") or ())
            where = f" at position {loc[-1]}" if len(loc) > 1 else ""
            detail = (err.get("ctx") or {}).get("error") or err.get("msg") or "invalid JSON"
            return error_response(400, "malformed_json", f"the body is not valid JSON{where}: {detail}",
                                  errors=[FieldError(field="", message=str(detail))], version=_version(request))
    fields = [FieldError(field=_loc_path(e.get("loc") or ()), message=str(e.get("msg", "invalid")))
              for e in errors]
    summary = "; ".join(f"{f.field or '<body>'}: {f.message}" for f in fields[:5])
    return error_response(422, "invalid_request", summary or "invalid request", errors=fields,
                          version=_version(request))


def validation_error(exc: Any) -> ServiceError:
    """A pydantic ValidationError of a JSON body: 400 for malformed JSON, else 422 with field paths."""
    errors = exc.errors()
    for err in errors:
        if err.get("type") == "json_invalid":
            detail = (err.get("ctx") or {}).get("error") or err.get("msg") or "invalid JSON"
            return ServiceError(400, "malformed_json", f"the body is not valid JSON: {detail}",
                                errors=[FieldError(field="", message=str(detail))])
    fields = [FieldError(field=".".join(str(p) for p in e.get("loc") or ()), message=str(e.get("msg", "invalid")))
              for e in errors]
    summary = "; ".join(f"{f.field or '<body>'}: {f.message}" for f in fields[:5])
    return ServiceError(422, "invalid_request", summary or "invalid request", errors=fields)


def _http_response(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _STATUS_CODES.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(exc.status_code, code, detail, headers=getattr(exc, "headers", None),
                          version=_version(request))


def recommender_error_response(exc: RecommenderError, version: str | None = None) -> JSONResponse:
    if isinstance(exc, ContextError):
        fields = [FieldError(field=p, message=m) for p, m in exc.errors]
        return error_response(422, "invalid_context", str(exc), errors=fields, version=version)
    if isinstance(exc, RulePackError):
        problems = [PackProblemOut(path=p.path, line=p.line, field=p.field_path, message=p.message, text=str(p))
                    for p in exc.problems]
        return error_response(422, "invalid_rule_pack",
                              f"the rule packs are invalid ({len(problems)} problem(s)); the running version stays active",
                              problems=problems, version=version)
    mapped = store_error(exc)
    if mapped is not None:
        return error_response(mapped.status, mapped.code, mapped.message, errors=mapped.errors,
                              headers=mapped.headers, version=version)
    if isinstance(exc, PluginError):
        return error_response(502, "plugin_failed", str(exc), version=version)
    if isinstance(exc, EngineError):
        log.error("engine error: %s", exc)
        return error_response(500, "engine_error", str(exc), version=version)
    return error_response(400, "recommender_error", str(exc), version=version)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _http_response(request, exc)

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, errors=exc.errors, headers=exc.headers,
                              version=_version(request))

    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Bearer realm="recommender"'} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, headers=headers, version=_version(request))

    @app.exception_handler(RecommenderError)
    async def _recommender(request: Request, exc: RecommenderError) -> JSONResponse:
        return recommender_error_response(exc, _version(request))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug
        if _is_database_error(exc):  # one the store did not translate: still no details to clients
            log.error("database error on %s %s", request.method, request.url.path, exc_info=exc)
            return error_response(503, "unavailable", UNAVAILABLE_MESSAGE, headers={"Retry-After": "5"},
                                  version=_version(request))
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error (logged on the server)",
                              version=_version(request))


def _is_database_error(exc: BaseException) -> bool:
    """A SQLAlchemy or database-driver error (without importing either when no store is used)."""
    module = type(exc).__module__ or ""
    return module.split(".")[0] in ("sqlalchemy", "psycopg", "sqlite3")
