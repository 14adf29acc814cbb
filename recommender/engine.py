"""The only module that talks to durable-rules.

We drive the C engine (``durable_rules_engine``) directly rather than through
``durable.engine.Host``: the Host starts timer threads that run actions on other threads
(measured: wrong results and use-after-free crashes), and its per-action Python layer (a
closure, a JSON parse and a state write per fired rule) costs more than the Rete match.
Per request we:

1. take a sid from a pool (a sid is used by one request at a time, so threads never share
   engine state), read and encode each field the rules test once, and build each unit's
   fact from those pieces (units that test the same fields share one fact string);
2. assert the context as a *fact* in each unit (``assert_fact`` fires every matching rule;
   ``post`` would fire only one). The fact carries a fixed ``"id"``, so the engine does not
   hash its content and the retract below is a two-key message;
3. if a rule fired, drain the fired actions (each action's name is read from the head of the
   message JSON, with no parsing of the rest) and retract the fact, so nothing survives the
   call. A fact that reached no rule ("not handled") was never stored: nothing to retract;
4. return the sid to the pool.

Retiring a matcher (hot reload) asserts a janitor fact on each pooled sid before
``delete_state`` (deleting a state in which no action ever ran crashes the engine), then
deletes the rulesets, so memory stays flat across reloads.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from typing import Any, Callable, Iterable, Sequence

import durable_rules_engine as _dre

from .compiler import Unit, _encode_str, compile_branches, encode_value
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
    __slots__ = ("unit", "handle", "payloads", "encoders", "spec_ids")

    def __init__(self, unit: Unit, name: str):
        self.unit = unit
        try:
            self.handle = _dre.create_ruleset(name, unit.definition_json())
        except _dre.error as exc:
            raise EngineError(f"durable-rules refused ruleset {name}: {exc}") from exc
        # what each action reports: its branch's payload, or all of them for branches with
        # the same tests (one shared action)
        self.payloads: dict[str, tuple[Any, ...]] = {name: (payload,) for name, payload in unit.actions.items()}
        for name, more in unit.shared.items():
            self.payloads[name] = (unit.actions[name], *more)
        # (json prefix, context path, kind) with the key already quoted
        self.encoders = [(f'"{key}":', path, kind) for key, path, kind in unit.fields]
        self.spec_ids: tuple[int, ...] = ()


_KIND_OK: dict[str, Callable[[Any], bool]] = {
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
    "any": lambda v: True,  # a key under an open map that rules only test with `exists`
}
_FID = 1  # the fixed message id of every fact we assert


_float_repr = float.__repr__


class Matcher:
    """Evaluates compiled units against flat ``{path: value}`` views of a context.

    Thread-safe without a lock: each call owns its sid, and the C calls hold the GIL.
    """

    def __init__(self, units: Sequence[Unit]):
        self._id = next(_matcher_ids)
        self._units = [_LiveUnit(u, f"m{self._id}.{u.name}") for u in units]
        self._free: list[str] = []
        self._heads: dict[str, tuple[str, str]] = {}
        self._seq = itertools.count()
        self._calls: set[object] = set()  # calls in flight
        self._lock = threading.Lock()
        self._closed = False
        #: the context paths the rules test; ``match_row`` takes their values in this order
        self.fields = sorted({path for u in units for _, path, _ in u.fields} - {"$s"})
        index = {p: i for i, p in enumerate(self.fields)}
        # Every (fact key, path, kind) once; each unit refers to its own by index.
        specs: dict[tuple[str, str, str], int] = {}
        for live in self._units:
            live.spec_ids = tuple(specs.setdefault(f, len(specs)) for f in live.unit.fields)
        self._specs = [(f'"{key}":', index[path], kind, path) for key, path, kind in specs]
        # units grouped by the fields they test: one fact string per group and request
        groups: dict[tuple[int, ...], list[_LiveUnit]] = {}
        for live in self._units:
            groups.setdefault(live.spec_ids, []).append(live)
        everything = tuple(range(len(specs)))
        self._groups = [(None if ids == everything else ids, [(lv.handle, lv) for lv in lives])
                        for ids, lives in groups.items()]

    @property
    def unit_count(self) -> int:
        return len(self._units)

    @property
    def rule_count(self) -> int:
        return sum(len(u.unit.actions) + sum(map(len, u.unit.shared.values())) for u in self._units)

    def match(self, values: Callable[[str], Any]) -> tuple[list[Any], list[str]]:
        """Payloads of every fired action, and the paths whose value had the wrong type.

        ``values(path)`` returns the context value at a path, or None when absent.
        """
        return self.match_row([values(p) for p in self.fields])

    def match_row(self, row: Sequence[Any]) -> tuple[list[Any], list[str]]:
        """Like :meth:`match`, given the values of :attr:`fields`, in that order."""
        # Register the call *before* checking for retirement: retire() sets _closed, then
        # waits for registered calls, so no call can start on a ruleset being deleted.
        # (set.add and set.discard are atomic under the GIL: no lock needed.)
        token = object()
        calls = self._calls
        calls.add(token)
        try:
            if self._closed:
                raise EngineError("this ruleset version was retired (hot reload); use the current one")
            return self._match_row(row)
        finally:
            calls.discard(token)

    def _match_row(self, row: Sequence[Any]) -> tuple[list[Any], list[str]]:
        parts: list[str | None] = []
        add = parts.append
        mismatched: list[str] = []
        for prefix, pi, kind, path in self._specs:
            v = row[pi]
            if v is None:
                add(None)
                continue
            t = type(v)
            if t is float and kind == "number":
                r = _float_repr(v)
                add(prefix + (r.replace("e", ".0e", 1) if "e" in r and "." not in r else r))
            elif t is str and kind == "string":
                add(prefix + _encode_str(v))
            elif _KIND_OK[kind](v):
                add(prefix + encode_value(v))
            else:
                add(None)
                if path not in mismatched:
                    mismatched.append(path)
        try:
            sid = self._free.pop()
        except IndexError:
            sid = f"s{next(self._seq)}"
        heads = self._heads.get(sid)
        if heads is None:
            head = '{"sid":"%s","id":%d' % (sid, _FID)
            heads = self._heads[sid] = (head, head + "}")
        head, retract = heads
        fired: list[Any] = []
        healthy = True
        assert_fact = _dre.assert_fact
        try:
            for ids, lives in self._groups:
                if ids is None:
                    fact = ",".join([head, *[p for p in parts if p is not None]]) + "}"
                else:
                    fact = ",".join([head, *[p for p in map(parts.__getitem__, ids) if p is not None]]) + "}"
                for handle, live in lives:
                    try:
                        result = assert_fact(handle, fact)
                    except _dre.error as exc:
                        # Unreachable from a validated pack and context (the compiler and the
                        # context model keep every input inside the engine's limits).
                        self._forget(handle, retract)
                        raise EngineError(f"durable-rules rejected a fact (error {_error_code(exc)})") from exc
                    # Not handled: no rule was reached, so the fact was not even stored.
                    if result[0] != _NOT_HANDLED and not self._drain(live, result, fact, retract, fired):
                        healthy = False
        finally:
            if healthy:
                self._free.append(sid)
        return fired, mismatched

    def _drain(self, live: _LiveUnit, result: tuple[int, int], fact: str, retract: str,
               fired: list[Any]) -> bool:
        """Collect the fired actions and retract the fact; False if the sid must not be reused."""
        handle = live.handle
        healthy = True
        if result[0] == _OBSERVED:
            # The sid still held a fact: a bug. Drop the stale fact, evaluate this one once
            # more, and never reuse the sid.
            healthy = False
            self._forget(handle, retract)
            try:
                result = _dre.assert_fact(handle, fact)
            except _dre.error as exc:
                self._forget(handle, retract)
                raise EngineError(f"durable-rules rejected a fact (error {_error_code(exc)})") from exc
            if result[0] == _OBSERVED:
                raise EngineError("durable-rules kept a fact we retracted")
            if result[0] == _NOT_HANDLED:
                return healthy
        state = result[1]
        started = _dre.start_action_for_state(handle, state)
        if started:
            payloads = live.payloads
            complete = _dre.complete_and_start_action
            msg = started[1]
            while msg:
                fired.extend(payloads[msg[2:msg.index('"', 2)]])
                msg = complete(handle, state)
        _dre.retract_fact(handle, retract)
        return healthy

    @staticmethod
    def _forget(handle: int, retract: str) -> None:
        try:
            _dre.retract_fact(handle, retract)
        except _dre.error:
            pass

    def retire(self, timeout: float = 10.0) -> None:
        """Free the engine memory of this matcher once in-flight calls have finished."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + timeout
        while self._calls and time.monotonic() < deadline:
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
        # Not while the interpreter shuts down: the process's memory goes with it, and calls
        # made then can abort it (seen in the compiled build: "interpreter has no modules
        # dictionary" from the final garbage collection).
        if sys.is_finalizing():
            return
        try:
            if not self._closed and not self._calls:
                self.retire(timeout=0)
        except Exception:
            pass


def matcher_from(items: Iterable[tuple[Any, Sequence[Any]]], prefix: str = "u") -> Matcher:
    return Matcher(compile_branches(items, prefix))
