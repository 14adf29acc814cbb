"""The issue vocabulary and the severity of a case.

Every ``interaction.issue`` code belongs to a *family* (a complaint, a billing error, a
fraud report, a delay, a routine visit...). Rules test the family and a derived
``interaction.severity`` instead of enumerating codes, so a new code a business uses is one
line in the vocabulary, not an edit of every rule. Plugins add their trades' codes through
``recommender_register_issue_codes``.

Severity (0 none, 1 minor, 2 moderate, 3 major, 4 critical) follows what service-recovery
research says about the size of a failure (docs/advice.md): it starts at the family's base
and steps up for repeat contacts (counted, not only flagged), escalation, an angry customer,
a long delay or wait, and money at stake on the business's own scale. Every step is kept as
a reason, so the answer can say why a case counts as major.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from typing_extensions import Annotated

if TYPE_CHECKING:
    from .context import Context
    from .profile import Profile

__all__ = ["Family", "FAMILIES", "IssueCode", "Vocabulary", "Assessment", "assess", "derive_interaction",
           "CORE_CODES", "SEVERITY_BANDS", "SIGNALS"]

Kind = Literal["outcome", "process", "none"]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")]
#: Severity levels by name, 0 to 4.
SEVERITY_BANDS = ("none", "minor", "moderate", "major", "critical")


@dataclass(frozen=True)
class Family:
    """A kind of issue. ``kind``: an *outcome* failure costs the customer money or time (make
    it good in kind), a *process* failure is about how they were treated (apologise, fix the
    manner); ``base`` is the severity of a first, calm contact."""

    name: str
    negative: bool
    kind: Kind
    base: int
    meaning: str


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("complaint", True, "process", 1, "the customer is unhappy with how they were served"),
    Family("billing_error", True, "outcome", 2, "a wrong, double or unexpected charge"),
    Family("unauthorized_charge", True, "outcome", 3, "a charge the customer did not authorise"),
    Family("fraud", True, "outcome", 4, "fraud, a scam or identity theft on the customer's account"),
    Family("service_failure", True, "outcome", 2, "the service failed: an outage, dropped calls, a failed repair"),
    Family("delay", True, "outcome", 1, "late: a delivery, a repair, a booking, a reply"),
    Family("product_defect", True, "outcome", 2, "the product is faulty or damaged"),
    Family("wrong_or_changed_item", True, "outcome", 2, "not what was ordered or booked: a wrong item, a changed room"),
    Family("contact_preference", True, "process", 1, "the customer objects to how or how often we contact them"),
    Family("information_request", False, "none", 0, "a question: a status, how to, an account detail"),
    Family("routine", False, "none", 0, "an ordinary purchase, visit, booking or service"),
)}


class IssueCode(BaseModel):
    """One issue code of the vocabulary (what ``recommender_register_issue_codes`` takes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Code
    family: str
    aliases: tuple[Code, ...] = ()
    meaning: str = ""
    source: str = Field(default="core", exclude=True)

    @field_validator("family")
    @classmethod
    def _family(cls, v: str) -> str:
        if v not in FAMILIES:
            close = difflib.get_close_matches(v, FAMILIES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown issue family {v!r}{hint}; families: {', '.join(FAMILIES)}")
        return v


def _codes(family: str, *codes: str) -> list[IssueCode]:
    first, *aliases = codes
    return [IssueCode(code=first, family=family, aliases=tuple(aliases))]


#: The core vocabulary: general codes every trade uses. Plugins add their own.
CORE_CODES: tuple[IssueCode, ...] = tuple(
    c for family, codes in (
        ("complaint", ("complaint", "general_complaint", "poor_service", "rude_staff", "staff_attitude",
                       "service_complaint", "bad_experience", "dispute")),
        ("billing_error", ("billing_error", "billing", "overcharge", "double_charge", "wrong_charge",
                           "incorrect_bill", "billing_dispute", "unexpected_fee", "hidden_fee")),
        ("unauthorized_charge", ("unauthorized_charge", "unauthorised_charge", "unrecognized_charge",
                                 "unrecognised_charge", "unknown_charge")),
        ("fraud", ("fraud", "fraud_report", "identity_theft", "scam", "account_takeover", "phishing")),
        ("service_failure", ("service_failure", "outage", "call_failure", "dropped_call", "no_service",
                             "not_working", "software_bug", "repair_failed", "comeback", "system_error")),
        ("delay", ("late_delivery", "delivery_delay", "delay", "late", "shipping_delay", "order_delayed",
                   "repair_delay", "late_arrival", "missed_appointment")),
        ("product_defect", ("product_defect", "defect", "faulty_product", "damaged_item", "broken_item",
                            "damaged")),
        ("wrong_or_changed_item", ("wrong_item", "changed_item", "wrong_order", "missing_item", "item_missing",
                                   "substitution", "room_change", "booking_changed", "overbooked")),
        ("contact_preference", ("unwanted_contact", "contact_preference", "too_many_calls", "too_many_emails",
                                "marketing_complaint", "spam", "do_not_contact", "unsubscribe")),
        ("information_request", ("question", "information_request", "inquiry", "enquiry", "status_request",
                                 "order_status", "how_to", "account_question", "helpdesk_ticket", "claim_status",
                                 "loan_inquiry")),
        ("routine", ("routine", "purchase", "order", "order_pickup", "booking", "visit", "appointment",
                     "renewal", "sale", "checkout", "cancellation_request", "registration", "re_registration",
                     "account_setup", "signup", "form_submission", "repair", "service", "delivery",
                     "consultation",
                     # routine services the shipped packs name (trade plugins add their own)
                     "maintenance", "servicing", "annual_service", "tune_up", "cleaning", "installation",
                     "boiler_service", "hvac_service", "checkup", "oil_change", "lube", "oil_and_filter",
                     "flat_tire", "tire_rotation", "car_wash", "wiper_replacement", "battery_check",
                     "routine_maintenance",
                     "membership_signup", "new_membership", "enrollment", "joining", "policy_review",
                     "policy_renewal", "new_policy", "coverage_change", "policy_change", "address_change",
                     "add_driver", "account_review", "claim", "quote")),
    )
    for c in _codes(family, *codes)
)


class Vocabulary:
    """Issue codes and aliases -> their family, for one business (core plus its plugins)."""

    def __init__(self, codes: Iterable[IssueCode] = CORE_CODES) -> None:
        self.codes: dict[str, IssueCode] = {}
        self._family: dict[str, str] = {}
        for code in codes:
            self.add(code)

    def add(self, code: IssueCode) -> None:
        """Add a code; a code or alias another source already gave a different family is an error."""
        for name in (code.code, *code.aliases):
            known = self._family.get(name)
            if known is not None and known != code.family:
                owner = next(c.source for c in self.codes.values() if name in (c.code, *c.aliases))
                raise ValueError(f"issue code {name!r} is already in family {known!r} (from {owner}); "
                                 f"{code.source} puts it in {code.family!r}")
            self._family[name] = code.family
        self.codes[code.code] = code

    def family(self, issue: str) -> str | None:
        return self._family.get(issue)

    def suggest(self, issue: str) -> str | None:
        close = difflib.get_close_matches(issue, self._family, n=1, cutoff=0.75)
        return close[0] if close else None

    def unknown_note(self, issue: str) -> str:
        hint = self.suggest(issue)
        did = f" Did you mean {hint!r}?" if hint else ""
        return (f"Unknown issue code {issue!r}: its family is not known, so only the other signals set the "
                f"severity.{did} Add it to the vocabulary (recommender_register_issue_codes) to fix this.")

    def as_table(self) -> list[dict[str, Any]]:
        return [{"code": c.code, "family": c.family, "aliases": list(c.aliases), "source": c.source}
                for c in sorted(self.codes.values(), key=lambda c: (c.family, c.code))]


@dataclass
class Assessment:
    """What the context says about the case: its family, severity and why."""

    family: str | None
    severity: int
    reasons: list[str] = field(default_factory=list)
    #: which of :data:`SIGNALS` the context shows
    signals: list[str] = field(default_factory=list)

    @property
    def band(self) -> str:
        return SEVERITY_BANDS[self.severity]

    @property
    def negative(self) -> bool:
        return self.severity > 0


def _repeats(ctx: "Context") -> int | None:
    i = ctx.interaction
    if i.repeat_count is not None:
        return i.repeat_count
    if i.repeat_issue is not None:
        return 1 if i.repeat_issue else 0
    return None


def derive_interaction(ctx: "Context", profile: "Profile") -> tuple[dict[str, Any], list[str]]:
    """The interaction's facts derived from its other fields, unless given, and a note for a
    contradiction: ``long_wait`` from ``wait_minutes`` (the profile's ``long_wait_minutes``),
    ``repeat_issue`` from ``repeat_count`` (one earlier contact or more is a repeat).

    When ``repeat_issue`` and ``repeat_count`` disagree, the count wins: it is the recorded fact
    (an integration often sends a default ``false`` flag), severity already counts it, and
    the rules then read the case as the severity does; the note names both fields."""
    i = ctx.interaction
    out: dict[str, Any] = {}
    notes: list[str] = []
    if i.long_wait is None and i.wait_minutes is not None:
        out["long_wait"] = i.wait_minutes >= profile.long_wait_minutes
    if i.repeat_count is not None and i.repeat_issue is not (i.repeat_count >= 1):
        out["repeat_issue"] = i.repeat_count >= 1
        if i.repeat_issue is not None:
            notes.append(f"interaction.repeat_issue is {str(i.repeat_issue).lower()} but interaction.repeat_count "
                         f"is {i.repeat_count}: the count wins, so repeat_issue is taken as "
                         f"{str(out['repeat_issue']).lower()}.")
    return out, notes


#: The signals besides the family that can make a case negative (``Assessment.signals``).
SIGNALS = ("repeat", "escalated", "upset", "late", "long_wait", "money_at_stake")


def assess(ctx: "Context", vocabulary: Vocabulary, profile: "Profile") -> Assessment:
    """The family and severity of ``ctx`` (a caller's own ``family``/``severity`` win)."""
    i = ctx.interaction
    family = i.family or vocabulary.family(i.issue)
    fam = FAMILIES.get(family) if family else None
    level = fam.base if fam else 0
    reasons = [f"{family}: base {fam.base}"] if fam and fam.base else []
    signals: list[str] = []  # what besides the family says the experience is negative

    def step(signal: str, by: int, why: str) -> None:
        nonlocal level
        signals.append(signal)
        if by:
            level += by
            reasons.append(f"{why}: +{by}")

    def n(count: float, one: str, many: str) -> str:
        return f"{count:g} {one if count == 1 else many}"

    repeats = _repeats(ctx)
    if repeats:
        step("repeat", 2 if repeats >= 3 else 1, f"contact {repeats + 1} about this issue")
    if i.escalated:
        step("escalated", 2, "escalated or disputed")
    if i.sentiment is not None and i.sentiment <= -0.5:
        step("upset", 1, f"upset customer (sentiment {i.sentiment:g})")
    if i.delay_days is not None and i.delay_days > 0:
        # a delay family's base already counts the first days; anything else late at all is a step
        by = 2 if i.delay_days >= 14 else 1 if i.delay_days >= 3 or not fam or not fam.negative else 0
        step("late", by, f"{n(i.delay_days, 'day', 'days')} late")
    if i.wait_minutes is not None and i.wait_minutes >= profile.long_wait_minutes:
        step("long_wait", 1, f"waited {n(i.wait_minutes, 'minute', 'minutes')}")
    if i.amount is not None and i.amount >= profile.major_amount and (fam is None or fam.negative or signals):
        step("money_at_stake", 2 if i.amount >= 10 * profile.major_amount else 1,
             f"{i.amount:g} {profile.currency} at stake")
    if fam is not None and not fam.negative and not signals:
        level = 0
    if i.severity is not None:
        return Assessment(family, i.severity, [f"given: {i.severity}"], signals)
    return Assessment(family, min(level, 4), reasons, signals)
