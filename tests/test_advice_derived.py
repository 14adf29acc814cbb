"""Derived interaction facts in the advice: ``repeat_issue`` from ``repeat_count`` (the count
wins a disagreement, with a note), and a near miss on a derived fact names the input to ask
for, as ``missing_inputs`` does (docs/advice.md)."""

from typing import Any

import pytest

from helpers import ctx, gesture, make, rule

OWN = gesture("own_it", "meet")
REPEAT = rule("repeat", "interaction.repeat_issue eq true", "own_it")
WAIT = rule("waited", {"all": ["interaction.channel eq phone", "interaction.long_wait eq true"]}, "own_it")
LOYAL = rule("loyal", {"all": ["interaction.channel eq phone", "customer.loyal eq true"]}, "own_it")


def explain(rules: list[dict[str, Any]], **interaction: Any) -> Any:
    return make([OWN], rules).explain(ctx(interaction=interaction), full=True)


@pytest.mark.parametrize("count, repeat", [(0, False), (1, True), (4, True)])
def test_a_repeat_count_alone_sets_repeat_issue(count: int, repeat: bool) -> None:
    e = explain([REPEAT], repeat_count=count)
    assert [r.gesture_id for r in e.recommendations] == (["own_it"] if repeat else [])
    assert ("repeat" in e.assessment.signals) is repeat  # the rules read the case as severity does
    assert "interaction.repeat_issue" not in e.missing_inputs and e.notes == []
    if not repeat:  # a known fact, not a question to ask
        (miss,) = e.near_misses
        assert miss.change == "fixed" and miss.failed.actual is False


def test_without_either_field_repeat_issue_is_what_to_ask() -> None:
    e = explain([REPEAT])
    assert e.recommendations == [] and "interaction.repeat_issue" in e.missing_inputs
    assert e.near_misses[0].change == "missing"


@pytest.mark.parametrize("flag", [True, False])
def test_a_flag_that_agrees_with_the_count_stands_without_a_note(flag: bool) -> None:
    e = explain([REPEAT], repeat_issue=flag, repeat_count=2 if flag else 0)
    assert bool(e.recommendations) is flag and e.notes == []


@pytest.mark.parametrize("flag, count", [(False, 2), (True, 0)])
def test_when_flag_and_count_disagree_the_count_wins_and_a_note_names_both(flag: bool, count: int) -> None:
    e = explain([REPEAT], repeat_issue=flag, repeat_count=count)
    assert bool(e.recommendations) is (count >= 1) and ("repeat" in e.assessment.signals) is (count >= 1)
    (note,) = e.notes
    assert note == (f"interaction.repeat_issue is {str(flag).lower()} but interaction.repeat_count is {count}: "
                    f"the count wins, so repeat_issue is taken as {str(count >= 1).lower()}.")


def test_a_near_miss_on_long_wait_asks_for_wait_minutes() -> None:
    e = explain([WAIT], channel="phone")
    (miss,) = e.near_misses
    assert miss.failed.field == "interaction.long_wait" and miss.change == "missing"
    assert miss.hint == "would qualify if interaction.wait_minutes were known and made interaction.long_wait = yes"
    assert "interaction.wait_minutes" in e.missing_inputs and "interaction.long_wait" not in e.missing_inputs
    assert explain([WAIT], channel="phone", wait_minutes=30).recommendations  # the input it names flips it


def test_near_misses_and_missing_inputs_name_a_derived_fact_by_the_same_inputs() -> None:
    e = explain([LOYAL], channel="phone")
    (miss,) = e.near_misses
    assert miss.hint.startswith("would qualify if customer.tenure_years or customer.visits were known")
    assert {"customer.tenure_years", "customer.visits"} <= set(e.missing_inputs)
    assert "customer.loyal" not in e.missing_inputs
