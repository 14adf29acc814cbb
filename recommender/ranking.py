"""Scoring and arbitration: which matched gestures to offer now, in what order.

Score (deterministic, documented in docs/ranking.md)::

    relationship = 1 + min(tenure_years, 20) / 5 + log10(1 + lifetime_value) / 2
    stake        = max(lifetime_value, 100)
    score        = 100 * tier_weight * (0.5 + priority / 100) * relationship / (1 + cost / stake)

with tier weights recover 3, meet 2, exceed 1. A long, valuable relationship raises the
value of a gesture; a gesture that is expensive relative to what is at stake falls.

Arbitration then walks the candidates in order (recover, then meet: the baseline; then
the exceed extras; each by score) and withholds, with a reason: a second gesture of an
exclusive group (kept, or already awaiting approval), gestures above the serving staff
member's authority (``needs_approval``), one that conflicts with a chosen gesture, gestures
past the per-interaction budget, and extras past the cap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from .context import STAFF_LEVELS, Context
from .packs import Gesture, Rule

__all__ = ["Candidate", "score", "scorer", "arbitrate", "rank_key", "TIER_WEIGHT", "Decision"]

TIER_WEIGHT = {"recover": 3.0, "meet": 2.0, "exceed": 1.0}
BASELINE = ("recover", "meet")
_TIER_ORDER = {"recover": 0, "meet": 1, "exceed": 2}
_RANK = {level: i for i, level in enumerate(STAFF_LEVELS)}


def rank_key(tier: str, score: float, gesture_id: str) -> tuple[int, float, str]:
    """Recover first, then meet (the baseline of a perfect experience), then extras; by score."""
    return (_TIER_ORDER[tier], -score, gesture_id)


def relationship(ctx: Context) -> float:
    c = ctx.customer
    return 1 + min(c.tenure_years or 0.0, 20.0) / 5 + math.log10(1 + c.lifetime_value) / 2


def scorer(ctx: Context) -> Callable[[str, int, float | None], float]:
    """The documented score for one context, as ``score(tier, priority, cost)``: what depends
    only on the customer (relationship, stake) is computed once."""
    rel = relationship(ctx)
    stake = max(ctx.customer.lifetime_value, 100.0)

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


def arbitrate(cands: list[Candidate], ctx: Context, *, budget: float | None, max_extras: int) -> Decision:
    staff_rank = _RANK[ctx.staff.level]
    chosen: list[Candidate] = []
    withheld: list[tuple[Candidate, str, str]] = []
    groups: dict[str, str] = {}  # exclusive group -> the chosen gesture holding it
    asked: dict[str, str] = {}  # exclusive group -> the gesture already awaiting approval for it
    barred: set[str] = set()  # gestures some chosen gesture conflicts with
    spent = 0.0
    extras = 0
    for cand in sorted(cands, key=Candidate.sort_key):
        g = cand.gesture
        group = g.exclusive_group
        if group and group in groups:
            withheld.append((cand, "exclusive_group",
                             f"only one gesture of group {group!r}; {groups[group]} ranks higher"))
            continue
        if _RANK[g.authority] > staff_rank:
            if group and group in asked:  # one approval request per group is enough
                withheld.append((cand, "exclusive_group",
                                 f"only one gesture of group {group!r}; {asked[group]} ranks higher and awaits approval"))
                continue
            withheld.append((cand, "needs_approval",
                             f"needs {g.authority} staff authority; {ctx.staff.level} staff is serving"))
            if group:
                asked[group] = g.id
            continue
        clash = None
        if g.conflicts_with or g.id in barred:
            clash = next((c.gesture.id for c in chosen
                          if c.gesture.id in g.conflicts_with or g.id in c.gesture.conflicts_with), None)
        if clash:
            withheld.append((cand, "conflict", f"conflicts with {clash}, which ranks higher"))
            continue
        if budget is not None:
            if cand.cost is None:
                withheld.append((cand, "cost_unknown", "its cost depends on a field the context lacks, and a budget is set"))
                continue
            if spent + cand.cost > budget + 1e-9:
                withheld.append((cand, "over_budget",
                                 f"costs {cand.cost:.2f}; {budget - spent:.2f} of the {budget:.2f} budget is left"))
                continue
        if g.tier not in BASELINE:
            if extras >= max_extras:
                withheld.append((cand, "cap", f"at most {max_extras} extra gesture(s) per interaction"))
                continue
            extras += 1
        if g.exclusive_group:
            groups[g.exclusive_group] = g.id
        spent += cand.cost or 0.0
        chosen.append(cand)
        barred.update(g.conflicts_with)
    return Decision(chosen, withheld)
