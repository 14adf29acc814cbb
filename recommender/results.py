"""What a recommendation returns: one pydantic model per output, JSON in and JSON out."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .context import new_list

__all__ = [
    "ConditionResult",
    "RuleMatch",
    "Recommendation",
    "Evidence",
    "LearningTrace",
    "Withheld",
    "Receipt",
    "PluginWarning",
    "NearMiss",
    "Suppression",
    "Assessment",
    "RecommendationResult",
    "Explanation",
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConditionResult(_Out):
    """One test of a rule, with the value the context actually had.

    Immutable, like the rule match it belongs to (rule matches are shared between results).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    op: str
    value: Any = None
    actual: Any = None
    text: str


class RuleMatch(_Out):
    """A rule that chose a gesture, with its tests. Immutable and shared between results."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule_id: str
    pack: str
    priority: int
    because: str
    conditions: tuple[ConditionResult, ...]  # a tuple: no one handed a shared match can change it


class Evidence(_Out):
    """What outcomes say about a gesture in this segment (with a store; see docs/learning.md)."""

    acceptance: float = Field(description="The posterior mean acceptance among similar customers")
    outcomes: int = Field(description="Outcomes (acceptances and declines) behind it")
    alpha: float
    beta: float
    prior: float = Field(description="The prior mean acceptance, from the rule's priority")
    segment: str
    learned: bool = Field(description="Enough outcomes to change the order")
    delivery: float | None = Field(default=None, description="Share of acceptances delivered")
    choice_probability: float | None = Field(
        default=None, description="An extra chosen by Thompson sampling: the chance it had of being chosen")
    text: str = Field(description='e.g. "accepted by 62% of similar customers (140 outcomes)"')


class LearningTrace(_Out):
    """With a store: what the decision's stochastic parts were (for off-policy evaluation) and
    the evidence every candidate was ranked with (for exact replays)."""

    extras_chance: float | None = None
    extra_drawn: bool | None = None
    choices: dict[str, float] = Field(default_factory=dict)
    evidence: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Recommendation(_Out):
    gesture_id: str
    title: str
    category: str
    tier: Literal["recover", "meet", "exceed"]
    cost: float | None = Field(description="What the gesture costs the business here; null if unknown")
    score: float
    authority: str
    script: str = Field(description="The customer-facing line, filled from the context")
    agent_reason: str = Field(description="Why, for the person serving")
    rules: list[RuleMatch]
    follow_up_days: int | None = None
    due_date: date | None = Field(default=None, description="When the follow-up is due (needs interaction.occurred_at)")
    source: str = Field(default="", description="The pack or plugin that declared the gesture")
    evidence: Evidence | None = Field(default=None, description="With a store: learned acceptance")


class Withheld(_Out):
    """A gesture that matched but is not in the list, and why."""

    gesture_id: str
    title: str
    tier: str
    cost: float | None
    score: float
    reason: Literal["needs_approval", "over_budget", "cost_unknown", "exclusive_group", "conflict", "cap",
                    "listing_cap", "extras_rate", "contact_preference",
                    "suppressed", "vetoed", "abuse_review", "goodwill_cap"]
    detail: str
    rules: list[str] = Field(default_factory=new_list)
    available_on: date | None = None
    script: str | None = Field(default=None, description="needs_approval only: what would be said to the customer")
    agent_reason: str | None = Field(default=None, description="needs_approval only: why, for the approver")


class Receipt(_Out):
    """Cite this on a ticket: the same context and ruleset version give the same answer."""

    id: str
    context_hash: str
    ruleset_version: str
    day: date | None = Field(default=None, description="The day the extras draw was made for")


class Assessment(_Out):
    """The case as the rules saw it: the issue's family and the severity, with its reasons."""

    family: str | None = Field(description="The issue's family (null: an unknown issue code)")
    severity: int = Field(ge=0, le=4, description="0 none, 1 minor, 2 moderate, 3 major, 4 critical")
    band: Literal["none", "minor", "moderate", "major", "critical"]
    reasons: list[str] = Field(default_factory=new_list)
    signals: list[str] = Field(default_factory=new_list, description=(
        "What besides the family made it negative: repeat, escalated, upset, late, long_wait, money_at_stake"))


class PluginWarning(_Out):
    plugin: str
    hook: str
    message: str


class NearMiss(_Out):
    """A rule that failed on exactly one condition, and what would flip it."""

    rule_id: str
    pack: str
    gestures: list[str]
    because: str
    failed: ConditionResult
    hint: str
    change: Literal["missing", "consent", "ask", "fixed"] = Field(
        default="fixed", description="What it takes to flip: missing data, a consent, a question to ask, or a fact")


class Suppression(_Out):
    gesture_id: str
    reason: str
    available_on: date | None = None


class RecommendationResult(_Out):
    recommendations: list[Recommendation]
    needs_approval: list[Withheld] = Field(default_factory=new_list)
    withheld: list[Withheld] = Field(default_factory=new_list, description="Matched but dropped: budget, exclusivity, cap, policy")
    assessment: Assessment | None = None
    missing_inputs: list[str] = Field(default_factory=new_list, description=(
        "Fields rules asked about that the context lacked, those that would change most first"))
    type_mismatches: list[str] = Field(default_factory=new_list)
    warnings: list[PluginWarning] = Field(default_factory=new_list)
    notes: list[str] = Field(default_factory=new_list)
    receipt: Receipt
    decision_id: str | None = None
    ruleset_version: str
    business: str = "default"
    learning: LearningTrace | None = Field(default=None, description="With a store: the learning trace")

    def gesture_ids(self) -> list[str]:
        return [r.gesture_id for r in self.recommendations]


class Explanation(RecommendationResult):
    near_misses: list[NearMiss] = Field(default_factory=new_list)
    rules_evaluated: int = 0
    rules_matched: list[str] = Field(default_factory=new_list)
