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

    class TestTrade(TradePluginTests):                         # the tests every one-trade plugin repeats
        plugin, root, entry_point, ... = ...                   # (see TradePluginTests)

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
    from .issues import IssueCode
    from .memory import Store

__all__ = ["import_plugin", "plugin_recommender", "sqlite_store", "withheld_reasons", "offered_or_drawn",
           "entry_point_probe", "script_problems", "TradePluginTests"]


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


class TradePluginTests:
    """The tests every one-trade plugin repeats, written once. Subclass it in the plugin's
    test module (a class named ``Test...``, so pytest collects it) and set the attributes::

        class TestTrade(TradePluginTests):
            plugin = plugin                       # the imported package (uses recommender.trade.Trade)
            root = PLUGIN_ROOT                    # the folder with pyproject.toml
            entry_point = "car_wash"              # [project.entry-points.recommender] name
            distribution = "recommender-car-wash"
            prefix = "car_wash_"                  # every gesture id starts with it
            marker = "interaction.attributes.wash_kind"  # the scope marker every rule tests
            signature = ({"interaction": {"issue": "wash"}}, "car_wash_free_tire_shine")

    ``signature`` is a context (the plugin's vertical is filled in) and a gesture it gets
    (listed, or withheld only by the extras draw). ``issues_used`` (optional) names the issue
    codes the plugin's code and other tests use besides its rules' (a scope table's keys). The
    tests: the vertical is declared and the plugin applies to no other; issue codes and
    profile register without warnings; every code and alias it registers is assessed in its
    family at its business, none clashes with a core code of another family, and every code
    its rules and ``issues_used`` name is known; the pack is package data; ids are prefixed;
    every rule tests the marker; the signature case, alone and next to the core packs, without
    warnings; ``plugins --check`` finds no undeclared clash; the pyproject's entry point is
    discovered (no pip); the installed distribution is autoloaded (skipped when not installed).
    """

    plugin: Any
    root: Path
    entry_point: str
    distribution: str
    prefix: str
    marker: str | None = None
    signature: tuple[dict[str, Any], str]
    issues_used: tuple[str, ...] = ()

    @property
    def vertical(self) -> str:
        return str(self.plugin.TRADE.vertical)

    def context(self, vertical: str | None = "") -> dict[str, Any]:
        data = {k: dict(v) for k, v in self.signature[0].items()}
        business = dict(data.get("business") or {})
        if vertical is None:
            business.pop("vertical", None)
        else:
            business["vertical"] = vertical or self.vertical
        data["business"] = business
        return data

    def test_declares_its_vertical(self) -> None:
        assert self.plugin.recommender_declare_verticals() == [self.vertical]

    def test_applies_to_no_other_vertical(self) -> None:
        from .context import Business

        rec = plugin_recommender(self.plugin)
        for other in (None, f"not_{self.vertical}"):
            assert not [g for g in rec.rulebook_for(Business(vertical=other)).gestures if g.startswith(self.prefix)]
            assert not [g for g in rec.recommend(self.context(other)).gesture_ids() if g.startswith(self.prefix)]

    def test_registers_its_issue_codes_and_profile_without_warnings(self) -> None:
        from .context import Business

        rec = plugin_recommender(self.plugin, strict=True)
        business = Business(vertical=self.vertical)
        vocabulary = rec._tenant(business).vocabulary
        for code in self.plugin.TRADE.issue_codes:
            assert vocabulary.family(code) == self.plugin.TRADE.issue_codes[code][0], code
        profile, warnings = rec.profile_for(business)
        assert warnings == []
        for key, value in (self.plugin.TRADE.profile or {}).items():
            got = getattr(profile, key)
            assert (got.model_dump() if hasattr(got, "model_dump") else got) == value, key

    def registered_codes(self) -> list["IssueCode"]:
        """The issue codes the plugin registers through its hook, validated as the host does."""
        from .issues import IssueCode

        codes: list[IssueCode] = []
        self.plugin.recommender_register_issue_codes(lambda c: codes.append(IssueCode.model_validate(c)))
        return codes

    def test_every_code_and_alias_it_registers_is_known_at_its_business(self) -> None:
        rec = plugin_recommender(self.plugin)
        for code in self.registered_codes():
            for name in (code.code, *code.aliases):
                result = rec.recommend({"business": {"vertical": self.vertical}, "interaction": {"issue": name}})
                assert result.assessment is not None and result.assessment.family == code.family, name
                assert not result.warnings, result.warnings

    def test_no_code_clashes_with_a_core_code_of_another_family(self) -> None:
        from .issues import Vocabulary

        core = Vocabulary()
        for code in self.registered_codes():
            for name in (code.code, *code.aliases):
                assert core.family(name) in (None, code.family), name

    def test_every_issue_code_its_rules_and_code_use_is_known(self) -> None:
        from .context import Business
        from .issues import Vocabulary

        vocabulary = Vocabulary()
        for code in self.registered_codes():
            vocabulary.add(code)
        book = plugin_recommender(self.plugin).rulebook_for(Business(vertical=self.vertical))
        used = {a.value for rule in book.rules for branch in rule.branches for a in branch
                if a.field == "interaction.issue"}
        names = {v for value in used for v in (value if isinstance(value, (list, tuple)) else [value])}
        assert {n for n in names | set(self.issues_used) if vocabulary.family(n) is None} == set()

    def test_pack_is_package_data(self) -> None:
        pack = self.plugin.TRADE.pack
        assert pack.parent == Path(self.plugin.__file__).parent and pack.is_file()

    def test_ids_are_prefixed(self) -> None:
        from .context import Business

        book = plugin_recommender(self.plugin).rulebook_for(Business(vertical=self.vertical))
        assert book.gestures and all(g.startswith(self.prefix) for g in book.gestures)
        assert all(r.id.startswith(f"{self.entry_point}.") for r in book.rules)

    def test_every_rule_tests_the_scope_marker(self) -> None:
        from .context import Business

        if self.marker is None:
            return
        for rule in plugin_recommender(self.plugin).rulebook_for(Business(vertical=self.vertical)).rules:
            for branch in rule.branches:
                assert any(a.field == self.marker for a in branch), rule.id

    def test_the_signature_case_alone_and_next_to_the_core_packs(self) -> None:
        for rec in (plugin_recommender(self.plugin), plugin_recommender(self.plugin, core_packs=True)):
            result = rec.recommend(self.context())
            assert not result.warnings, result.warnings
            assert offered_or_drawn(result, self.signature[1]), (result.gesture_ids(), withheld_reasons(result))

    def test_no_undeclared_clash_with_the_core_packs(self) -> None:
        from .cli.plugins_cmd import check_plugins

        assert check_plugins(plugin_recommender(self.plugin, core_packs=True)) == ([], [])

    def test_entry_point_declared_in_pyproject_is_discovered(self, tmp_path: Path, monkeypatch: Any) -> None:
        declared, found = entry_point_probe(self.root, tmp_path, monkeypatch)
        assert declared == {self.entry_point: self.plugin.__name__}
        info = {i["name"]: i for i in found.plugin_info()}[f"probe_{self.entry_point}"]
        assert info["source"] == "entrypoint" and info["verticals"] == [self.vertical]
        assert offered_or_drawn(found.recommend(self.context()), self.signature[1])

    def test_installed_plugin_is_autoloaded(self, monkeypatch: Any) -> None:
        import pytest

        if not any(ep.name == self.entry_point for ep in importlib.metadata.entry_points(group="recommender")):
            pytest.skip(f"not pip-installed: pip install -e {self.root}")
        monkeypatch.delenv("RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD", raising=False)
        monkeypatch.delenv("RECOMMENDER_DISABLED_PLUGINS", raising=False)
        default = Recommender()
        info = {i["name"]: i for i in default.plugin_info()}[self.entry_point]
        assert info["source"] == "entrypoint"
        assert info["version"] == importlib.metadata.version(self.distribution)
        result = default.recommend(self.context())
        assert not [w for w in result.warnings if w.plugin == self.entry_point]
        assert offered_or_drawn(result, self.signature[1])
