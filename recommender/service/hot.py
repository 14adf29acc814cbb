"""The hot endpoints' short way through the app: ``POST /v1/recommendations`` and ``/v1/explain``.

A request to any route goes through FastAPI's router (a regular-expression match against
each route in turn), then its request handler (dependency solving, an exit stack, an
exception-handling wrapper) and two exception middlewares: per recommendation that cost
about as much again as the whole of ``GET /healthz`` (``bench/load.py``, issue 17). The two
decision endpoints take nothing from that machinery: they read their own input
(:func:`~recommender.service.routes._decide_input`) and return a ready response. So
:class:`HotRoutes` sits just inside the app's own middlewares (metrics and the body limit
still see every request) and calls those endpoints directly, with the app's own exception
handlers for what they raise. Every other request, another method on these paths, a
trailing slash or a ``root_path`` takes the usual way; so does the OpenAPI document, which
is built from the routes as declared.
"""

from __future__ import annotations

import inspect
from typing import Any, Awaitable, Callable, Union, cast

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["HotRoutes", "HOT_PATHS"]

#: The routes taken the short way (POST only).
HOT_PATHS = ("/v1/recommendations", "/v1/explain")

#: An HTTP exception handler, as Starlette takes them (sync or async).
Handler = Callable[[Request, Exception], Union[Response, Awaitable[Response]]]


class HotRoutes:
    """Pure ASGI: ``POST`` to one of :data:`HOT_PATHS` straight to its endpoint.

    The scope gets the matched route, as the router would set it (the metrics label requests
    by its template). An exception the endpoint raises goes to the handler the app registered
    for its class (nearest in the class's MRO), as in Starlette's ``ExceptionMiddleware``; one
    without a handler propagates to the server-error middleware, as from the router.
    """

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        from .routes import router  # included without a prefix: its paths are the app's

        self._hot: dict[str, tuple[Any, Callable[[Request], Awaitable[Response]]]] = {}
        for route in router.routes:
            if getattr(route, "path", None) in HOT_PATHS and "POST" in (getattr(route, "methods", None) or ()):
                self._hot[route.path] = (route, route.endpoint)  # type: ignore[attr-defined]
        if len(self._hot) != len(HOT_PATHS):  # pragma: no cover - a route renamed without this list
            raise RuntimeError(f"hot routes missing from the /v1 router: {set(HOT_PATHS) - set(self._hot)}")
        # 500 and Exception belong to the server-error middleware (as in FastAPI's stack)
        self._handlers: dict[type, Handler] = {k: cast(Handler, v) for k, v in fastapi_app.exception_handlers.items()
                                               if isinstance(k, type) and k is not Exception}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = (self._hot.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST"
               and not scope.get("root_path") else None)
        if hot is None:
            await self.app(scope, receive, send)
            return
        route, endpoint = hot
        scope["route"], scope["endpoint"], scope["path_params"] = route, endpoint, {}
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler = self._handler(type(exc))
            if handler is None:
                raise
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer  # (the app's are all async)
        await response(scope, receive, send)

    def _handler(self, cls: type) -> Handler | None:
        for base in cls.__mro__:
            if base is Exception:
                return None
            handler = self._handlers.get(base)
            if handler is not None:
                return handler
        return None
