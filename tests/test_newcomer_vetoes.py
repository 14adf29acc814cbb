"""Issue 16, item 7: withheld reasons name only gestures that stand.

A reason such as "conflicts with B, which ranks higher" must not name a gesture a plugin
vetoed. After an adjuster vetoes, the choice is run again without what it vetoed and the
adjusters review the new list, round after round while they veto (docs/plugins.md says
so, and ``pipeline.REVIEW_ROUNDS`` bounds it).
"""

from __future__ import annotations

from typing import Any

import pytest

from helpers import OPEN_PROFILE, ctx, gesture, pack, rule
from recommender import Recommender, hookimpl
from recommender import pipeline

# A and B share a group (A ranks higher); C conflicts with B. The plugin vetoes A and B.
GESTURES = [gesture("a_first", exclusive_group="g"), gesture("b_second", exclusive_group="g"),
            gesture("c_third", conflicts_with=["b_second"])]
RULES = [rule("r-a", "interaction.issue exists", "a_first", priority=90),
         rule("r-b", "interaction.issue exists", "b_second", priority=80),
         rule("r-c", "interaction.issue exists", "c_third", priority=70)]


class Veto:
    __name__ = "veto"

    def __init__(self, ids: set[str]):
        self.ids = ids

    @hookimpl
    def recommender_adjust_recommendations(self, recommendations: list[Any]) -> list[Any]:
        return [r for r in recommendations if r.gesture_id not in self.ids]


def recommender(*vetoed: str, **kw: Any) -> Recommender:
    return Recommender([], packs=[pack(GESTURES, RULES)], plugins=[Veto(set(vetoed))], autoload=False,
                       profiles={"default": OPEN_PROFILE}, **kw)


def stale_reasons(result: Any) -> list[str]:
    vetoed = {w.gesture_id for w in result.withheld if w.reason == "vetoed"}
    return [f"{w.gesture_id}: {w.detail}" for w in [*result.withheld, *result.needs_approval]
            if w.reason != "vetoed" and any(v in w.detail for v in vetoed)]


@pytest.mark.parametrize("timeout", [0.5, 0])
def test_a_gesture_held_back_by_a_vetoed_one_is_offered(timeout: float) -> None:
    # round 1: a_first listed, b_second held by the group, c_third listed; the veto of a_first
    # frees the group: round 2 lists b_second and holds c_third for the conflict; the veto of
    # b_second frees c_third: round 3 lists it. (Before: "c_third conflicts with b_second,
    # which ranks higher" while b_second was "vetoed by plugin veto".)
    result = recommender("a_first", "b_second", plugin_timeout=timeout).recommend(ctx("x"))
    assert result.gesture_ids() == ["c_third"]
    assert {w.gesture_id: w.reason for w in result.withheld} == {"a_first": "vetoed", "b_second": "vetoed"}
    assert stale_reasons(result) == []


def test_a_reason_names_the_gesture_that_stands() -> None:
    result = recommender("a_first").recommend(ctx("x"))
    assert result.gesture_ids() == ["b_second"]
    held = {w.gesture_id: w for w in result.withheld}
    assert held["c_third"].reason == "conflict" and "b_second" in held["c_third"].detail
    assert stale_reasons(result) == []


def test_past_the_last_round_a_reason_is_restated_without_the_vetoed_gesture(monkeypatch) -> None:
    monkeypatch.setattr(pipeline, "REVIEW_ROUNDS", 2)
    result = recommender("a_first", "b_second").recommend(ctx("x"))
    held = {w.gesture_id: w for w in result.withheld}
    assert held["c_third"].reason == "conflict"
    assert "b_second" not in held["c_third"].detail and "vetoed by plugin veto" in held["c_third"].detail
    assert stale_reasons(result) == []


def test_the_shipped_garage_never_cites_a_vetoed_waiver() -> None:
    from recommender.testing import import_plugin
    from pathlib import Path

    garage = import_plugin("recommender_auto_repair", Path(__file__).resolve().parents[1] / "plugins" /
                           "auto_repair" / "tests" / "x.py")
    rec = Recommender(autoload=False, plugins=[garage])
    for i in range(40):
        result = rec.recommend({"customer": {"id": f"c-{i}", "name": "Maria", "tenure_years": 6,
                                             "lifetime_value": 2400},
                                "interaction": {"issue": "flat_tire", "cost": 25, "channel": "in_person"},
                                "business": {"vertical": "auto_repair"}})
        assert stale_reasons(result) == []


def test_the_docs_say_what_the_pipeline_does() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    assert "Arbitration is not re-run" not in text
    assert f"{pipeline.REVIEW_ROUNDS} rounds" in text
