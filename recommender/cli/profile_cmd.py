"""``recommender profile show|set FILE|clear``: a tenant's own business profile in the memory store.

The stored profile is the last profile layer (over the core's defaults, plugins and
configuration; docs/advice.md): loyalty and value scales, money limits, the extras rate,
listing caps. ``set`` validates the file before anything is written: an unknown key or a bad
value exits 2 naming it, and what was stored stays.

SQLAlchemy is imported only when one of these commands runs.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .app import fail, out, read_json_input
from .memory_cmd import JsonOpt, TenantOpt, UrlOpt, _guarded, _open

profile_app = typer.Typer(help="Show, set or clear a tenant's own business profile (the last profile layer).",
                          no_args_is_help=True)


def _default_by() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:200]
    except Exception:  # noqa: BLE001 - no user name in this environment
        return "cli"


ByOpt = typer.Option(None, "--by", help="Who sets it, for the record (default: cli:<your user name>).")


def _read_layer(source: str) -> Any:
    """The profile file: JSON (or ``-`` for stdin), or YAML by its suffix. Bad input exits 2."""
    if source != "-" and Path(source).suffix.lower() in (".yaml", ".yml"):
        from ruamel.yaml import YAML
        from ruamel.yaml.error import YAMLError

        try:
            text = Path(source).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read profile file {source}: {getattr(exc, 'strerror', None) or exc}")
        if not text.strip():
            fail(f"{source}: the profile file is empty")
        try:
            return YAML(typ="safe").load(text)
        except (YAMLError, ValueError) as exc:
            fail(f"{source}: not valid YAML: {str(exc).splitlines()[0]}")
    return read_json_input(source, "profile")


def _effective(stored: Any) -> tuple[dict[str, Any] | None, dict[str, str], str | None]:
    """The profile over the core's defaults with the stored layer, its sources, and why not."""
    from ..memory.profiles import layer_sources
    from ..profile import ProfileError, merge_profiles

    layers = [("store", stored.profile)] if stored is not None else []
    try:
        profile = merge_profiles(*(layer for _, layer in layers)).model_dump(mode="json")
    except ProfileError as exc:  # set over a service's layers that the defaults alone do not meet
        return None, {}, "; ".join(f"{p}: {m}" for p, m in exc.errors)
    return profile, layer_sources(layers), None


@profile_app.command("show")
def show_cmd(tenant: str = TenantOpt, url: Optional[str] = UrlOpt, as_json: bool = JsonOpt) -> None:
    """The tenant's stored profile (who set it, when) and the profile it makes over the core's
    defaults. A running service adds its plugins' and configuration's layers under it:
    ``GET /v1/profile`` shows the profile in force there."""
    store = _open(url)
    try:
        stored = _guarded(lambda: store.tenant_profile(tenant), url)
    finally:
        store.close()
    profile, sources, problem = _effective(stored)
    if as_json:
        out.print_json(json.dumps({
            "business": tenant, "stored": None if stored is None else stored.model_dump(mode="json"),
            "profile": profile, "sources": sources, "problem": problem}))
        return
    if stored is None:
        out.print(f"no stored profile for tenant {escape(tenant)}: the defaults apply (and a service's plugins "
                  "and configuration)")
    else:
        out.print(f"tenant {escape(tenant)}: stored profile revision {stored.revision}, set by "
                  f"{escape(stored.updated_by)} at {stored.updated_at:%Y-%m-%d %H:%M:%S} UTC")
    if problem:
        out.print(f"over the core's defaults alone it does not validate: {escape(problem)}")
        return
    table = Table("key", "value", "source")
    flat = _flatten(profile or {})
    for key, value in flat.items():
        table.add_row(key, escape(json.dumps(value)), sources.get(key, "default"))
    out.print(table)


def _flatten(profile: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in profile.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


@profile_app.command("set")
def set_cmd(file: str = typer.Argument(..., help="The profile: a JSON or YAML file (- for JSON on stdin)."),
            tenant: str = TenantOpt, url: Optional[str] = UrlOpt, by: Optional[str] = ByOpt,
            as_json: bool = JsonOpt) -> None:
    """Store FILE as the tenant's profile (a partial profile: the keys it sets; replaces what was
    stored). An unknown key or a bad value exits 2 naming it; nothing is stored."""
    from ..memory.profiles import validate_layer
    from ..profile import ProfileError

    layer = _read_layer(file)
    try:
        validate_layer(layer)
    except ProfileError as exc:
        fail("; ".join(f"{path}: {msg}" for path, msg in exc.errors))
    store = _open(url, existing=False)
    try:
        record = _guarded(lambda: store.set_tenant_profile(tenant, layer, updated_by=by or _default_by()), url)
    finally:
        store.close()
    if as_json:
        out.print_json(record.model_dump_json())
    else:
        keys = ", ".join(_flatten(record.profile)) or "no keys"
        out.print(f"stored profile revision {record.revision} for tenant {escape(tenant)} ({escape(keys)})")


@profile_app.command("clear")
def clear_cmd(tenant: str = TenantOpt, url: Optional[str] = UrlOpt, by: Optional[str] = ByOpt) -> None:
    """Clear the tenant's stored profile (the layers under it apply again)."""
    store = _open(url)
    try:
        cleared = _guarded(lambda: store.delete_tenant_profile(tenant, updated_by=by or _default_by()), url)
    finally:
        store.close()
    if cleared:
        out.print(f"cleared the stored profile of tenant {escape(tenant)}")
    else:
        out.print(f"no stored profile for tenant {escape(tenant)}: nothing changed")


def register(app: typer.Typer) -> None:
    app.add_typer(profile_app, name="profile")
