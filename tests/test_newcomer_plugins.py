"""Issue 16, item 1: declared sharing of exclusive groups, and ``plugins --check`` over every
declared vertical.

A plugin gesture that joins another source's exclusive group on purpose says
``shares_group: true``; ``recommender plugins --check`` reports only undeclared clashes, in
each vertical a plugin declares (a plugin that declares verticals contributes nothing to the
default business, so checking the default business alone found nothing), and passes with the
three shipped plugins. docs/plugins.md lists the core's exclusive groups.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from recommender import Recommender, hookimpl
from recommender.cli.app import app, load_command_groups
from recommender.cli.plugins_cmd import check_plugins
from recommender.errors import RulePackError
from recommender.packs import pack_from_data
from recommender.reference import core_exclusive_groups, render_core_groups
from recommender.testing import import_plugin

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [import_plugin(f"recommender_{name}", ROOT / "plugins" / name / "tests" / "x.py")
           for name in ("auto_repair", "fitness", "insurance")]


class Trade:
    """A plugin for the vertical ``car_wash`` whose one gesture joins the core's ``fee_waiver``."""

    def __init__(self, name: str, shares: bool | None, verticals: list[str] | None = ["car_wash"]):  # noqa: B006
        self.name, self.verticals = name, verticals
        gesture: dict[str, Any] = {"id": f"{name}_waive_wash_fee", "title": "Waive the wash fee",
                                   "category": "fee_waiver", "tier": "meet", "cost": 5,
                                   "script": "The wash is on us today.", "exclusive_group": "fee_waiver"}
        if shares is not None:
            gesture["shares_group"] = shares
        self.pack = {"pack": name, "gestures": [gesture],
                     "rules": [{"id": f"{name}.fee", "when": "interaction.issue eq wash",
                                "then": gesture["id"], "because": "A regular's fee."}]}

    @hookimpl
    def recommender_declare_verticals(self) -> list[str] | None:
        return self.verticals

    @hookimpl
    def recommender_register_rule_packs(self, register: Any) -> None:
        register(self.pack)


def test_the_shipped_plugins_pass_the_check_in_every_vertical() -> None:
    rec = Recommender(autoload=False, plugins=SHIPPED)
    problems, conflicts = check_plugins(rec)
    assert (problems, conflicts) == ([], [])
    # ... and the check did look at their verticals: each plugin contributed there
    info = {i["name"]: i for i in rec.plugin_info()}
    for plugin, vertical in zip(SHIPPED, ("auto_repair", "fitness", "insurance")):
        assert info[plugin.__name__]["verticals"] == [vertical]
        assert len(info[plugin.__name__]["gestures"]) >= 8 and info[plugin.__name__]["rules"]


def test_without_their_declarations_the_shipped_plugins_clash_in_their_verticals() -> None:
    rec = Recommender(autoload=False, plugins=SHIPPED)
    undeclared = []
    for business in rec.plugin_businesses():
        book = rec.rulebook_for(business)
        undeclared += [f"{business.vertical}:{g.id}" for g in book.gestures.values() if g.shares_group]
    # the eight gestures that join a core group on purpose (issue 16: four were reported as
    # conflicts before the check looked into verticals at all)
    assert sorted(undeclared) == [
        "auto_repair:auto_courtesy_followup_call", "auto_repair:auto_delay_status_update",
        "auto_repair:auto_free_tire_check", "fitness:fitness_free_pt_sessions",
        "fitness:fitness_waive_cancellation_fee", "insurance:insurance_auto_coverage_review",
        "insurance:insurance_claim_status_update", "insurance:insurance_home_coverage_review"]


def test_an_undeclared_clash_is_reported_with_its_vertical_and_a_declared_one_is_not() -> None:
    clash = Recommender(autoload=False, plugins=[Trade("washy", shares=None)])
    problems, conflicts = check_plugins(clash)
    assert problems == []
    assert len(conflicts) == 1
    assert conflicts[0].startswith("vertical car_wash: exclusive group 'fee_waiver'")
    assert "washy: washy_waive_wash_fee" in conflicts[0] and "shares_group: true" in conflicts[0]

    declared = Recommender(autoload=False, plugins=[Trade("washy", shares=True)])
    assert check_plugins(declared) == ([], [])


def test_a_plugin_without_verticals_is_checked_in_the_default_business() -> None:
    everywhere = Recommender(autoload=False, plugins=[Trade("washy", shares=False, verticals=None)])
    conflicts = check_plugins(everywhere)[1]
    assert len(conflicts) == 1 and conflicts[0].startswith("exclusive group 'fee_waiver'")


def test_two_plugins_sharing_a_group_of_their_own_need_a_declaration_from_all_but_one() -> None:
    def washer(name: str, shares: bool) -> Trade:
        t = Trade(name, shares=shares)
        t.pack["gestures"][0]["exclusive_group"] = "wash_perk"
        return t

    owner_and_joiner = Recommender(autoload=False, plugins=[washer("aa", False), washer("bb", True)])
    assert check_plugins(owner_and_joiner)[1] == []
    neither = Recommender(autoload=False, plugins=[washer("aa", False), washer("bb", False)])
    assert ["wash_perk" in c for c in check_plugins(neither)[1]] == [True]


def test_shares_group_needs_an_exclusive_group() -> None:
    t = Trade("washy", shares=True)
    del t.pack["gestures"][0]["exclusive_group"]
    with pytest.raises(RulePackError, match=r"gestures\[0\]\.shares_group: .*needs an exclusive_group"):
        pack_from_data(t.pack, "<memory:washy>")


def cli(*args: str) -> Any:
    load_command_groups()
    return CliRunner().invoke(app, list(args))


def test_the_cli_check_passes_with_the_installed_plugins_and_shows_their_verticals(monkeypatch) -> None:
    monkeypatch.delenv("RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("RECOMMENDER_DISABLED_PLUGINS", raising=False)
    result = cli("plugins", "--check", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["conflicts"] == [] and data["problems"] == []
    installed = {i["name"]: i for i in data["plugins"]}
    for name in {"auto_repair", "fitness", "insurance"} & set(installed):
        assert installed[name]["verticals"] == [name] and installed[name]["gestures"]
    table = cli("plugins")
    assert table.exit_code == 0 and "verticals" in table.output


def test_the_cli_check_fails_on_an_undeclared_clash(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RECOMMENDER_DISABLE_PLUGIN_AUTOLOAD", "1")
    (tmp_path / "washy.py").write_text(
        "from recommender import hookimpl\n"
        "@hookimpl\ndef recommender_declare_verticals():\n    return ['car_wash']\n"
        "@hookimpl\ndef recommender_register_rule_packs(register):\n"
        f"    register({Trade('washy', shares=None).pack!r})\n")
    result = cli("plugins", "--check", "--plugins-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "conflict: vertical car_wash: exclusive group 'fee_waiver'" in result.output


def test_docs_plugins_md_lists_the_core_exclusive_groups() -> None:
    text = (ROOT / "docs" / "plugins.md").read_text()
    m = re.search(r"<!-- core-groups:start -->\n(.*?)<!-- core-groups:end -->", text, re.S)
    assert m, "docs/plugins.md: the core's exclusive groups table (between core-groups markers) is missing"
    assert m.group(1) == render_core_groups(), "regenerate with recommender.reference.render_core_groups()"
    assert {"fee_waiver", "welcome_perk", "status_updates", "follow_up_contact"} <= set(core_exclusive_groups())
