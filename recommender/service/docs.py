"""The API's documentation pages, served from local assets, and the pages' security headers.

``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) are built with FastAPI's own page functions,
pointed at the Swagger UI and ReDoc bundles that the ``fastapi-offline`` package ships (the
way FastAPI documents for self-hosting them): no page loads anything from a CDN, so the docs
work on a machine without internet access. Every HTML page (these and the agent console) is
sent with a Content-Security-Policy that allows only this server as a source, and
``frame-ancestors`` from the ``frame_ancestors`` setting (help-desk tools that embed the
console in a frame are listed there; default ``'self'``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path
from typing import Any, Iterable

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, Response

__all__ = ["router", "security_headers", "ASSETS"]

TITLE = "Service recommender"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
_PREFIX = "/docs/static"
#: The files served under /docs/static, by name (a fixed list: no path reaches the file system unchecked).
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
          "redoc.standalone.js": "text/javascript", "favicon.png": "image/png"}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)

router = APIRouter(include_in_schema=False)


def _static() -> Path:
    """The folder of Swagger UI and ReDoc bundles shipped by fastapi-offline."""
    return Path(str(files("fastapi_offline") / "static"))


def _ancestors(request: Request) -> list[str]:
    service = getattr(request.app.state, "service", None)
    settings = getattr(service, "settings", None)
    return list(getattr(settings, "frame_ancestors", None) or ["'self'"])


def security_headers(ancestors: Iterable[str], *, scripts: Iterable[str] = (), inline_styles: bool = False,
                     workers: bool = False) -> dict[str, str]:
    """The headers of an HTML page: a CSP allowing this server only (plus the page's own inline
    ``scripts``, by hash), ``frame-ancestors`` as configured, no sniffing, no referrer."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
                      for s in scripts)
    policy = [
        "default-src 'none'",
        f"script-src 'self'{' ' + hashes if hashes else ''}",
        "style-src 'self' 'unsafe-inline'" if inline_styles else "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        *(["worker-src 'self' blob:"] if workers else []),
        "base-uri 'none'",
        "form-action 'none'",
        f"frame-ancestors {' '.join(ancestors)}",
    ]
    return {"Content-Security-Policy": "; ".join(policy), "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer"}


def _page(response: HTMLResponse, request: Request, **kw: Any) -> HTMLResponse:
    body = bytes(response.body).decode()
    response.headers.update(security_headers(_ancestors(request), scripts=_INLINE_SCRIPT.findall(body), **kw))
    return response


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    page = get_swagger_ui_html(openapi_url=request.app.openapi_url or "/openapi.json", title=f"{TITLE} - API",
                               swagger_js_url=f"{_PREFIX}/swagger-ui-bundle.js",
                               swagger_css_url=f"{_PREFIX}/swagger-ui.css", swagger_favicon_url=f"{_PREFIX}/favicon.png",
                               oauth2_redirect_url=OAUTH2_REDIRECT,
                               swagger_ui_parameters={"validatorUrl": None})  # no online validator badge
    return _page(page, request, inline_styles=True)


@router.get(OAUTH2_REDIRECT)
async def swagger_ui_redirect(request: Request) -> HTMLResponse:
    return _page(get_swagger_ui_oauth2_redirect_html(), request)


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    page = get_redoc_html(openapi_url=request.app.openapi_url or "/openapi.json", title=f"{TITLE} - API",
                          redoc_js_url=f"{_PREFIX}/redoc.standalone.js", redoc_favicon_url=f"{_PREFIX}/favicon.png",
                          with_google_fonts=False)
    return _page(page, request, inline_styles=True, workers=True)


@router.get(_PREFIX + "/{name}")
async def asset(name: str) -> Response:
    if name not in ASSETS:
        return Response(status_code=404)
    return FileResponse(_static() / name, media_type=ASSETS[name],
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=86400"})
