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
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import pluggy
from pydantic import BaseModel, ConfigDict, Field

from . import hookspecs
from .errors import PluginError, PluginLoadError
from .results import PluginWarning

__all__ = ["hookimpl", "PluginHost", "PluginInfo", "PluginConfig", "Step", "ENTRY_POINT_GROUP", "DEFAULT_PLUGINS"]

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

    def select(self, business_id: str, vertical: str | None, available: Sequence[str],
               serves: Mapping[str, list[str] | None] | None = None) -> list[str]:
        """The plugins for a business. Without a configured entry for it, a plugin that
        declares its verticals (``serves``) applies only to businesses of those verticals."""
        if business_id in self.businesses:
            wanted = self.businesses[business_id]
        elif vertical is not None and vertical in self.verticals:
            wanted = self.verticals[vertical]
        elif self.default is not None:
            wanted = self.default
        else:
            declared = serves or {}
            return [name for name in available if declared.get(name) is None or vertical in (declared[name] or ())]
        return [name for name in available if name in wanted]


@dataclass
class PluginInfo:
    name: str
    source: str  # builtin | entrypoint | folder | explicit
    version: str | None = None
    path: str | None = None
    hooks: list[str] = field(default_factory=list)
    #: the verticals the plugin declares it serves (None: every business)
    verticals: list[str] | None = None


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
        self._pool_lock = threading.Lock()
        #: (plugin, hook) -> calls in a row that finished within the time limit (a miss resets it)
        self._streak: dict[tuple[str, str], int] = {}
        #: (plugin, hook) -> calls in a row needed before its calls run inline (1; more after a miss)
        self._needed: dict[tuple[str, str], int] = {}
        #: (plugin, hook) that run inline, under the watchdog (see :meth:`chain`)
        self._inline_ok: set[tuple[str, str]] = set()
        #: id(steps) -> (steps, the (plugin, hook) of its timed steps): see :meth:`_timed_keys`
        self._plans: dict[int, tuple[Sequence[Step], frozenset[tuple[str, str]]]] = {}
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
        self._plans.clear()  # which steps are timed depends on the plugins' sources
        hooks = sorted(h.name for h in self.pm.get_hookcallers(self.pm.get_plugin(name)) or [])
        self.infos[name] = PluginInfo(name=name, source=source, version=version, path=path, hooks=hooks)
        self.infos[name].verticals = self._verticals(name)
        return True

    def _verticals(self, name: str) -> list[str] | None:
        """What the plugin's ``recommender_declare_verticals`` says (None: every business)."""
        hook = "recommender_declare_verticals"
        for _, fn, args in self.impls(hook, [name]):
            ok, got = self.call(name, hook, fn, args, {}, self.load_warnings)
            if not ok or got is None:
                return None
            if isinstance(got, (list, tuple)) and all(isinstance(v, str) and v for v in got):
                return list(got)
            self._warn(name, hook, f"malformed data: expected a list of vertical names, got {got!r}")
        return None

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
             kwargs: Mapping[str, Any], warnings: list[PluginWarning]) -> tuple[bool, Any]:
        """Call one implementation with only the arguments it asks for; never raises (except
        in strict mode). Time limits are :meth:`chain`'s."""
        args = {k: kwargs[k] for k in argnames}
        try:
            return True, fn(**args)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            log.warning("plugin %s failed in %s: %s", plugin, hook, message)
            if self.strict:
                raise PluginError(plugin, hook, message) from exc
            warnings.append(PluginWarning(plugin=plugin, hook=hook, message=message))
            return False, None

    def chain(self, steps: Sequence[Step], state: Any, warnings: list[PluginWarning]) -> Any:
        """Fold ``state`` through ``steps`` (``step.run(state, warnings)`` returns the next
        state); each plugin step under the time limit, our own steps (``plugin`` None) without.

        A plugin step past the limit is reported and skipped: the chain goes on from the state
        before it, and the late step's result and warnings are dropped. A plugin step must
        therefore return a new state, never change the one it was given.

        Where the steps run: a hook whose calls have finished within the limit before (once;
        after a miss, :data:`RETRUST` times in a row) runs inline, on the caller's thread,
        watched by one watchdog thread (:class:`_Watchdog`): a request whose hooks are all
        trusted pays no thread hand-off. Otherwise the whole chain runs on one worker thread
        (one hand-off however many hooks it meets), and a late step is cut off there: the
        chain goes on at once on a fresh worker, while the late step keeps its thread until it
        returns. An inline hook that runs late cannot be cut off (the caller's thread is
        running it): the watchdog reports it (a warning on the ``recommender.plugins``
        logger) and moves the hook back to workers as soon as it passes the limit, so no other
        request runs it inline; the request it holds goes on without it once it returns.
        """
        if not self.timed(steps):
            return _fold(steps, state, warnings)
        if self.trusted(steps):
            return self._inline(steps, state, warnings)
        sup = _Supervisor(self, steps, state, warnings)
        future = sup.submit()
        while True:
            try:
                future.result(timeout=sup.wait())  # a step's exception (strict mode) is raised here
            except concurrent.futures.TimeoutError:
                if sup.late():
                    if not sup.pending:
                        return sup.state
                    future = sup.submit()
                continue
            return sup.collect()

    async def achain(self, steps: Sequence[Step], state: Any, warnings: list[PluginWarning]) -> Any:
        """:meth:`chain` for a caller on an event loop: the loop waits without blocking (the
        worker thread is the only hand-off); without a time limit the steps run right here.

        Timed hooks always run on a worker here, trusted or not: a hook that hangs inline would
        stall the event loop and every request on it."""
        import asyncio

        if not self.timed(steps):
            return _fold(steps, state, warnings)
        sup = _Supervisor(self, steps, state, warnings)
        future = sup.submit()
        while True:
            done, _ = await asyncio.wait({asyncio.wrap_future(future)}, timeout=sup.wait())
            if not done:
                if sup.late():
                    if not sup.pending:
                        return sup.state
                    future = sup.submit()
                continue
            future.result()  # a step's exception (strict mode) is raised here
            return sup.collect()

    def trusted(self, steps: Sequence[Step]) -> bool:
        """Whether every timed step's hook may run inline (see :meth:`chain`)."""
        return self._timed_keys(steps) <= self._inline_ok

    def _inline(self, steps: Sequence[Step], state: Any, warnings: list[PluginWarning]) -> Any:
        """The chain on the caller's thread, each plugin step watched (see :meth:`chain`)."""
        limit = self.timeout
        watchdog = _watchdog()
        for plugin, hook, run, when in steps:
            if when is not None and not when(state):
                continue
            if plugin is None:
                state = run(state, warnings)
                continue
            own: list[PluginWarning] = []
            call = watchdog.enter(self, plugin, hook, limit)
            try:
                new = run(state, own)
            finally:
                took = watchdog.leave(call)
            if took > limit:  # its result is dropped, as on a worker
                if watchdog.claim(call):  # (unless the watchdog has already moved it)
                    self.missed(plugin, hook)
                self.warn(plugin, hook, f"took longer than {limit:g} s", warnings)
                continue
            if own:
                warnings.extend(own)
            state = new
        return state

    def on_time(self, plugin: str, hook: str) -> None:
        """A call of ``plugin``'s ``hook`` finished within the limit (on a worker)."""
        key = (plugin, hook)
        streak = self._streak[key] = self._streak.get(key, 0) + 1
        if streak >= self._needed.get(key, 1):
            self._inline_ok.add(key)

    def missed(self, plugin: str, hook: str) -> None:
        """A call of ``plugin``'s ``hook`` ran past the limit: its calls run on workers until
        they have finished within it :data:`RETRUST` times in a row (ten times as many after
        each further miss)."""
        key = (plugin, hook)
        self._inline_ok.discard(key)
        self._streak[key] = 0
        needed = self._needed.get(key, 1)
        self._needed[key] = min(RETRUST if needed < RETRUST else needed * 10, RETRUST * 10_000)

    def timed(self, steps: Sequence[Step]) -> bool:
        """Whether ``steps`` run under the time limit: a limit is set and a plugin step is not
        one of our built-in plugins'."""
        return bool(self.timeout) and bool(self._timed_keys(steps))

    def _timed_keys(self, steps: Sequence[Step]) -> frozenset[tuple[str, str]]:
        """The ``(plugin, hook)`` of the steps that run under the time limit, worked out once
        per list of steps: the pipeline hands the same list for every request of a business
        (a list of steps is never changed once handed over). The list is held, so its id is
        not reused while it is remembered."""
        hit = self._plans.get(id(steps))
        if hit is not None and hit[0] is steps:
            return hit[1]
        keys = frozenset((st.plugin, st.hook) for st in steps if st.plugin is not None and self._timed(st.plugin))
        if len(self._plans) >= 256:
            self._plans.clear()
        self._plans[id(steps)] = (steps, keys)
        return keys

    def _worker_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    # Idle threads cost little, and a hook that hangs keeps its thread: room for a few.
                    self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="plugin")
        return self._pool

    def _timed(self, plugin: str) -> bool:
        """Whether ``plugin``'s hooks run under the time limit (our built-in ones do not)."""
        info = self.infos.get(plugin)
        return info is None or info.source != "builtin"

    def warn(self, plugin: str, hook: str, message: str, warnings: list[PluginWarning]) -> None:
        log.warning("plugin %s failed in %s: %s", plugin, hook, message)
        if self.strict:
            raise PluginError(plugin, hook, message)
        warnings.append(PluginWarning(plugin=plugin, hook=hook, message=message))


#: After a miss, the calls in a row a hook must finish within its limit (on workers) before it
#: runs inline again; ten times as many after each further miss (see :meth:`PluginHost.chain`).
RETRUST = 100


class _Call:
    """A hook call running inline, as the watchdog sees it."""

    __slots__ = ("host", "plugin", "hook", "limit", "start", "reported")

    def __init__(self, host: PluginHost, plugin: str, hook: str, limit: float):
        self.host, self.plugin, self.hook, self.limit = host, plugin, hook, limit
        self.reported = False
        self.start = time.monotonic()


class _Watchdog:
    """One thread per process that watches the hook calls running inline.

    A call is watched by putting it in a dict and taking it out (no lock, no thread woken):
    that is all an inline hook costs. The thread looks every :attr:`TICK` seconds while calls
    come (and sleeps when none has come for a second); a call past its limit is reported on
    the ``recommender.plugins`` logger and its hook is moved back to workers at once
    (:meth:`PluginHost.missed`), so other requests stop running it inline while it hangs.
    """

    TICK = 0.05

    def __init__(self) -> None:
        self.calls: dict[int, _Call] = {}
        self._awake = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._claim_lock = threading.Lock()

    def enter(self, host: PluginHost, plugin: str, hook: str, limit: float) -> _Call:
        call = _Call(host, plugin, hook, limit)
        self.calls[id(call)] = call  # (its id is not reused while it is watched: the dict holds it)
        if not self._awake.is_set():
            self._wake()
        return call

    def leave(self, call: _Call) -> float:
        """Stop watching a call; how long it took, in seconds."""
        took = time.monotonic() - call.start
        self.calls.pop(id(call), None)
        return took

    def claim(self, call: _Call) -> bool:
        """Whether the caller is the first to see ``call`` late (and so reports it)."""
        with self._claim_lock:
            if call.reported:
                return False
            call.reported = True
            return True

    def _wake(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._watch, name="plugin-watchdog", daemon=True)
                self._awake.set()
                self._thread.start()
            else:
                self._awake.set()

    def _watch(self) -> None:
        idle_since = time.monotonic()
        while True:
            time.sleep(self.TICK)
            now = time.monotonic()
            calls = list(self.calls.copy().values())
            if calls:
                idle_since = now
            for call in calls:
                if not call.reported and now - call.start > call.limit and self.claim(call):
                    call.host.missed(call.plugin, call.hook)
                    log.warning("plugin %s in %s: running inline for longer than %g s; its result will be dropped "
                                "and its calls now run on worker threads", call.plugin, call.hook, call.limit)
            if not calls and now - idle_since > 1.0:
                self._awake.clear()
                if not self.calls:  # a call that came meanwhile found the event still set
                    self._awake.wait()
                idle_since = time.monotonic()


_WATCHDOG = _Watchdog()  # its thread starts with the first inline call


def _watchdog() -> _Watchdog:
    return _WATCHDOG


def _forget_watchdog() -> None:  # in a forked child: the parent's thread does not exist there
    global _WATCHDOG
    _WATCHDOG = _Watchdog()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_watchdog)


class Step(NamedTuple):
    """One step of :meth:`PluginHost.chain`: a plugin's hook call, or our own work (``plugin``
    None: no time limit). With ``when``, the step runs only if ``when(state)`` is true: a step
    with nothing to do is passed over before it is timed or watched."""

    plugin: str | None
    hook: str
    run: Callable[[Any, list[PluginWarning]], Any]
    when: Callable[[Any], bool] | None = None


def _fold(steps: Sequence[Step], state: Any, warnings: list[PluginWarning]) -> Any:
    for step in steps:
        if step.when is None or step.when(state):
            state = step.run(state, warnings)
    return state


class _Supervisor:
    """What :meth:`PluginHost.chain` and :meth:`PluginHost.achain` share: runs of the steps
    on worker threads, how long to wait, and what to do about a late step."""

    def __init__(self, host: PluginHost, steps: Sequence[Step], state: Any, warnings: list[PluginWarning]):
        self.host, self.pending, self.state, self.warnings = host, list(steps), state, warnings
        self.run: _ChainRun | None = None
        self.since = 0.0  # when the run was submitted

    def submit(self) -> concurrent.futures.Future[None]:
        self.run = _ChainRun(self.pending, self.state, self.host)
        self.since = time.monotonic()
        return self.host._worker_pool().submit(self.run.go)

    def wait(self) -> float:
        """Seconds until the run would be late: its plugin step running now, or the run itself
        while no worker has taken it (a poll interval during our own steps); plus 1 ms."""
        assert self.run is not None
        limit = self.host.timeout
        started = self.run.started if self.run.begun else self.since
        return (limit if started == math.inf else max(0.0, started + limit - time.monotonic())) + 0.001

    def late(self) -> bool:
        """After a wait ran out: whether the step running now is late. If so it is given up
        and reported, and the caller submits the rest (``pending``) from the state before it.

        A run no worker took within the limit (every worker busy, e.g. with hung hooks) is
        withdrawn and finished here: our own steps run on the caller's thread, the plugin
        steps are skipped and reported.
        """
        assert self.run is not None
        limit = self.host.timeout
        if not self.run.begun:
            if time.monotonic() - self.since < limit or not self.run.withdraw():
                return False
            reported = set()
            for step in self.pending:
                if step.when is not None and not step.when(self.state):
                    continue
                if step.plugin is None:
                    self.state = step.run(self.state, self.warnings)
                elif (step.plugin, step.hook) not in reported:
                    reported.add((step.plugin, step.hook))
                    self.host.warn(step.plugin, step.hook, f"skipped: no plugin worker was free within {limit:g} s",
                                   self.warnings)
            self.pending = []
            return True
        gone = self.run.give_up(limit)
        if gone is None:
            return False  # not late, or it has just finished: wait on
        self.warnings.extend(gone.warnings)
        step = self.pending[gone.index]
        if step.plugin is not None:
            self.host.missed(step.plugin, step.hook)
        self.host.warn(step.plugin or "?", step.hook, f"took longer than {self.host.timeout:g} s", self.warnings)
        self.state, self.pending = gone.state, self.pending[gone.index + 1:]
        return True

    def collect(self) -> Any:
        """The final state of a run that finished, its warnings added."""
        assert self.run is not None
        self.warnings.extend(self.run.warnings)
        return self.run.state


@dataclass
class _Late:
    index: int  # the step that ran over
    state: Any  # the state before it
    warnings: list[PluginWarning]  # from the steps before it


class _ChainRun:
    """One attempt at a chain of hook steps on a worker thread (see :meth:`PluginHost.chain`)."""

    def __init__(self, steps: Sequence[Step], state: Any, host: PluginHost | None = None):
        self.steps, self.state, self.host = steps, state, host
        self.index = 0
        self.started = math.inf  # when the plugin step running now began (inf: none is)
        self.begun = False  # a worker has taken the run
        self.warnings: list[PluginWarning] = []
        self._lock = threading.Lock()
        self._abandoned = False

    def go(self) -> None:
        with self._lock:
            if self._abandoned:
                return
            self.begun = True
        for i, step in enumerate(self.steps):
            with self._lock:
                if self._abandoned:
                    return
                state, self.index = self.state, i
                if step.when is not None and not step.when(state):
                    self.started = math.inf  # passed over, as our own steps are never late
                    continue
                self.started = time.monotonic() if step.plugin is not None else math.inf
            own: list[PluginWarning] = []
            try:
                new = step.run(state, own)
            except BaseException:
                if self._abandoned:
                    return  # nobody waits for this run any more
                raise
            took = time.monotonic() - self.started  # only this thread sets ``started``
            with self._lock:
                if self._abandoned:
                    return
                self.state = new
                self.warnings.extend(own)
            if step.plugin is not None and self.host is not None and took <= self.host.timeout:
                self.host.on_time(step.plugin, step.hook)
        with self._lock:
            self.index = len(self.steps)

    def withdraw(self) -> bool:
        """Abandon the run if no worker has taken it yet."""
        with self._lock:
            if self.begun:
                return False
            self._abandoned = True
            return True

    def give_up(self, limit: float) -> _Late | None:
        """Abandon the run if its current step is past ``limit``; what the caller resumes from."""
        with self._lock:
            if self.index >= len(self.steps) or time.monotonic() - self.started < limit:
                return None
            self._abandoned = True
            return _Late(self.index, self.state, list(self.warnings))
