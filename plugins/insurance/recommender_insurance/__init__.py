"""Insurance-agency plugin for the service recommender.

Contributes (through the public hooks only):

* the trade it serves: ``recommender_declare_verticals`` -> ``["insurance"]``, so the
  plugin applies to businesses whose ``business.vertical`` is ``insurance`` (or that a
  ``PluginConfig`` selects it for), never to another trade's;
* the agency's issue codes (:data:`ISSUE_CODES`: a policy change, a claim are ``routine``;
  a delayed claim is a ``delay``; a denied claim is a ``complaint``), each in its family;
* the trade's profile defaults (:data:`PROFILE`): loyal from 5 years, high-value from
  5000, money at stake on an insurer's scale;
* a rule pack (``insurance.yaml``, shipped as package data): referrals to partners at
  life events - a realtor or mortgage lender on a home purchase, pediatric/childcare
  providers on a new baby, a financial planner on retirement - reviews of the client's own
  cover (home, life, auto, a loyal client's policy), a waived admin fee, claim updates;
* **consent first**: a referral shares the client's details with a partner, so the
  ``insurance_refer_*`` gestures need the client's recorded consent
  (``customer.consents`` holds ``partner_referrals`` or ``partner_referrals.<scope>``);
  without it the ``insurance_ask_consent_*`` gestures ask for it instead, and a client who
  said no (``customer.preferences.partner_referrals: false``) is not asked again;
* context enrichment, for an insurance business only: ``interaction.attributes.insurance_line``
  (the scope marker every rule requires), ``customer.attributes.partner_referrals_declined``
  and ``policy_review_due``;
* a consent guard (``recommender_adjust_recommendations``): vetoes any
  ``insurance_refer_*`` without consent, whatever rule produced it, and other packs'
  referrals while consent is being asked for or was declined; and, one of a kind, the
  core's general counterpart of a gesture of ours (:data:`CORE_COUNTERPARTS`: a coverage
  review, a realtor/lender or planner referral, the consent question, the waiver of an admin
  fee) whenever ours is offered;
* an outcome observer: an in-memory :data:`LEDGER` of consent asks and referrals.

Installed, it is found through the entry point ``insurance`` (group ``recommender``).
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
    "CONSENT",
    "ISSUE_CODES",
    "LINES",
    "PROFILE",
    "REFERRAL_SCOPES",
    "REFERRAL_EVENTS",
    "CORE_COUNTERPARTS",
    "POLICY_REVIEW_INTERVAL_DAYS",
    "has_consent",
    "declined_referrals",
    "ReferralLedger",
    "LEDGER",
    "TRADE",
    "recommender_declare_verticals",
    "recommender_register_issue_codes",
    "recommender_business_profile",
    "recommender_register_rule_packs",
    "recommender_enrich_context",
    "recommender_adjust_recommendations",
    "recommender_record_outcome",
]

__version__ = "0.1.0"

PACK_PATH = Path(__file__).with_name("insurance.yaml")
PREFIX = "insurance_"
ASK_PREFIX = "insurance_ask_consent_"
REFER_PREFIX = "insurance_refer_"
VERTICAL = "insurance"
#: The consent tag in ``customer.consents``; ``CONSENT + "." + scope`` is consent for one scope.
CONSENT = "partner_referrals"
#: Which consent scope each referral needs.
REFERRAL_SCOPES: dict[str, str] = {
    "insurance_refer_realtor": "home",
    "insurance_refer_mortgage_lender": "home",
    "insurance_refer_childcare": "family",
    "insurance_refer_financial_planner": "retirement",
}
#: The agency's issue codes: code -> (family, insurance line, aliases). Buying, changing or
#: renewing a policy and filing a claim are ``routine`` (a claim is the service working, not
#: failing: the severity comes from the signals, e.g. a claim running late); a claim that is
#: late is a ``delay``; a denied claim the client contests is a ``complaint``. The core's
#: ``claim_status`` (``information_request``) is a claims question too.
ISSUE_CODES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "policy_review": ("routine", "policy", ("annual_review",)),
    "policy_renewal": ("routine", "policy", ()),
    "new_policy": ("routine", "policy", ("policy_purchase",)),
    "quote": ("routine", "policy", ("quote_request",)),
    "account_review": ("routine", "policy", ()),
    "policy_change": ("routine", "policy_service", ("coverage_change", "address_change", "add_driver",
                                                    "remove_driver", "mid_term_adjustment")),
    "claim": ("routine", "claims", ("new_claim", "first_notice_of_loss", "fnol")),
    "claim_delay": ("delay", "claims", ("slow_claim", "claim_delayed")),
    "claim_denied": ("complaint", "claims", ("claim_rejected", "denied_claim")),
    "billing_question": ("information_request", "billing", ("premium_question",)),
    "premium_payment": ("routine", "billing", ()),
    "policy_question": ("information_request", "general", ("general_enquiry", "general_inquiry",
                                                           "coverage_question")),
}
#: interaction.issue (codes, aliases and the core's claim_status) ->
#: interaction.attributes.insurance_line ("general" for another issue at a business whose
#: vertical is insurance).
LINES: dict[str, str] = {
    **{name: line for code, (_, line, aliases) in ISSUE_CODES.items() for name in (code, *aliases)},
    "claim_status": "claims",
}
#: The trade's profile defaults (docs/advice.md "The business profile"): policies renew
#: yearly and clients stay for many years, so five years (or fifteen renewals and contacts)
#: make a loyal client; premiums over the years come to thousands, so 5000 is a valuable
#: client; claims are large, so money at stake counts from 1000 (two steps from 10000).
PROFILE: dict[str, Any] = {
    "loyal_tenure_years": 5,
    "loyal_visits": 15,
    "high_value": 5000,
    "major_amount": 1000,
}
#: Life events that can lead to a partner referral.
REFERRAL_EVENTS = frozenset({"home_purchase", "house_hunting", "new_baby", "retirement"})
#: Our gesture -> the core pack's general gesture of the same kind (rules/referrals.yaml).
#: The core gestures have no exclusive group to share, so the adjust hook vetoes the core
#: one whenever ours is offered: the client hears one coverage review, one realtor
#: referral, one consent question.
CORE_COUNTERPARTS: dict[str, str] = {
    "insurance_home_coverage_review": "home_coverage_review",
    "insurance_auto_coverage_review": "vehicle_coverage_review",
    "insurance_refer_realtor": "refer_realtor_or_lender",
    "insurance_refer_mortgage_lender": "refer_realtor_or_lender",
    "insurance_refer_financial_planner": "refer_financial_planner",
    "insurance_ask_consent_home_purchase": "ask_referral_consent",
    "insurance_ask_consent_new_baby": "ask_referral_consent",
    "insurance_ask_consent_retirement": "ask_referral_consent",
    "insurance_waive_policy_change_fee": "waive_small_fee",
}
POLICY_REVIEW_INTERVAL_DAYS = 365


def declined_referrals(customer: Any) -> bool:
    """The client said no to partner introductions before (a remembered preference)."""
    return customer.preferences.get(CONSENT) is False


def has_consent(customer: Any, scope: str | None) -> bool:
    """Recorded consent to share details with partners of ``scope`` (None: any partner),
    and no remembered refusal."""
    if declined_referrals(customer):
        return False
    consents = set(customer.consents)
    return CONSENT in consents or (scope is not None and f"{CONSENT}.{scope}" in consents)


def _line(context: Any) -> str | None:
    """The insurance line, or None when this is not an insurance business's interaction (with
    no vertical given - the plugin selected by configuration - a known insurance issue counts)."""
    return TRADE.scope(context, LINES, "general")


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


@hookimpl
def recommender_enrich_context(context: Any) -> dict[str, Any] | None:
    """Derive the line, consent and review facts; returns updates, never mutates ``context``.

    ``partner_referrals_declined`` is always given (true or false) when the client has a
    life event that can lead to a referral: a rule cannot test "not declined" on a missing
    value (missing never matches), so the consent rules need it explicit. Nothing is
    derived for another trade's interaction, so none of the rules can match there.
    """
    line = _line(context)
    if line is None:
        return None
    customer = context.customer
    updates: dict[str, Any] = {"interaction": {"attributes": {"insurance_line": line}}}
    attrs: dict[str, Any] = {}
    if REFERRAL_EVENTS & set(customer.life_events):
        attrs["partner_referrals_declined"] = declined_referrals(customer)
    if customer.tenure_years is not None:
        days = customer.attributes.get("days_since_policy_review")
        known = isinstance(days, (int, float)) and not isinstance(days, bool)
        attrs["policy_review_due"] = (not known) or days >= POLICY_REVIEW_INTERVAL_DAYS
    if attrs:
        updates["customer"] = {"attributes": attrs}
    return updates


# -- ranking: the consent guard ------------------------------------------------------


@hookimpl
def recommender_adjust_recommendations(recommendations: list[Any], context: Any) -> list[Any] | None:
    """Never refer without consent, whichever rule or pack proposed it; say each thing once.

    * ``insurance_refer_*`` without consent for its scope is vetoed;
    * while one of our ``insurance_ask_consent_*`` is in the list, or the client declined
      partner introductions, other packs' ``referral`` gestures are vetoed too: the
      question comes first, and a no is respected;
    * the core's counterpart of a gesture of ours that is in the list
      (:data:`CORE_COUNTERPARTS`) is vetoed: the agency's own version replaces the
      general one. If ours is not in the list (e.g. it needs approval), the core's stays.
    """
    customer = context.customer
    asking = any(r.gesture_id.startswith(ASK_PREFIX) for r in recommendations)
    declined = declined_referrals(customer)
    replaced = {CORE_COUNTERPARTS[r.gesture_id] for r in recommendations if r.gesture_id in CORE_COUNTERPARTS}
    kept = []
    for rec in recommendations:
        gid = rec.gesture_id
        if gid in replaced:
            continue  # ours says the same thing, in the agency's words
        if gid.startswith(REFER_PREFIX):
            if not has_consent(customer, REFERRAL_SCOPES.get(gid)):
                continue
        elif rec.category == "referral" and not gid.startswith(PREFIX) and (asking or declined):
            continue
        kept.append(rec)
    return kept if len(kept) != len(recommendations) else None


# -- outcomes ------------------------------------------------------------------------


class ReferralLedger:
    """Thread-safe in-memory counts of consent asks and referrals, per tenant."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def add(self, tenant: str, gesture_id: str, outcome: str) -> None:
        with self._lock:
            self._counts[(tenant, gesture_id, outcome)] += 1

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def report(self, tenant: str | None = None) -> dict[str, Any]:
        """``by_gesture`` counts, plus ``consent_asked``/``consent_given``/``consent_refused``,
        ``consent_rate`` (given / (given + refused)) and ``referrals_made`` (delivered referrals)."""
        with self._lock:
            items = list(self._counts.items())
        by_gesture: dict[str, dict[str, int]] = {}
        for (t, gid, outcome), n in items:
            if tenant is None or t == tenant:
                row = by_gesture.setdefault(gid, {})
                row[outcome] = row.get(outcome, 0) + n

        def total(prefix: str, outcome: str) -> int:
            return sum(row.get(outcome, 0) for gid, row in by_gesture.items() if gid.startswith(prefix))

        given, refused = total(ASK_PREFIX, "accepted"), total(ASK_PREFIX, "declined")
        return {
            "by_gesture": dict(sorted(by_gesture.items())),
            "consent_asked": total(ASK_PREFIX, "offered"),
            "consent_given": given,
            "consent_refused": refused,
            "consent_rate": round(given / (given + refused), 3) if given + refused else 0.0,
            "referrals_made": total(REFER_PREFIX, "delivered"),
        }


#: The process-wide ledger fed by :func:`recommender_record_outcome`.
LEDGER = ReferralLedger()


@hookimpl
def recommender_record_outcome(outcome: Any) -> None:
    """Count outcomes of this plugin's consent asks and referrals."""
    if outcome.gesture_id.startswith((ASK_PREFIX, REFER_PREFIX)):
        LEDGER.add(outcome.tenant, outcome.gesture_id, outcome.outcome)
