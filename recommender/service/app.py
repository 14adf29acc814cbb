"""The FastAPI application: ``create_app(settings)``.

One :class:`ServiceState` per app holds the long-lived pieces (the recommender, the
memory store, the key verifier, the metrics). Routes live in :mod:`.routes`.

Runs under uvicorn: ``recommender serve`` (see :mod:`recommender.cli.serve_cmd`) or
``uvicorn --factory recommender.service.app:create_app_from_env``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from typing import Any, AsyncIterator, Callable

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import EngineError, RecommenderError
from .auth import ConfigKeys, NoAuth, PanelTokens, StoreKeys, Verifier, WithPanelTokens
from .errors import error_response, install_error_handlers, is_json, unsupported_media
from .hot import HotRoutes
from .metrics import Metrics, MetricsMiddleware
from .settings import Settings

__all__ = ["create_app", "create_app_from_env", "build_app", "ServiceState", "SUPERVISOR_ENV"]

log = logging.getLogger("recommender.service")

#: Set by ``recommender serve`` in its workers when several share one supervisor: a reload
#: through the API is then fanned out to every worker (SIGHUP to the supervisor).
SUPERVISOR_ENV = "RECOMMENDER_SUPERVISOR_PID"

DESCRIPTION = """\
Recommends the service gestures worth making now for an interaction context, ranked and
explained. Authenticate with `X-API-Key: <key>` or `Authorization: Bearer <key>`.
Every response carries the ruleset version in the `X-Ruleset-Version` header.
"""


class ServiceState:
    """The long-lived pieces one app serves with."""

    def __init__(self, settings: Settings, recommender: Any, store: Any = None,
                 verifier: Verifier | None = None, metrics: Metrics | None = None):
        self.settings = settings
        self.recommender = recommender
        self.store = store
        self.metrics = metrics or Metrics()
        self.verifier: Verifier = verifier or _make_verifier(settings, store)
        secret = settings.panel_secret.get_secret_value() if settings.panel_secret is not None else None
        self.panel_tokens = PanelTokens(secret)  # the agent console's side panel (see console_api)
        if not isinstance(self.verifier, NoAuth):
            self.verifier = WithPanelTokens(self.verifier, self.panel_tokens)
        self._reload_lock = threading.Lock()
        self.metrics.set_version(recommender.ruleset_version)

    def version(self) -> str:
        return self.recommender.ruleset_version

    async def decide(self, ctx: Any, *, explain: bool, budget: float | None, max_extras: int | None) -> Any:
        """Recommend (or explain) for ``ctx``.

        Without a store, once the business's rulebook is built (a first build takes long; so
        does a first explanation's), this runs on the event loop: short CPU work, and plugin
        hooks under a time limit wait on a worker thread without blocking the loop (one
        hand-off per request). With a store (blocking I/O) or something still to build, the
        call goes to the threadpool. A call that lands on a ruleset version retired by a
        concurrent hot reload is retried once on the new version, so reloads never fail a
        request.
        """
        rec = self.recommender
        for attempt in (0, 1):
            try:
                tenant = rec.tenant_if_built(ctx.business) if self.store is None else None
                if tenant is not None and (not explain or tenant.book.explains_ready):
                    run = rec.aexplain if explain else rec.arecommend
                    return await run(ctx, budget=budget, max_extras=max_extras)
                fn = rec.explain if explain else rec.recommend
                return await run_in_threadpool(fn, ctx, budget=budget, max_extras=max_extras, store=self.store)
            except EngineError as exc:
                if attempt == 0 and "retired" in str(exc):
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def reload(self) -> str:
        """Re-read rule files (and the config file's plugin selection); raise on a broken pack."""
        with self._reload_lock:
            kwargs: dict[str, Any] = {}
            if self.settings.config is not None:
                fresh = Settings(config=self.settings.config)
                if fresh.plugins is not None:
                    kwargs["plugin_config"] = fresh.plugins
            try:
                version = self.recommender.reload(**kwargs)
            except RecommenderError:
                self.metrics.reloads.labels("error").inc()
                raise
            self.metrics.reloads.labels("ok").inc()
            self.metrics.set_version(version)
            return version

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if callable(close):
            close()


def _make_verifier(settings: Settings, store: Any) -> Verifier:
    mode = settings.effective_auth
    if mode == "none":
        return NoAuth()
    if mode == "store":
        if store is None:
            raise RecommenderError("auth = 'store' needs a memory store (store_url)")
        from ..memory.keys import KeyStore

        return StoreKeys(KeyStore(store), ttl=settings.key_cache_seconds)
    keys = ConfigKeys(settings.api_keys)
    if not len(keys):
        log.warning("no API keys configured: every /v1 request will get 401 "
                    "(add api_keys to the config file, configure a store, or use --no-auth)")
    return keys


def build_recommender(settings: Settings) -> Any:
    """The :class:`~recommender.Recommender` these settings describe (raises on a bad pack)."""
    from ..core import Recommender

    kwargs: dict[str, Any] = {}
    if settings.plugins_dir is not None:
        kwargs["plugins_dir"] = settings.plugins_dir
    if settings.plugins is not None:
        kwargs["plugin_config"] = settings.plugins
    if settings.max_extras is not None:
        kwargs["max_extras"] = settings.max_extras
    if settings.profiles is not None:
        kwargs["profiles"] = settings.profiles
    if not settings.autoload_plugins:
        kwargs["autoload"] = False
    if not settings.learning:
        kwargs["learning"] = False
    return Recommender(settings.rules or None, plugin_timeout=settings.plugin_timeout, **kwargs)


def open_store(settings: Settings) -> Any:
    if not settings.store_url:
        return None
    from ..memory import open_store as _open

    store = _open(settings.store_url, policy=settings.store_policy)
    if settings.learning_model is not None:
        store.learning_config = settings.learning_model
    return store


class BodyLimitMiddleware:
    """Before any parsing: 415 for a body sent as anything but JSON (a cross-site form cannot
    post to the API), 413 for a request body over ``limit`` bytes (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int, version: Callable[[], str]) -> None:
        self.app, self.limit, self.version = app, limit, version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        declared = None
        content_type: str | None = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
            elif key == b"content-type":
                content_type = value.decode("latin-1")
        if content_type is not None and not is_json(content_type):
            bad = unsupported_media(content_type)
            response = error_response(bad.status, bad.code, bad.message, errors=bad.errors, version=self.version())
            await response(scope, receive, send)
            return
        if declared is not None and declared > self.limit:
            await self._reject(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._reject(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, "payload_too_large",
                                  f"the request body is over the limit of {self.limit} bytes",
                                  headers={"Connection": "close"}, version=self.version())
        await response(scope, receive, send)


def build_app() -> FastAPI:
    """The routes and documentation, without state (what ``recommender openapi`` documents).

    ``/docs`` and ``/redoc`` are served from local assets (:mod:`.docs`), never a CDN."""
    from . import console, console_api, docs
    from .routes import router, root_router

    app = FastAPI(
        title="Service recommender",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        generate_unique_id_function=lambda route: route.name,
    )
    app.include_router(root_router)
    app.include_router(router)
    app.include_router(console.api)
    app.include_router(console_api.router)
    app.include_router(console.pages)
    app.include_router(docs.router)
    install_error_handlers(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus what the hand-parsed endpoints and the key check declare."""
    from fastapi.openapi.utils import get_openapi

    from ..context import Context
    from .routes import SECURITY, SECURITY_SCHEMES

    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    context_schema = Context.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in context_schema.pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas["Context"] = context_schema
    components["schemas"] = dict(sorted(schemas.items()))
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in doc["paths"].items():
        if path.startswith("/v1/"):
            for operation in operations.values():
                operation["security"] = SECURITY
    return doc


def create_app(settings: Settings | None = None, *, recommender: Any = None, store: Any = None,
               handle_signals: bool = False) -> FastAPI:
    """The service app for ``settings`` (default: from the environment and config file).

    ``recommender``/``store`` may be given ready-made (tests); otherwise they are built
    from the settings. ``handle_signals`` installs the SIGHUP hot-reload handler (only in
    the main thread of a server process).
    """
    settings = settings if settings is not None else Settings()
    if recommender is None:
        recommender = build_recommender(settings)
    if store is None:
        store = open_store(settings)
    state = ServiceState(settings, recommender, store)
    app = build_app()
    app.state.service = state

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        installed = False
        if handle_signals and threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_sighup(state)))
            installed = True
        try:
            yield
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGHUP)
            state.metrics.shutdown()
            await run_in_threadpool(state.close)

    app.router.lifespan_context = lifespan
    app.add_middleware(HotRoutes, fastapi_app=app)  # innermost: inside the body limit and the metrics
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes, version=state.version)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics, version=state.version, routes=app.routes)
    return app


async def _sighup(state: ServiceState) -> None:
    try:
        version = await run_in_threadpool(state.reload)
        log.info("SIGHUP: rules reloaded, ruleset version %s", version)
    except RecommenderError as exc:
        log.error("SIGHUP: reload failed, version %s stays active:\n%s", state.version(), exc)
    except Exception:  # pragma: no cover
        log.exception("SIGHUP: reload failed")


def fan_out_reload() -> bool:
    """Ask the supervisor (several workers) to reload every worker. False if not supervised."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor or not supervisor.isdigit() or int(supervisor) != os.getppid():
        return False
    try:
        os.kill(int(supervisor), signal.SIGHUP)
    except OSError:  # pragma: no cover
        return False
    return True


def configure_logging(level: str = "info") -> None:
    """Send the package's log records (reloads, store errors) to stderr, like uvicorn's own."""
    logger = logging.getLogger("recommender")
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.NullHandler)
               for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)-9s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())


def create_app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: settings from ``RECOMMENDER_*`` env and config file."""
    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings, handle_signals=True)
