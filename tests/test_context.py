"""The context model: the public contract of field names, strictness and derived fields."""

import pytest

from recommender import ContextError, parse_context
from recommender.context import field_kind


def test_minimal_context_invents_nothing():
    # Unknown is not zero: an absent channel is not "pos", an absent lifetime value not 0.
    c = parse_context({"interaction": {"issue": "flat_tire"}})
    assert c.interaction.channel is None
    assert c.customer.lifetime_value is None
    assert c.staff.level == "genuine"
    assert c.business.id == "default"
    assert c.customer.tenure_years is None and c.customer.is_new is None


@pytest.mark.parametrize("tenure,expected", [(0.1, True), (0.25, False), (6, False)])
def test_is_new_is_derived_from_tenure(tenure, expected):
    c = parse_context({"customer": {"tenure_years": tenure}, "interaction": {"issue": "x"}})
    assert c.customer.is_new is expected


def test_is_new_given_wins_over_derivation():
    c = parse_context({"customer": {"tenure_years": 5, "is_new": True}, "interaction": {"issue": "x"}})
    assert c.customer.is_new is True


def test_every_bad_field_is_named_with_its_path():
    with pytest.raises(ContextError) as exc:
        parse_context({"customer": {"tenure_years": "5", "bogus": 1, "lifetime_value": -3},
                       "interaction": {"channel": "pigeon", "attributes": {"ok": 1, "bad": {"nested": 1}}}})
    paths = {p for p, _ in exc.value.errors}
    assert "customer.tenure_years" in paths  # a number sent as a string is an error
    assert "customer.bogus" in paths
    assert "customer.lifetime_value" in paths
    assert "interaction.channel" in paths
    assert "interaction.issue" in paths
    assert any(p.startswith("interaction.attributes.bad") for p in paths)


def test_json_text_is_accepted_and_infinity_is_not():
    assert parse_context('{"interaction": {"issue": "a", "cost": 12.5}}').interaction.cost == 12.5
    with pytest.raises(ContextError):
        parse_context('{"interaction": {"issue": "a", "cost": Infinity}}')


def test_sentiment_bounds():
    with pytest.raises(ContextError) as exc:
        parse_context({"interaction": {"issue": "a", "sentiment": 1.5}})
    assert exc.value.errors[0][0] == "interaction.sentiment"


def test_field_kinds_drive_rule_type_checks():
    assert field_kind("customer.tenure_years") == "number"
    assert field_kind("interaction.channel") == "string"
    assert field_kind("customer.life_events") == "list"
    assert field_kind("interaction.repeat_issue") == "bool"
    assert field_kind("interaction.attributes.service") == "open"
    assert field_kind("customer.nope") is None
    assert field_kind("customer") is None


def test_occurred_at_is_an_iso_string_not_a_number():
    c = parse_context({"interaction": {"issue": "a", "occurred_at": "2026-03-01T10:00:00Z"}})
    assert c.interaction.occurred_at.year == 2026
    with pytest.raises(ContextError) as exc:
        parse_context({"interaction": {"issue": "a", "occurred_at": 1767225600}})
    assert exc.value.errors[0][0] == "interaction.occurred_at"
