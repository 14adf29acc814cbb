"""Timed plugin hooks: inline once trusted (under the watchdog), on a worker until then or
after a miss (issue 17, item 2). See ``PluginHost.chain``."""

import asyncio
import logging
import threading
import time

import pytest

from recommender import PluginError, Recommender, hookimpl
from recommender import plugins as plugins_mod

from helpers import ctx, gesture, pack, rule

BASE = pack([gesture("core_thanks", "meet"), gesture("vip_g")],
            [rule("core", "interaction.issue exists", "core_thanks"), rule("vip", "customer.is_vip eq true", "vip_g")],
            "core")
HOOK = "recommender_enrich_context"


class Enricher:
    """Marks the customer a VIP; records the thread of each call; can be told to stall."""

    __name__ = "vip"

    def __init__(self) -> None:
        self.threads: list[int] = []
        self.stall = 0.0
        self.release = threading.Event()
        self.block = False

    @hookimpl
    def recommender_enrich_context(self, context):
        self.threads.append(threading.get_ident())
        if self.block:
            self.release.wait(10)
        elif self.stall:
            time.sleep(self.stall)
        return {"customer": {"is_vip": True}}


def build(plugin, **kw):
    return Recommender([], packs=[BASE], plugins=[plugin], autoload=False, **kw)


def test_a_hook_runs_on_a_worker_until_it_has_finished_in_time_then_inline():
    p = Enricher()
    rec = build(p, plugin_timeout=0.5)
    me = threading.get_ident()
    assert sorted(rec.recommend(ctx("x")).gesture_ids()) == ["core_thanks", "vip_g"]
    assert p.threads[-1] != me  # first call: on a worker
    for _ in range(3):
        res = rec.recommend(ctx("x"))
        assert sorted(res.gesture_ids()) == ["core_thanks", "vip_g"] and res.warnings == []
        assert p.threads[-1] == me  # trusted: inline, no hand-off
    assert ("vip", HOOK) in rec.host._inline_ok


def test_an_inline_hook_that_runs_late_is_dropped_reported_and_moved_to_workers(monkeypatch):
    monkeypatch.setattr(plugins_mod, "RETRUST", 2)
    p = Enricher()
    rec = build(p, plugin_timeout=0.1)
    rec.recommend(ctx("x"))
    rec.recommend(ctx("x"))
    me = threading.get_ident()
    assert p.threads[-1] == me
    p.stall = 0.3  # late, inline: the request waits for it, then drops what it returned
    res = rec.recommend(ctx("x"))
    assert p.threads[-1] == me and res.gesture_ids() == ["core_thanks"]
    assert [(w.plugin, w.hook) for w in res.warnings] == [("vip", HOOK)]
    assert "took longer than 0.1 s" in res.warnings[0].message
    assert ("vip", HOOK) not in rec.host._inline_ok
    # now on a worker, where a late call is cut off at the limit
    start = time.monotonic()
    res = rec.recommend(ctx("x"))
    assert time.monotonic() - start < 0.28 and p.threads[-1] != me
    assert res.gesture_ids() == ["core_thanks"] and "took longer than 0.1 s" in res.warnings[0].message
    # back in time: inline again after RETRUST calls in a row within the limit on a worker,
    # ten times as many after a second miss
    assert rec.host._needed[("vip", HOOK)] == 20
    p.stall = 0.0
    for _ in range(20):
        rec.recommend(ctx("x"))
        assert p.threads[-1] != me
    rec.recommend(ctx("x"))
    assert p.threads[-1] == me


def test_the_watchdog_reports_a_hung_inline_hook_while_it_hangs(caplog):
    p = Enricher()
    rec = build(p, plugin_timeout=0.1)
    rec.recommend(ctx("x"))  # trusted from now on
    p.block = True
    done: list = []
    caller = threading.Thread(target=lambda: done.append(rec.recommend(ctx("x"))))
    with caplog.at_level(logging.WARNING, logger="recommender.plugins"):
        caller.start()
        try:
            deadline = time.monotonic() + 5
            while ("vip", HOOK) in rec.host._inline_ok and time.monotonic() < deadline:
                time.sleep(0.01)
            assert ("vip", HOOK) not in rec.host._inline_ok and not done  # reported while still hanging
            # meanwhile other requests do not run it inline: they are cut off on a worker
            res = rec.recommend(ctx("x"))
            assert res.gesture_ids() == ["core_thanks"] and "took longer" in res.warnings[0].message
        finally:
            p.release.set()
            caller.join(5)
    assert "running inline for longer than 0.1 s" in caplog.text
    assert done and done[0].gesture_ids() == ["core_thanks"]
    assert [(w.plugin, w.hook) for w in done[0].warnings] == [("vip", HOOK)]


def test_inline_hooks_keep_strict_mode_and_plugin_timeout_zero_is_unwatched():
    class Raises:
        __name__ = "raises"
        fail = False

        @hookimpl
        def recommender_enrich_context(self, context):
            if self.fail:
                raise RuntimeError("CRM down")
            return None

    p = Raises()
    rec = build(p, strict=True)
    rec.recommend(ctx("x"))
    assert ("raises", HOOK) in rec.host._inline_ok
    p.fail = True
    with pytest.raises(PluginError, match="CRM down"):
        rec.recommend(ctx("x"))
    untimed = build(Enricher(), plugin_timeout=0)
    untimed.recommend(ctx("x"))
    assert untimed.host._inline_ok == set()  # no limit: inline from the start, nothing to watch


def test_the_event_loop_path_always_uses_a_worker():
    p = Enricher()
    rec = build(p)
    rec.recommend(ctx("x"))
    rec.recommend(ctx("x"))
    assert p.threads[-1] == threading.get_ident()

    async def go():
        return threading.get_ident(), await rec.arecommend(ctx("x"))

    loop_thread, res = asyncio.run(go())
    assert sorted(res.gesture_ids()) == ["core_thanks", "vip_g"] and p.threads[-1] != loop_thread


def test_a_watched_call_costs_no_thread_wake_up():
    """Entering and leaving the watchdog is two dict operations; its thread sleeps between
    ticks and parks when no call has come for a second."""
    dog = plugins_mod._Watchdog()
    host = build(Enricher()).host
    entry = dog.enter(host, "vip", HOOK, 0.5)
    assert len(dog.calls) == 1 and dog._thread is not None and dog._thread.daemon
    assert dog.leave(entry) >= 0 and dog.calls == {}
