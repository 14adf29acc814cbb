"""Finding, registering, selecting and isolating plugins.

Discovery order (pytest's): built-ins, then installed entry points (group
``recommender``), then ``--plugins-dir`` modules, then explicit objects. Each source is
loaded one plugin at a time, so one broken plugin never stops the others; failures are
kept as :class:`~recommender.results.PluginWarning` (or raised with ``strict=True``).

Switches: ``RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD=1`` skips entry points;
``RECOMMENDER_DISABLED_PLUGINS=a,b`` blocks plugins by name.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import importlib.metadata
import importlib.util
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pluggy
from pydantic import BaseModel, ConfigDict, Field

from . import hookspecs
from .errors import PluginError, PluginLoadError
from .results import PluginWarning

__all__ = ["hookimpl", "PluginHost", "PluginInfo", "PluginConfig", "ENTRY_POINT_GROUP", "DEFAULT_PLUGINS"]

log = logging.getLogger("recommender.plugins")
ENTRY_POINT_GROUP = "recommender"
hookimpl = pluggy.HookimplMarker("recommender")
#: Built-in plugins, registered like any other (they cannot be blocked).
DEFAULT_PLUGINS = ("recommender.builtin.core_packs",)


class PluginConfig(BaseModel):
    """Which plugins apply to which business.

    ``businesses`` (by ``business.id``) wins over ``verticals`` (by ``business.vertical``),
    which wins over ``default``. With no matching entry and no ``default``, every loaded
    plugin applies (a single-business install needs no configuration).
    """

    model_config = ConfigDict(extra="forbid")

    businesses: dict[str, list[str]] = Field(default_factory=dict)
    verticals: dict[str, list[str]] = Field(default_factory=dict)
    default: list[str] | None = None

    def select(self, business_id: str, vertical: str | None, available: Sequence[str]) -> list[str]:
        if business_id in self.businesses:
            wanted = self.businesses[business_id]
        elif vertical is not None and vertical in self.verticals:
            wanted = self.verticals[vertical]
        elif self.default is not None:
            wanted = self.default
        else:
            return list(available)
        return [name for name in available if name in wanted]


@dataclass
class PluginInfo:
    name: str
    source: str  # builtin | entrypoint | folder | explicit
    version: str | None = None
    path: str | None = None
    hooks: list[str] = field(default_factory=list)


class PluginHost:
    """A plugin manager per :class:`Recommender` (never a global), with isolation."""

    def __init__(self, *, strict: bool = False, timeout: float = 0.5) -> None:
        self.pm = pluggy.PluginManager("recommender")
        self.pm.add_hookspecs(hookspecs)
        self.strict = strict
        self.timeout = timeout
        self.infos: dict[str, PluginInfo] = {}
        self.load_warnings: list[PluginWarning] = []
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        blocked = os.environ.get("RECOMMENDER_DISABLED_PLUGINS", "")
        self.blocked = {b.strip() for b in blocked.split(",") if b.strip()}

    # -- loading -------------------------------------------------------------------

    def _warn(self, plugin: str, hook: str, message: str) -> None:
        log.warning("plugin %s failed in %s: %s", plugin, hook, message)
        if self.strict:
            raise PluginError(plugin, hook, message)
        self.load_warnings.append(PluginWarning(plugin=plugin, hook=hook, message=message))

    def register(self, plugin: Any, name: str, source: str, version: str | None = None,
                 path: str | None = None) -> bool:
        """Register one plugin; on a validation error it is left out with a warning."""
        if isinstance(plugin, type):
            self._warn(name, "register", "a class was given; register an instance or a module (forgotten the ()?)")
            return False
        if name in self.blocked and source != "builtin":
            log.info("plugin %s is disabled by RECOMMENDER_DISABLED_PLUGINS", name)
            return False
        if self.pm.has_plugin(name) or name in self.infos:
            self._warn(name, "register", f"a plugin named {name!r} is already registered "
                                         f"(from {self.infos[name].source if name in self.infos else '?'})")
            return False
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            self._warn(name, "register", f"{exc} ({path or source})")
            return False
        except ValueError as exc:  # the same object already registered under another name
            self._warn(name, "register", f"{exc} ({path or source})")
            return False
        if not self._check(name, path or source):
            return False
        hooks = sorted(h.name for h in self.pm.get_hookcallers(self.pm.get_plugin(name)) or [])
        self.infos[name] = PluginInfo(name=name, source=source, version=version, path=path, hooks=hooks)
        return True

    def _check(self, name: str, where: str) -> bool:
        """Misspelled hook names are only caught by check_pending: leave such a plugin out."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(name=name)
            self._warn(name, "register", f"{exc} ({where})")
            return False
        return True

    def load_builtins(self) -> None:
        for modname in DEFAULT_PLUGINS:
            module = importlib.import_module(modname)
            self.register(module, modname.rsplit(".", 1)[1], "builtin", path=module.__file__)

    def load_entry_points(self) -> None:
        if os.environ.get("RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD"):
            return
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            version = getattr(dist, "version", None)
            if ep.name in self.blocked:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # one broken plugin never stops the others
                err = PluginLoadError(ep.name, f"entry point {ep.value}", f"{type(exc).__name__}: {exc}")
                self._fail_load(err)
                continue
            self.register(plugin, ep.name, "entrypoint", version=version, path=ep.value)

    def load_folder(self, folder: str | Path) -> None:
        path = Path(folder)
        if not path.is_dir():
            self._fail_load(PluginLoadError(str(path), "--plugins-dir", "not a folder"))
            return
        for file in sorted(path.glob("*.py")):
            if file.name.startswith("_"):
                continue
            name = file.stem
            modname = f"recommender_dropin_{abs(hash(str(file.resolve())))}_{name}"
            try:
                spec = importlib.util.spec_from_file_location(modname, file)
                assert spec and spec.loader
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            except SyntaxError as exc:
                self._fail_load(PluginLoadError(name, f"{file}:{exc.lineno}", f"syntax error: {exc.msg}"))
                continue
            except Exception as exc:
                self._fail_load(PluginLoadError(name, str(file), f"{type(exc).__name__}: {exc}"))
                continue
            self.register(module, name, "folder", path=str(file))

    def load_objects(self, plugins: Iterable[Any]) -> None:
        for plugin in plugins:
            name = getattr(plugin, "__name__", None) or getattr(plugin, "name", None) or type(plugin).__name__
            self.register(plugin, str(name), "explicit")

    def _fail_load(self, err: PluginLoadError) -> None:
        log.warning("%s", err)
        if self.strict:
            raise err
        self.load_warnings.append(PluginWarning(plugin=err.plugin, hook="load", message=str(err)))

    # -- calling, one implementation at a time --------------------------------------

    def names(self) -> list[str]:
        return [name for name in self.infos]

    def impls(self, hook: str, selected: Iterable[str]) -> list[tuple[str, Callable[..., Any], list[str]]]:
        """``(plugin name, function, argnames)`` in pluggy's call order, for selected plugins."""
        chosen = set(selected)
        caller = getattr(self.pm.hook, hook)
        out = []
        for impl in reversed(caller.get_hookimpls()):
            if impl.plugin_name in chosen:
                out.append((impl.plugin_name, impl.function, list(impl.argnames)))
        return out

    def call(self, plugin: str, hook: str, fn: Callable[..., Any], argnames: list[str],
             kwargs: Mapping[str, Any], warnings: list[PluginWarning], *, timed: bool = False) -> tuple[bool, Any]:
        """Call one implementation with only the arguments it asks for; never raises
        (except in strict mode). ``timed`` runs it under the host's time limit."""
        args = {k: kwargs[k] for k in argnames}
        try:
            if timed and self.timeout and self.infos.get(plugin, PluginInfo(plugin, "")).source != "builtin":
                if self._pool is None:
                    self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="plugin")
                future = self._pool.submit(fn, **args)
                try:
                    return True, future.result(timeout=self.timeout)
                except concurrent.futures.TimeoutError:
                    raise TimeoutError(f"took longer than {self.timeout:g} s") from None
            return True, fn(**args)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            log.warning("plugin %s failed in %s: %s", plugin, hook, message)
            if self.strict:
                raise PluginError(plugin, hook, message) from exc
            warnings.append(PluginWarning(plugin=plugin, hook=hook, message=message))
            return False, None

    def warn(self, plugin: str, hook: str, message: str, warnings: list[PluginWarning]) -> None:
        log.warning("plugin %s failed in %s: %s", plugin, hook, message)
        if self.strict:
            raise PluginError(plugin, hook, message)
        warnings.append(PluginWarning(plugin=plugin, hook=hook, message=message))
