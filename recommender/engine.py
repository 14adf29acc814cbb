"""The only module that talks to durable-rules.

We drive the C engine (``durable_rules_engine``) directly rather than through
``durable.engine.Host``: the Host starts timer threads that run actions on other threads
(measured: wrong results and use-after-free crashes), and its per-action Python layer (a
closure, a JSON parse and a state write per fired rule) costs more than the Rete match.
Per request and per unit we:

1. take a sid from a pool (a sid is used by one request at a time, so threads never share
   engine state), and assert the context as a *fact* (``assert_fact`` fires every matching
   rule; ``post`` would fire only one);
2. drain the fired actions: each action's name is read from the head of the message JSON,
   with no parsing of the rest;
3. retract the same fact, so nothing survives the call, and return the sid to the pool.

Retiring a matcher (hot reload) asserts a janitor fact on each pooled sid before
``delete_state`` (deleting a state in which no action ever ran crashes the engine), then
deletes the rulesets, so memory stays flat across reloads.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Callable, Iterable, Sequence

import durable_rules_engine as _dre

from .compiler import Unit, encode_value
from .errors import EngineError

__all__ = ["Matcher"]

_matcher_ids = itertools.count()
_NOT_HANDLED, _OBSERVED = 1, 2


def _error_code(exc: BaseException) -> int | None:
    try:
        return int(str(exc).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


class _LiveUnit:
    __slots__ = ("unit", "handle", "payloads", "encoders")

    def __init__(self, unit: Unit, name: str):
        self.unit = unit
        try:
            self.handle = _dre.create_ruleset(name, unit.definition_json())
        except _dre.error as exc:
            raise EngineError(f"durable-rules refused ruleset {name}: {exc}") from exc
        self.payloads = {name: payload for name, payload in unit.actions.items()}
        # (json prefix, context path, kind) with the key already quoted
        self.encoders = [(f'"{key}":', path, kind) for key, path, kind in unit.fields]


_KIND_OK: dict[str, Callable[[Any], bool]] = {
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
    "any": lambda v: True,  # a key under an open map that rules only test with `exists`
}


class Matcher:
    """Evaluates compiled units against flat ``{path: value}`` views of a context.

    Thread-safe without a lock: each call owns its sid, and the C calls hold the GIL.
    """

    def __init__(self, units: Sequence[Unit]):
        self._id = next(_matcher_ids)
        self._units = [_LiveUnit(u, f"m{self._id}.{u.name}") for u in units]
        self._free: list[str] = []
        self._seq = itertools.count()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._closed = False
        self.fields = sorted({path for u in units for _, path, _ in u.fields} - {"$s"})

    @property
    def unit_count(self) -> int:
        return len(self._units)

    @property
    def rule_count(self) -> int:
        return sum(len(u.payloads) for u in self._units)

    def match(self, values: Callable[[str], Any]) -> tuple[list[Any], list[str]]:
        """Payloads of every fired action, and the paths whose value had the wrong type.

        ``values(path)`` returns the context value at a path, or None when absent.
        """
        if self._closed:
            raise EngineError("this ruleset version was retired (hot reload); use the current one")
        try:
            sid = self._free.pop()
        except IndexError:
            sid = f"s{next(self._seq)}"
        self._in_flight += 1
        fired: list[Any] = []
        mismatched: list[str] = []
        healthy = True
        try:
            for live in self._units:
                parts = ['{"sid":"', sid, '"']
                for prefix, path, kind in live.encoders:
                    v = values(path)
                    if v is None:
                        continue
                    if not _KIND_OK[kind](v):
                        if path not in mismatched:
                            mismatched.append(path)
                        continue
                    parts.append(",")
                    parts.append(prefix)
                    parts.append(encode_value(v))
                parts.append("}")
                healthy = self._run(live, sid, "".join(parts), fired)
                if not healthy:
                    break
        finally:
            self._in_flight -= 1
            if healthy:
                self._free.append(sid)
        return fired, mismatched

    def _run(self, live: _LiveUnit, sid: str, fact: str, fired: list[Any]) -> bool:
        handle = live.handle
        try:
            result = _dre.assert_fact(handle, fact)
        except _dre.error as exc:
            # Unreachable from a validated pack and context (the compiler and the context
            # model keep every input inside the engine's limits); never reuse this sid.
            raise EngineError(f"durable-rules rejected a fact (error {_error_code(exc)})") from exc
        if result[0] not in (_NOT_HANDLED, _OBSERVED):
            state = result[1]
            started = _dre.start_action_for_state(handle, state)
            if started:
                payloads = live.payloads
                msg = started[1]
                while msg:
                    fired.append(payloads[msg[2:msg.index('"', 2)]])
                    msg = _dre.complete_and_start_action(handle, state)
        _dre.retract_fact(handle, fact)
        # OBSERVED means the sid still held a fact: a bug, so the sid is never reused.
        return result[0] != _OBSERVED

    def retire(self, timeout: float = 10.0) -> None:
        """Free the engine memory of this matcher once in-flight calls have finished."""
        import time

        with self._lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + timeout
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.005)
        sids = list(self._free)
        self._free.clear()
        for live in self._units:
            for sid in sids:
                fact = '{"sid":"%s","j":1}' % sid
                try:
                    result = _dre.assert_fact(live.handle, fact)
                    started = _dre.start_action_for_state(live.handle, result[1])
                    if started:
                        while _dre.complete_and_start_action(live.handle, result[1]):
                            pass
                    _dre.retract_fact(live.handle, fact)
                    _dre.delete_state(live.handle, sid)
                except _dre.error:
                    pass
            _dre.delete_ruleset(live.handle)

    def __del__(self) -> None:  # best effort: free C memory when a matcher is dropped
        try:
            if not self._closed and not self._in_flight:
                self.retire(timeout=0)
        except Exception:
            pass


def matcher_from(items: Iterable[tuple[Any, Sequence[Any]]], prefix: str = "u") -> Matcher:
    from .compiler import compile_branches

    return Matcher(compile_branches(items, prefix))
