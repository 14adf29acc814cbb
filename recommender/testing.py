"""Helpers for testing a plugin on its own, as the bundled plugins' tests do.

    from recommender.testing import import_plugin, plugin_recommender, sqlite_store, withheld_reasons

    plugin = import_plugin("recommender_my_trade", __file__)   # installed or not
    rec = plugin_recommender(plugin)                          # only this plugin, no core packs
    with sqlite_store(tmp_path) as store:                      # the real embedded store
        rec.recommend(context, store=store)

See ``docs/plugins.md`` ("Testing a plugin in isolation").
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterator

from .core import Recommender

if TYPE_CHECKING:
    from .memory import Store

__all__ = ["import_plugin", "plugin_recommender", "sqlite_store", "withheld_reasons"]


def import_plugin(module: str, test_file: str | Path) -> ModuleType:
    """Import a plugin's package: installed, or else from the source folder that holds the
    ``tests/`` folder of ``test_file`` (so a plugin's tests run before it is pip-installed)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
    root = str(Path(test_file).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module(module)


def plugin_recommender(*plugins: Any, core_packs: bool = False, **kwargs: Any) -> Recommender:
    """A recommender with only ``plugins``: nothing installed is loaded, and the shipped core
    packs only with ``core_packs=True`` (to check that a plugin loads next to them)."""
    return Recommender(None if core_packs else [], autoload=False, plugins=list(plugins), **kwargs)


@contextlib.contextmanager
def sqlite_store(folder: str | Path, **kwargs: Any) -> Iterator["Store"]:
    """The real embedded memory store, migrated, in a file under ``folder``; closed afterwards."""
    from .memory import open_store

    store = open_store(f"sqlite:///{Path(folder) / 'memory.db'}", upgrade=True, **kwargs)
    try:
        yield store
    finally:
        store.close()


def withheld_reasons(result: Any) -> dict[str, str]:
    """Gesture id -> why it was not offered (withheld or awaiting approval)."""
    return {w.gesture_id: w.reason for w in [*result.withheld, *result.needs_approval]}
