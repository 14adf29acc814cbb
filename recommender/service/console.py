"""The agent console: two static pages (``/console``, ``/console/insights``) and the
``/v1/insights`` endpoint behind them.

The pages hold no data and need no key to load; everything they show comes from the
authenticated ``/v1`` API with the key the agent types in, so a tenant still only ever
sees its own decisions and outcomes. They are sent with a Content-Security-Policy that
allows this server only, and ``frame-ancestors`` from the ``frame_ancestors`` setting.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel, ConfigDict

from ..memory.records import OutcomeRecord
from ..memory.reports import ReportRow
from .auth import Principal
from .docs import _ancestors, security_headers
from .errors import ErrorBody
from .routes import _json, _need_store, _state, _store_call, _tenant, require

__all__ = ["pages", "api"]

STATIC = FilePath(__file__).parent / "static"
_ASSETS = {"console.css": "text/css", "console.js": "text/javascript", "insights.js": "text/javascript"}

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/v1", tags=["memory"])


@pages.get("/console", response_class=HTMLResponse)
async def console_page(request: Request) -> Response:
    return FileResponse(STATIC / "console.html", media_type="text/html",
                        headers=security_headers(_ancestors(request)))


@pages.get("/console/insights", response_class=HTMLResponse)
async def insights_page(request: Request) -> Response:
    return FileResponse(STATIC / "insights.html", media_type="text/html",
                        headers=security_headers(_ancestors(request)))


@pages.get("/console/static/{name}")
async def asset(name: str) -> Response:
    if name not in _ASSETS:  # a fixed list: no path ever reaches the file system unchecked
        return Response(status_code=404)
    return FileResponse(STATIC / name, media_type=_ASSETS[name], headers={"X-Content-Type-Options": "nosniff"})


class Insights(BaseModel):
    """Outcomes over a period: per gesture counts and cost, acceptance, the latest outcomes."""

    model_config = ConfigDict(extra="forbid")

    tenant: str
    since: datetime
    until: datetime
    accepted: int
    declined: int
    acceptance_rate: float | None
    gestures: list[ReportRow]
    recent: list[OutcomeRecord]


@api.get("/insights", response_model=Insights, summary="Recent outcomes, acceptance rate and cost per gesture",
         responses={404: {"model": ErrorBody, "description": "No store configured"},
                    503: {"model": ErrorBody, "description": "The store is unavailable"}})
async def insights(request: Request, principal: Principal = Depends(require("recommend")),
                   days: Annotated[int, Query(ge=1, le=3660, description="The period, ending now")] = 30,
                   limit: Annotated[int, Query(ge=1, le=500, description="Recent outcomes listed")] = 20) -> Response:
    svc = _state(request)
    store = _need_store(svc, "insights")
    tenant = _tenant(principal, None)
    until = datetime.now(timezone.utc)
    since = until - timedelta(days=days)
    report = await _store_call(store.report, tenant, since, until + timedelta(seconds=1))
    recent = await _store_call(store.recent_outcomes, tenant, limit)
    accepted = sum(r.accepted for r in report.gestures)
    declined = sum(r.declined for r in report.gestures)
    body = Insights(tenant=tenant, since=since, until=until, accepted=accepted, declined=declined,
                    acceptance_rate=None if not accepted + declined else round(accepted / (accepted + declined), 4),
                    gestures=report.gestures, recent=recent)
    return _json(body, svc.version())
