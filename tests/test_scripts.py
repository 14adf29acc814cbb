"""Every shipped script, core and plugins, reads well with and without each optional value:
no "(s)", no "None", no doubled or missing spaces or punctuation around a name, no gap where
a value is missing, never the customer in the third person (recommender.testing.script_problems)."""

from __future__ import annotations

from typing import Any

import pytest

from recommender import Recommender
from recommender.context import field_kind
from recommender.templates import placeholders
from recommender.testing import script_problems

VERTICALS = (None, "auto_repair", "fitness", "insurance")


def _sample(path: str) -> Any:
    if path == "customer.name":
        return "Ada"
    kind = field_kind(path)
    if kind == "number" or path.endswith(("_days", "_years", "_minutes", "_fee", "_hours", "year")):
        return 3
    if kind == "list":
        return ["cycling"]
    return "text message"


def _gestures() -> list[tuple[str, Any]]:
    rec = Recommender(profiles={"default": {"extras_rate": 0.1}})
    seen: dict[str, Any] = {}
    for vertical in VERTICALS:
        book = rec.rulebook_for({"vertical": vertical} if vertical else {})
        for g in book.gestures.values():
            seen.setdefault(g.id, g)
    return sorted(seen.items())


GESTURES = _gestures()


def test_the_shipped_scripts_include_core_and_every_plugin() -> None:
    labels = {(g.label or g.source).split(":")[0] for _, g in GESTURES}
    assert len(GESTURES) >= 60 and {"core", "plugin"} <= labels


@pytest.mark.parametrize("gesture_id,gesture", GESTURES, ids=[gid for gid, _ in GESTURES])
def test_script_reads_well_with_and_without_each_optional_value(gesture_id: str, gesture: Any) -> None:
    values = {p.path: _sample(p.path) for p in placeholders(gesture.script)}
    assert script_problems(gesture.script, values) == [], gesture.script
    assert "(s)" not in gesture.script and " he " not in gesture.script and " she " not in gesture.script


def test_counts_agree_with_their_noun() -> None:
    from recommender.templates import render

    one, many = render("It is {d:day/days} late.", {"d": 1}.get)[0], render("It is {d:day/days} late.", {"d": 4}.get)[0]
    assert (one, many) == ("It is 1 day late.", "It is 4 days late.")
    assert render("Thank you[, {n}].", {}.get)[0] == "Thank you."
    assert render("Thank you[, {n}].", {"n": "Ada"}.get)[0] == "Thank you, Ada."
