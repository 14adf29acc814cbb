"""Helpers for testing a plugin on its own, as the bundled plugins' tests do.

    from recommender.testing import (entry_point_probe, import_plugin, offered_or_drawn, plugin_recommender,
                                     script_problems, sqlite_store, withheld_reasons)

    plugin = import_plugin("recommender_my_trade", __file__)   # installed or not
    rec = plugin_recommender(plugin)                          # only this plugin, no core packs
    with sqlite_store(tmp_path) as store:                      # the real embedded store
        result = rec.recommend(context, store=store)
    assert offered_or_drawn(result, "my_extra")                # an extra: listed, or not drawn today
    declared, found = entry_point_probe(PLUGIN_ROOT, tmp_path, monkeypatch)  # discovery, no pip
    assert script_problems(gesture.script, {"customer.name": "Ada"}) == []  # reads true, name or not

See ``docs/plugins.md`` ("Testing a plugin in isolation").
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from .core import Recommender

if TYPE_CHECKING:
    from .memory import Store

__all__ = ["import_plugin", "plugin_recommender", "sqlite_store", "withheld_reasons", "offered_or_drawn",
           "entry_point_probe", "script_problems"]


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


def offered_or_drawn(result: Any, gesture_id: str) -> bool:
    """Whether ``gesture_id`` is listed, or withheld only because the extras draw did not fall
    on this interaction (reason ``extras_rate``): an extra (tier ``exceed``) goes to about one
    interaction in ten (docs/advice.md), so a test of one asserts it was eligible, not lucky."""
    if gesture_id in result.gesture_ids():
        return True
    return any(w.gesture_id == gesture_id and w.reason == "extras_rate" for w in result.withheld)


def entry_point_probe(plugin_root: str | Path, folder: str | Path, monkeypatch: Any,
                      **kwargs: Any) -> tuple[dict[str, str], Recommender]:
    """Discovery through the entry points a plugin's ``pyproject.toml`` declares, without pip.

    Writes a throw-away dist-info under ``folder`` that carries each declared entry point as
    ``probe_<name>``, puts it on ``sys.path`` and blocks every really-installed plugin (one
    module under two names is refused), all through pytest's ``monkeypatch``. Returns the
    declared entry points (name -> module) and ``Recommender(rules=[], **kwargs)``, which has
    found the probes (``plugin_info()`` names them ``probe_<name>``, source ``entrypoint``).
    """
    from .plugins import ENTRY_POINT_GROUP

    pyproject = tomllib.loads((Path(plugin_root) / "pyproject.toml").read_text())
    declared: dict[str, str] = dict(pyproject["project"]["entry-points"][ENTRY_POINT_GROUP])
    dist = Path(folder) / "recommender_plugin_probe-0.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: recommender-plugin-probe\nVersion: 0.0.0\n")
    lines = "".join(f"probe_{name} = {target}\n" for name, target in declared.items())
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    monkeypatch.syspath_prepend(str(folder))
    probes = {f"probe_{name}" for name in declared}
    installed = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)} - probes
    monkeypatch.setenv("RECOMMENDER_DISABLED_PLUGINS", ",".join(sorted(installed)))
    monkeypatch.delenv("RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    return declared, Recommender(rules=[], **kwargs)


#: What a script must never read like (docs/advice.md "Scripts that only say what is true").
_BAD_TEXT = {"(s)": "a '(s)' plural (write {path:singular/plural})", "None": "'None'", "  ": "a doubled space",
             " ,": "a space before a comma", " .": "a space before a full stop", ",,": "a doubled comma",
             ", .": "a stray comma", "..": "a doubled full stop", "{": "an unfilled '{'", "}": "an unfilled '}'",
             "[": "an unfilled '['", "]": "an unfilled ']'", "the customer": "the third person",
             "the client": "the third person", "the member": "the third person"}


def script_problems(script: str, values: Mapping[str, Any]) -> list[str]:
    """What reads badly in ``script`` rendered with ``values`` (context path -> a sample value
    for each placeholder), without each optional segment's value in turn, and without any:
    "(s)", "None", doubled or stray spaces and punctuation, unfilled braces, talk about the
    customer in the third person, a gap where a required value is missing. Empty: fine."""
    from .templates import placeholders, render, required

    paths = list(dict.fromkeys(p.path for p in placeholders(script)))
    unknown = [p for p in paths if p not in values]
    if unknown:
        return [f"no sample value for {', '.join(unknown)}"]
    needed = {p.path for p in required(script)}
    optional = [p for p in paths if p not in needed]
    variants = [dict(values), *({k: v for k, v in values.items() if k != p} for p in optional),
                {k: v for k, v in values.items() if k not in optional}]
    problems: list[str] = []
    for given in variants:
        text, gaps = render(script, given.get)
        where = f"{text!r} (without {', '.join(p for p in paths if p not in given) or 'nothing'})"
        if gaps:
            problems.append(f"{where}: no value for {', '.join(gaps)}")
        problems.extend(f"{where}: {why}" for bad, why in _BAD_TEXT.items() if bad in text)
        if not text[:1].isupper():
            problems.append(f"{where}: does not start with a capital letter")
    return sorted(set(problems))
