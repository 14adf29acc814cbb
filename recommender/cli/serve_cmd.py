"""``recommender serve`` (the HTTP service on uvicorn), ``recommender openapi`` and
``recommender config-key``."""

from __future__ import annotations

import json
import os
import secrets
import signal
import tempfile
from pathlib import Path
from typing import Any, List, Optional

import typer

from ..errors import RecommenderError
from .app import err, fail, out

__all__ = ["register", "openapi_document", "DEFAULT_OPENAPI_PATH"]

DEFAULT_OPENAPI_PATH = Path("docs/openapi.json")


def openapi_document() -> dict[str, Any]:
    """The service's OpenAPI document (independent of settings, rules and store)."""
    from ..service.app import build_app

    return build_app().openapi()


def render_openapi() -> str:
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


def _supervisor_class() -> Any:
    from uvicorn.supervisors import Multiprocess

    class ReloadingMultiprocess(Multiprocess):
        """uvicorn's worker supervisor, but SIGHUP hot-reloads the rules in every worker in
        place (no process restart, no dropped request) instead of replacing the workers."""

        def handle_hup(self) -> None:
            for process in self.processes:
                if process.pid is not None and process.process.is_alive():
                    try:
                        os.kill(process.pid, signal.SIGHUP)
                    except OSError:  # pragma: no cover
                        pass

    return ReloadingMultiprocess


def serve(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Config file (.toml, .yaml or .json); env: RECOMMENDER_CONFIG."),
    rules: Optional[List[Path]] = typer.Option(None, "--rules", "-r", help="Rule pack file or folder (repeatable); env: RECOMMENDER_RULES."),
    plugins_dir: Optional[Path] = typer.Option(None, "--plugins-dir", help="Folder of drop-in plugins; env: RECOMMENDER_PLUGINS_DIR."),
    store_url: Optional[str] = typer.Option(None, "--store-url", help="Memory store URL (postgresql://... or sqlite:///...); env: RECOMMENDER_STORE_URL."),
    host: Optional[str] = typer.Option(None, "--host", help="Bind address (default 127.0.0.1); env: RECOMMENDER_HOST."),
    port: Optional[int] = typer.Option(None, "--port", "-p", min=0, max=65535, help="Port (default 8000); env: RECOMMENDER_PORT."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, max=64, help="Worker processes (default 1); env: RECOMMENDER_WORKERS."),
    max_body_bytes: Optional[int] = typer.Option(None, "--max-body-bytes", help="Largest accepted request body (default 1 MB)."),
    no_auth: bool = typer.Option(False, "--no-auth", help="Development only: accept every request without an API key."),
    log_level: Optional[str] = typer.Option(None, "--log-level", help="critical, error, warning, info or debug."),
) -> None:
    """Serve the HTTP API (FastAPI on uvicorn). SIGHUP hot-reloads the rule packs."""
    from pydantic import ValidationError

    from ..service.app import SUPERVISOR_ENV, build_recommender, configure_logging, create_app, open_store
    from ..service.settings import ENV_PREFIX, ConfigFileError, Settings

    overrides: dict[str, Any] = {
        "rules": rules or None, "plugins_dir": plugins_dir, "store_url": store_url, "host": host, "port": port,
        "workers": workers, "max_body_bytes": max_body_bytes, "log_level": log_level,
        "auth": "none" if no_auth else None,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(config=config, **overrides) if config is not None else Settings(**overrides)
    except ConfigFileError as exc:
        fail(str(exc))
    except ValidationError as exc:
        where = f"config file {config}" if config else "settings"
        lines = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()]
        fail(f"invalid {where}:\n  " + "\n  ".join(lines))
    configure_logging(settings.log_level)
    try:
        recommender = build_recommender(settings)
        store = open_store(settings)  # fail fast: unreachable database, schema not upgraded
    except RecommenderError as exc:
        fail(str(exc))
    if settings.effective_auth == "none":
        err.print("[yellow]warning:[/yellow] --no-auth: every request is accepted without an API key "
                  "(development only)", markup=True)

    import uvicorn

    if settings.workers == 1:
        try:
            app = create_app(settings, recommender=recommender, store=store, handle_signals=True)
        except RecommenderError as exc:
            fail(str(exc))
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                    server_header=False, timeout_graceful_shutdown=10)
        return

    # Several workers: each one builds its app from the environment (config file + overrides).
    del recommender
    if store is not None:
        store.close()
    def env_value(v: Any) -> str:
        if isinstance(v, (str, Path)):
            return str(v)
        return json.dumps(v, default=str)

    env = {ENV_PREFIX + k.upper(): env_value(v) for k, v in overrides.items()}
    if config is not None:
        env[ENV_PREFIX + "CONFIG"] = str(config.resolve())
    env[SUPERVISOR_ENV] = str(os.getpid())
    os.environ.update(env)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # metrics summed over the workers
        import atexit
        import shutil

        metrics_dir = tempfile.mkdtemp(prefix="recommender-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        atexit.register(shutil.rmtree, metrics_dir, True)
    config_obj = uvicorn.Config("recommender.service.app:create_app_from_env", factory=True, host=settings.host,
                                port=settings.port, workers=settings.workers, log_level=settings.log_level,
                                server_header=False, timeout_graceful_shutdown=10)
    sock = config_obj.bind_socket()
    _supervisor_class()(config_obj, sockets=[sock]).run()


def openapi(
    output: Path = typer.Option(DEFAULT_OPENAPI_PATH, "--output", "-o", help="Where to write the document ('-' for stdout)."),
    check: bool = typer.Option(False, "--check", help="Exit 1 if the file differs from the generated document."),
) -> None:
    """Write the service's OpenAPI document (default docs/openapi.json)."""
    text = render_openapi()
    if str(output) == "-":
        print(text, end="")
        return
    if check:
        try:
            current = output.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            fail(f"{output} is out of date: run `recommender openapi -o {output}`", 1)
        out.print(f"{output} is up to date", markup=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    out.print(f"wrote {output}", markup=False)


def config_key(
    tenant: str = typer.Option(..., "--tenant", "-t", help="The tenant (business.id) the key acts for."),
    scope: List[str] = typer.Option(["recommend"], "--scope", "-s", help="recommend, outcome or admin (repeatable)."),
    name: str = typer.Option("", "--name", help="A label for the key."),
    key: Optional[str] = typer.Option(None, "--key", help="Hash this key instead of generating one."),
) -> None:
    """Make an API key for a config file: prints the key (once) and its [[api_keys]] entry."""
    from pydantic import ValidationError

    from ..service.settings import ApiKeyEntry, hash_key

    plaintext = key or "rk_" + secrets.token_urlsafe(32)
    try:
        entry = ApiKeyEntry(hash=hash_key(plaintext), tenant=tenant, scopes=scope, name=name)  # type: ignore[arg-type]
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()))
    if key is None:
        err.print(f"API key (shown once, keep it secret): {plaintext}", markup=False)
    lines = ["[[api_keys]]"]
    if entry.name:
        lines.append(f"name = {json.dumps(entry.name)}")
    lines += [f"tenant = {json.dumps(entry.tenant)}", f"scopes = {json.dumps(list(entry.scopes))}",
              f"hash = {json.dumps(entry.hash)}"]
    print("\n".join(lines))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("openapi")(openapi)
    app.command("config-key")(config_key)
