"""Issue 16, item 3: a reference page generated from the code (docs/reference.md).

``recommender reference`` prints it; the checked-in page must equal what the code renders,
every context field and profile key must have a meaning, and README.md and docs/plugins.md
link to it.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from recommender.cli.app import app, load_command_groups
from recommender.context import Context
from recommender.issues import CORE_CODES, FAMILIES
from recommender.packs import CATEGORIES
from recommender.profile import Profile
from recommender.reference import CONTEXT_MEANINGS, render_reference

ROOT = Path(__file__).resolve().parents[1]


def test_the_checked_in_reference_matches_the_code() -> None:
    page = (ROOT / "docs" / "reference.md").read_text()
    assert page == render_reference(), "docs/reference.md is stale: recommender reference > docs/reference.md"


def test_the_cli_prints_the_page() -> None:
    load_command_groups()
    result = CliRunner().invoke(app, ["reference"])
    assert result.exit_code == 0, result.output
    assert result.output == render_reference()


def test_every_name_a_plugin_writer_looks_up_is_on_the_page() -> None:
    page = render_reference()
    for section, model in Context.model_fields.items():
        for name in model.annotation.model_fields:  # type: ignore[union-attr]
            assert f"`{section}.{name}`" in page
    assert set(CONTEXT_MEANINGS) == {f"{s}.{n}" for s, m in Context.model_fields.items()
                                     for n in m.annotation.model_fields}  # type: ignore[union-attr]
    for family in FAMILIES:
        assert f"`{family}`" in page
    for code in CORE_CODES:
        assert f"`{code.code}`" in page
    for category in CATEGORIES:
        assert f"`{category}`" in page
    for key in Profile.model_fields:
        assert f"`{key}" in page
    for text in ("`fee_waiver`", "`welcome_perk`", "`synthetic`", "`not_contains`", "`money_limits.genuine` | `50`"):
        assert text in page


def test_the_page_is_linked_from_the_readme_and_the_plugin_guide() -> None:
    assert "docs/reference.md" in (ROOT / "README.md").read_text()
    assert "(reference.md)" in (ROOT / "docs" / "plugins.md").read_text()
