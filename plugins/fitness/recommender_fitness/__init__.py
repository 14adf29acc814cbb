"""Fitness-center plugin for the service recommender.

Contributes (through the public hooks only):

* the trade it serves: ``recommender_declare_verticals`` -> ``["fitness"]``, so the plugin
  applies to businesses whose ``business.vertical`` is ``fitness`` (or that a
  ``PluginConfig`` selects it for), never to another trade's;
* the gym's issue codes (:data:`ISSUE_CODES`: joining, a visit, a booking are ``routine``;
  a cancelled class or broken equipment is a ``service_failure``), each in its family;
* the trade's profile defaults (:data:`PROFILE`): loyal from a year or 100 visits,
  high-value from 600;
* a rule pack (``fitness.yaml``, shipped as package data): free personal-training
  sessions for new members, a check-in and a comeback session when a regular's attendance
  drops, a freeze offered (never imposed) on a cancellation request, a waived cancellation
  fee for loyal or relocating members, birthday and visit-milestone touches;
* context enrichment, for a fitness business only: ``interaction.attributes.fitness_topic``
  (the scope marker every rule requires), ``customer.attributes.attendance_drop`` (share
  of the usual monthly visits missed in the last 30 days), ``avg_monthly_visits``,
  ``birthday_this_month`` and ``visit_milestone``;
* an outcome observer: counts offered/accepted/declined/delivered per tenant and gesture
  in memory (:data:`TALLY`), e.g. to report how often a freeze keeps a member.

Installed, it is found through the entry point ``fitness`` (group ``recommender``).
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

from recommender import hookimpl
from recommender.trade import Trade

__all__ = [
    "PACK_PATH",
    "PREFIX",
    "VERTICAL",
    "ISSUE_CODES",
    "TOPICS",
    "PROFILE",
    "MILESTONES",
    "MIN_REGULAR_MONTHLY_VISITS",
    "OutcomeTally",
    "TALLY",
    "attendance_drop",
    "TRADE",
    "recommender_declare_verticals",
    "recommender_register_issue_codes",
    "recommender_business_profile",
    "recommender_register_rule_packs",
    "recommender_enrich_context",
    "recommender_record_outcome",
]

__version__ = "0.1.0"

PACK_PATH = Path(__file__).with_name("fitness.yaml")
PREFIX = "fitness_"
VERTICAL = "fitness"
#: The gym's issue codes: code -> (family, fitness topic, aliases). Joining, a visit, a
#: booking are ``routine``; a class we cancelled or equipment out of order is a
#: ``service_failure`` (the member lost what they came for). A membership cancellation uses
#: the core's ``cancellation_request`` (``routine``).
ISSUE_CODES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "membership_signup": ("routine", "joining", ("new_membership", "enrollment", "joining")),
    "first_visit": ("routine", "visit", ()),
    "checkin": ("routine", "visit", ("check_in", "front_desk_visit", "gym_visit")),
    "membership_freeze": ("routine", "membership", ("freeze_request",)),
    "membership_renewal": ("routine", "membership", ()),
    "late_cancellation_fee": ("routine", "membership", ("late_fee", "no_show_fee")),
    "pt_booking": ("routine", "training", ("personal_training_booking",)),
    "class_booking": ("routine", "training", ()),
    "class_cancelled": ("service_failure", "training", ("class_canceled", "cancelled_class")),
    "facility_issue": ("service_failure", "visit", ("equipment_broken", "broken_equipment", "locker_issue")),
    "gym_question": ("information_request", "general", ("parking_question", "opening_hours", "timetable_question")),
    "billing_question": ("information_request", "membership", ()),
}
#: interaction.issue (codes, aliases and the core's cancellation_request) ->
#: interaction.attributes.fitness_topic ("general" for another issue at a business whose
#: vertical is fitness).
TOPICS: dict[str, str] = {
    **{name: topic for code, (_, topic, aliases) in ISSUE_CODES.items() for name in (code, *aliases)},
    "cancellation_request": "membership",
}
#: The trade's profile defaults (docs/advice.md "The business profile"): most members leave
#: within their first year, so a year (or a hundred visits: twice a week for a year) makes a
#: loyal member; a year's dues are a few hundred, so 600 is a valuable member; a membership
#: adviser gives a new member's two free training sessions (60) on their own.
PROFILE: dict[str, Any] = {
    "loyal_tenure_years": 1,
    "loyal_visits": 100,
    "high_value": 600,
    "money_limits": {"synthetic": 10, "genuine": 75, "super": 250},
}
#: Visit counts worth celebrating.
MILESTONES = frozenset({50, 100, 250, 500, 750, 1000, 1500, 2000})
#: Below this many visits a month (before the last 30 days) a member is not a regular, and
#: a quiet month says little: no attendance_drop is derived.
MIN_REGULAR_MONTHLY_VISITS = 2.0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def attendance_drop(visits_last_30_days: float, visits_last_year: float) -> float | None:
    """Share (0..1) of the usual monthly visits missed in the last 30 days.

    The usual rate is taken from the eleven months before the last 30 days, so a recent
    slump does not hide itself. None when the member was not a regular.
    """
    prior = max(visits_last_year - visits_last_30_days, 0.0) / 11
    if prior < MIN_REGULAR_MONTHLY_VISITS:
        return None
    return round(min(1.0, max(0.0, 1 - visits_last_30_days / prior)), 2)


# -- registration --------------------------------------------------------------------

#: The trade's vertical, issue codes, profile and pack, as hook implementations
#: (:class:`recommender.trade.Trade`: the set-up every one-trade plugin shares).
TRADE = Trade(VERTICAL, pack=PACK_PATH, issue_codes={code: (family, aliases) for code, (family, _, aliases)
                                                     in ISSUE_CODES.items()}, profile=PROFILE)

recommender_declare_verticals = TRADE.declare_verticals
recommender_register_issue_codes = TRADE.register_issue_codes
recommender_business_profile = TRADE.business_profile
recommender_register_rule_packs = TRADE.register_rule_packs


# -- context -------------------------------------------------------------------------


def _topic(context: Any) -> str | None:
    """The fitness topic, or None when this is not a fitness business's interaction (with
    no vertical given - the plugin selected by configuration - a known gym issue counts)."""
    return TRADE.scope(context, TOPICS, "general")


@hookimpl
def recommender_enrich_context(context: Any) -> dict[str, Any] | None:
    """Derive the topic, attendance and celebration facts; returns updates, never mutates
    ``context``. Nothing for another trade's interaction."""
    topic = _topic(context)
    if topic is None:
        return None
    customer, interaction = context.customer, context.interaction
    attrs: dict[str, Any] = {}

    recent = _number(customer.attributes.get("visits_last_30_days"))
    if recent is not None and customer.visits_last_year is not None:
        usual = max(customer.visits_last_year - recent, 0.0) / 11
        attrs["avg_monthly_visits"] = round(usual, 2)
        drop = attendance_drop(recent, float(customer.visits_last_year))
        if drop is not None:
            attrs["attendance_drop"] = drop

    birth_month = _number(customer.attributes.get("birth_month"))
    if birth_month is not None and interaction.occurred_at is not None:
        attrs["birthday_this_month"] = int(birth_month) == interaction.occurred_at.month

    total = _number(customer.attributes.get("total_visits"))
    if total is not None and total.is_integer() and int(total) in MILESTONES:
        attrs["visit_milestone"] = int(total)

    updates: dict[str, Any] = {"interaction": {"attributes": {"fitness_topic": topic}}}
    if attrs:
        updates["customer"] = {"attributes": attrs}
    return updates


# -- outcomes ------------------------------------------------------------------------


class OutcomeTally:
    """Thread-safe in-memory counts of outcomes per (tenant, gesture)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def add(self, tenant: str, gesture_id: str, outcome: str) -> None:
        with self._lock:
            self._counts[(tenant, gesture_id, outcome)] += 1

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def report(self, tenant: str | None = None) -> dict[str, dict[str, float]]:
        """Per gesture: counts by outcome, and ``acceptance_rate`` = accepted / (accepted + declined)."""
        with self._lock:
            items = list(self._counts.items())
        out: dict[str, dict[str, float]] = {}
        for (t, gid, outcome), n in items:
            if tenant is not None and t != tenant:
                continue
            row = out.setdefault(gid, {"offered": 0, "accepted": 0, "declined": 0, "delivered": 0})
            row[outcome] = row.get(outcome, 0) + n
        for row in out.values():
            decided = row["accepted"] + row["declined"]
            row["acceptance_rate"] = round(row["accepted"] / decided, 3) if decided else 0.0
        return dict(sorted(out.items()))


#: The process-wide tally fed by :func:`recommender_record_outcome`.
TALLY = OutcomeTally()


@hookimpl
def recommender_record_outcome(outcome: Any) -> None:
    """Count the outcomes of this plugin's gestures (others are not ours to report)."""
    if outcome.gesture_id.startswith(PREFIX):
        TALLY.add(outcome.tenant, outcome.gesture_id, outcome.outcome)
