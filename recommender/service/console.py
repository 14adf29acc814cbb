"""The agent console: static pages and the ``/v1/insights`` endpoint behind them.

``/console`` (the form, the answers, approvals asked for, the what-if pane),
``/console/panel`` (the same, laid out as a help-desk tool's side panel),
``/console/approvals`` (the supervisor's queue), ``/console/rules`` (the rules browser) and
``/console/insights``; ``/`` redirects to ``/console``.

The pages hold no data and need no key to load; everything they show comes from the
authenticated ``/v1`` API with the key the agent types in (or, in the side panel, a panel
token), so a tenant still only ever sees its own decisions and outcomes. They are sent with a
Content-Security-Policy that allows this server only, and ``frame-ancestors`` from the
``frame_ancestors`` setting. No page or asset names anything outside this server.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..context import Business
from ..memory.insights import Coverage, Day, ExtrasRate
from ..memory.records import OutcomeRecord
from ..memory.reports import ReportRow
from .auth import Principal
from .docs import _ancestors, security_headers
from .errors import ErrorBody
from .routes import _json, _need_store, _state, _store_call, _tenant, require

__all__ = ["pages", "api"]

STATIC = FilePath(__file__).parent / "static"
_ASSETS = {"console.css": "text/css", **{f"{name}.js": "text/javascript" for name in (
    "app", "form", "answer", "console", "panel", "approvals", "rules", "insights")}}
#: The pages, by path: each a static file, with the parts several pages share put in (:func:`render_page`).
_PAGES = {"/console": "console.html", "/console/panel": "panel.html", "/console/approvals": "approvals.html",
          "/console/rules": "rules.html", "/console/insights": "insights.html"}
_INCLUDE = re.compile(r"<!--#include ([a-z-]+\.html)-->")

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/v1", tags=["memory"])


@pages.get("/")
async def front_door() -> Response:
    """The front door: the agent console."""
    return RedirectResponse("/console", status_code=307)


def render_page(name: str, path: str) -> str:
    """The page ``name`` served at ``path``: each ``<!--#include part.html-->`` replaced by
    ``static/parts/part.html``, written once for the pages that share it (the header, whose link
    to ``path`` is marked current; the console's form and scripts, shared with the side panel)."""

    def part(m: re.Match[str]) -> str:
        text = (STATIC / "parts" / m[1]).read_text(encoding="utf-8").rstrip("\n")
        return text.replace(f'<a href="{path}">', f'<a href="{path}" aria-current="page">')

    return _INCLUDE.sub(part, (STATIC / name).read_text(encoding="utf-8"))


def _page(path: str, name: str) -> Any:
    async def page(request: Request) -> Response:
        return HTMLResponse(render_page(name, path), headers={
            **security_headers(_ancestors(request)), "Cache-Control": "no-cache"})

    page.__name__ = f"page_{name.split('.')[0]}"
    return page


for _path, _name in _PAGES.items():
    pages.add_api_route(_path, _page(_path, _name), methods=["GET"], response_class=HTMLResponse)


@pages.get("/console/static/{name}")
async def asset(name: str) -> Response:
    if name not in _ASSETS:  # a fixed list: no path ever reaches the file system unchecked
        return Response(status_code=404)
    return FileResponse(STATIC / name, media_type=_ASSETS[name],
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


class Insights(BaseModel):
    """Outcomes over a period: per gesture counts and cost, acceptance, the latest outcomes;
    per day, overall and per gesture; coverage of negative experiences; the extras rate
    against the business's target."""

    model_config = ConfigDict(extra="forbid")

    tenant: str
    since: datetime
    until: datetime
    accepted: int
    declined: int
    acceptance_rate: float | None
    gestures: list[ReportRow]
    recent: list[OutcomeRecord]
    currency: str = "USD"
    titles: dict[str, str] = Field(default_factory=dict, description="Each gesture's title, by id")
    days: list[Day] = Field(default_factory=list, description="Outcomes per day (UTC)")
    gesture_days: dict[str, list[Day]] = Field(default_factory=dict, description="Outcomes per gesture and day")
    coverage: Coverage | None = Field(default=None, description=(
        "Negative experiences (assessment severity >= 1) and how many got a recover gesture"))
    extras: ExtrasRate | None = Field(default=None, description=(
        "Decisions with an extra on offer, how many got one, and the profile's extras_rate"))


@api.get("/insights", response_model=Insights, summary="Recent outcomes, acceptance rate and cost per gesture",
         responses={404: {"model": ErrorBody, "description": "No store configured"},
                    503: {"model": ErrorBody, "description": "The store is unavailable"}})
async def insights(request: Request, principal: Principal = Depends(require("recommend")),
                   days: Annotated[int, Query(ge=1, le=3660, description="The period, ending now")] = 30,
                   limit: Annotated[int, Query(ge=1, le=500, description="Recent outcomes listed")] = 20,
                   vertical: Annotated[str | None, Query(max_length=128, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$",
                                                         description="The vertical whose titles and profile "
                                                                     "are shown")] = None) -> Response:
    from ..memory.insights import trends

    svc = _state(request)
    store = _need_store(svc, "insights")
    tenant = _tenant(principal, None)
    until = datetime.now(timezone.utc)
    since = until - timedelta(days=days)
    end = until + timedelta(seconds=1)
    report = await _store_call(store.report, tenant, since, end)
    recent = await _store_call(store.recent_outcomes, tenant, limit)
    trend = await _store_call(trends, store, tenant, since, end)
    business = Business(id=tenant, vertical=vertical)
    book = await run_in_threadpool(svc.recommender.rulebook_for, business)
    profile = await run_in_threadpool(lambda: svc.recommender.profile_for(business)[0])
    ids = {r.key for r in report.gestures} | {o.gesture_id for o in recent} | set(trend.gesture_days)
    titles = {g: book.gestures[g].title for g in sorted(ids) if g in book.gestures}
    accepted = sum(r.accepted for r in report.gestures)
    declined = sum(r.declined for r in report.gestures)
    body = Insights(tenant=tenant, since=since, until=until, accepted=accepted, declined=declined,
                    acceptance_rate=None if not accepted + declined else round(accepted / (accepted + declined), 4),
                    gestures=report.gestures, recent=recent, currency=profile.currency, titles=titles,
                    days=trend.days, gesture_days=trend.gesture_days, coverage=trend.coverage,
                    extras=trend.extras.model_copy(update={"target": profile.extras_rate}))
    return _json(body, svc.version())
