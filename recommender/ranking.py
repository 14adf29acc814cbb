"""Scoring and arbitration: which matched gestures to offer now, in what order.

Score (deterministic, documented in docs/ranking.md)::

    relationship = 1 + min(tenure_years, 20) / 5 + log10(1 + lifetime_value) / 2
    stake        = max(lifetime_value, 100)
    score        = 100 * tier_weight * (0.5 + priority / 100) * relationship / (1 + cost / stake)

with tier weights recover 3, meet 2, exceed 1. A long, valuable relationship raises the
value of a gesture; a gesture that is expensive relative to what is at stake falls.

(an unknown tenure or lifetime value weighs as none: the score only orders gestures and is
never shown as a claim about the customer).

With a memory store that learned from outcomes, the pipeline multiplies the score by the
gesture's learned acceptance over the prior its rule's priority gave (``p / p0``, 1 until a
segment has enough outcomes; :mod:`recommender.learning`): the order within a tier changes,
the tier order and every guardrail below do not.

Arbitration then walks the candidates in order (recover, then meet: the baseline; then
the exceed extras; each by score) and withholds, with a reason: a second gesture of an
exclusive group (kept, or already awaiting approval), a gesture that would contact a
customer whose issue is being contacted, extras when the extras draw did not fall on this
interaction, gestures above the serving staff member's authority or money limit
(``needs_approval``), one that conflicts with a chosen gesture, gestures past the
per-interaction budget, and gestures past the listing cap of their tier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from .context import STAFF_LEVELS, Context
from .packs import Gesture, Rule

__all__ = ["Candidate", "score", "scorer", "arbitrate", "rank_key", "TIER_WEIGHT", "Decision", "Limits"]

TIER_WEIGHT = {"recover": 3.0, "meet": 2.0, "exceed": 1.0}
BASELINE = ("recover", "meet")
_TIER_ORDER = {"recover": 0, "meet": 1, "exceed": 2}
_RANK = {level: i for i, level in enumerate(STAFF_LEVELS)}


def rank_key(tier: str, score: float, gesture_id: str) -> tuple[int, float, str]:
    """Recover first, then meet (the baseline of a perfect experience), then extras; by score."""
    return (_TIER_ORDER[tier], -score, gesture_id)


def relationship(ctx: Context) -> float:
    c = ctx.customer
    return 1 + min(c.tenure_years or 0.0, 20.0) / 5 + math.log10(1 + (c.lifetime_value or 0.0)) / 2


def scorer(ctx: Context) -> Callable[[str, int, float | None], float]:
    """The documented score for one context, as ``score(tier, priority, cost)``: what depends
    only on the customer (relationship, stake) is computed once."""
    rel = relationship(ctx)
    stake = max(ctx.customer.lifetime_value or 0.0, 100.0)

    def score(tier: str, priority: int, cost: float | None) -> float:
        return round(100 * TIER_WEIGHT[tier] * (0.5 + priority / 100) * rel / (1 + (cost or 0.0) / stake), 2)

    return score


def score(tier: str, priority: int, cost: float | None, ctx: Context) -> float:
    """The documented score of one gesture."""
    return scorer(ctx)(tier, priority, cost)


@dataclass
class Candidate:
    gesture: Gesture
    matches: list[tuple[Rule, int]]  # (rule, branch index)
    cost: float | None
    score: float
    notes: list[str] = field(default_factory=list)
    #: the learned acceptance (a :class:`~recommender.learning.Posterior`), with a store only
    evidence: Any = None

    @property
    def priority(self) -> int:
        m = self.matches
        return m[0][0].priority if len(m) == 1 else max(r.priority for r, _ in m)

    def sort_key(self) -> tuple[Any, ...]:
        return rank_key(self.gesture.tier, self.score, self.gesture.id)


@dataclass
class Decision:
    chosen: list[Candidate]
    withheld: list[tuple[Candidate, str, str]]  # (candidate, reason, detail)
    #: gesture id -> the gesture its reason names (a conflict, the holder of its group)
    blocked_by: dict[str, str] = field(default_factory=dict)


@dataclass
class Limits:
    """What one interaction may be given: the serving staff's money limit, the listing caps
    per tier, the budget, whether the extras draw was won, and whether the customer's issue
    is how we contact them."""

    money: float
    currency: str
    listing: dict[str, int]
    budget: float | None = None
    extra_drawn: bool = True
    extras_rate: float = 0.0
    no_contact: bool = False


def arbitrate(cands: list[Candidate], ctx: Context, limits: Limits) -> Decision:
    staff = ctx.staff.level
    staff_rank = _RANK[staff]
    budget = limits.budget
    chosen: list[Candidate] = []
    withheld: list[tuple[Candidate, str, str]] = []
    groups: dict[str, str] = {}  # exclusive group -> the chosen gesture holding it
    asked: dict[str, str] = {}  # exclusive group -> the gesture already awaiting approval for it
    barred: set[str] = set()  # gestures some chosen gesture conflicts with
    listed = {tier: 0 for tier in _TIER_ORDER}
    spent = 0.0
    blocked_by: dict[str, str] = {}
    for cand in sorted(cands, key=Candidate.sort_key):
        g = cand.gesture
        group = g.exclusive_group
        if group and group in groups:
            withheld.append((cand, "exclusive_group",
                             f"only one gesture of group {group!r}; {groups[group]} ranks higher"))
            blocked_by[g.id] = groups[group]
            continue
        if limits.no_contact and g.contacts_customer:
            withheld.append((cand, "contact_preference",
                             "the customer's issue is how we contact them: no gesture that contacts them again"))
            continue
        if g.tier == "exceed" and not limits.extra_drawn:
            withheld.append((cand, "extras_rate",
                             f"kept rare so it stays a surprise: an extra goes to about {limits.extras_rate:.0%} of "
                             "interactions, and not to this one today"))
            continue
        if cand.cost is None and g.cost_fields():
            withheld.append((cand, "cost_unknown", f"its cost depends on {', '.join(g.cost_fields())}, which the "
                                                   "context lacks: no one can check it against a money limit"))
            continue
        over = None
        if _RANK[g.authority] > staff_rank:
            over = f"needs {g.authority} staff authority; {staff} staff is serving"
        elif cand.cost is not None and cand.cost > limits.money + 1e-9:
            over = (f"costs {cand.cost:.2f} {limits.currency}; {staff} staff may give up to "
                    f"{limits.money:.2f} {limits.currency} on their own")
        if over:
            if group and group in asked:  # one approval request per group is enough
                withheld.append((cand, "exclusive_group",
                                 f"only one gesture of group {group!r}; {asked[group]} ranks higher and awaits approval"))
                blocked_by[g.id] = asked[group]
                continue
            withheld.append((cand, "needs_approval", over))
            if group:
                asked[group] = g.id
            continue
        clash = None
        if g.conflicts_with or g.id in barred:
            clash = next((c.gesture.id for c in chosen
                          if c.gesture.id in g.conflicts_with or g.id in c.gesture.conflicts_with), None)
        if clash:
            withheld.append((cand, "conflict", f"conflicts with {clash}, which ranks higher"))
            blocked_by[g.id] = clash
            continue
        if budget is not None:
            if cand.cost is not None and spent + cand.cost > budget + 1e-9:
                withheld.append((cand, "over_budget",
                                 f"costs {cand.cost:.2f}; {budget - spent:.2f} of the {budget:.2f} budget is left"))
                continue
        cap = limits.listing[g.tier]
        if listed[g.tier] >= cap:
            withheld.append((cand, "listing_cap", f"at most {cap} {g.tier} gesture(s) are listed; "
                                                  "this one ranks below them"))
            continue
        listed[g.tier] += 1
        if g.exclusive_group:
            groups[g.exclusive_group] = g.id
        spent += cand.cost or 0.0
        chosen.append(cand)
        barred.update(g.conflicts_with)
    return Decision(chosen, withheld, blocked_by)
