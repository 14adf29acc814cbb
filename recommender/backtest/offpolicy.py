"""Off-policy evaluation: what a new rule set (or learning on/off) would have achieved on the
logged decisions, with confidence intervals (docs/learning.md, "Reading the estimates").

The estimators work on per-decision numbers and know nothing of rules:

* :func:`ips`, inverse propensity: ``mean(w_i * r_i)`` with ``w_i = pi(a_i|x_i) / mu(a_i|x_i)``,
  the target policy's probability of the logged action over the logging policy's (logged);
* :func:`doubly_robust`: ``mean(q_pi(x_i) + w_i * (r_i - q(x_i, a_i)))`` with a reward model
  ``q``: unbiased when either the propensities or the model are right, and tighter than IPS;
* :func:`on_policy`: the logged policy's own mean;
* :func:`difference`: a paired estimate of new minus logged, decision by decision.

Intervals are normal: ``mean +- z * sd / sqrt(n)`` (``z`` 1.96: 95%).

:func:`evaluate_log` applies them to a store's decision log: each decision with outcomes is
recommended again under the new policy (through a :class:`ReplayMemory`: the holds and the
evidence logged with it), the logged action is what was listed, its logged propensity the
extras draw's chance times the Thompson choice (``learning_decisions``); the new policy's
probability of the same action comes from its replay's own trace. Acceptance (gestures
accepted per decision) and cost (cost of accepted gestures per decision) are estimated;
coverage of negative experiences (a recover gesture listed when severity >= 1) needs no
estimate: it is known for every decision.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["Estimate", "ips", "snips", "doubly_robust", "on_policy", "difference", "mean_interval",
           "PolicyEstimate", "evaluate_log", "worse", "METRICS", "Z95"]

Z95 = 1.959964
#: Metrics evaluate_log estimates, and whether higher is better.
METRICS = {"acceptance": True, "cost": False, "coverage": True}


@dataclass(frozen=True)
class Estimate:
    """A value with its interval ``[low, high]`` over ``n`` samples."""

    value: float
    low: float
    high: float
    n: int
    method: str = ""

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def mean_interval(terms: Sequence[float], method: str = "", z: float = Z95) -> Estimate:
    """The mean of ``terms`` with a normal interval."""
    n = len(terms)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, method)
    m = math.fsum(terms) / n
    var = math.fsum((t - m) ** 2 for t in terms) / (n - 1) if n > 1 else 0.0
    half = z * math.sqrt(var / n)
    return Estimate(m, m - half, m + half, n, method)


def _weights(logged: Sequence[float], target: Sequence[float]) -> list[float]:
    if len(logged) != len(target):
        raise ValueError("logged and target propensities differ in length")
    out = []
    for mu, pi in zip(logged, target):
        if not mu > 0:
            raise ValueError(f"a logged propensity must be > 0 (got {mu!r}): the logging policy took the action")
        out.append(pi / mu)
    return out


def ips(rewards: Sequence[float], logged: Sequence[float], target: Sequence[float], z: float = Z95) -> Estimate:
    """Inverse propensity scoring."""
    w = _weights(logged, target)
    return mean_interval([wi * r for wi, r in zip(w, rewards)], "ips", z)


def snips(rewards: Sequence[float], logged: Sequence[float], target: Sequence[float], z: float = Z95) -> Estimate:
    """Self-normalised IPS (``sum(w r) / sum(w)``; delta-method interval): lower variance, a
    small bias."""
    w = _weights(logged, target)
    sw = math.fsum(w)
    n = len(w)
    if n == 0 or sw <= 0:
        return Estimate(float("nan"), float("nan"), float("nan"), n, "snips")
    v = math.fsum(wi * r for wi, r in zip(w, rewards)) / sw
    terms = [wi * (r - v) * n / sw for wi, r in zip(w, rewards)]
    e = mean_interval(terms, "snips", z)
    half = (e.high - e.low) / 2
    return Estimate(v, v - half, v + half, n, "snips")


def doubly_robust(rewards: Sequence[float], logged: Sequence[float], target: Sequence[float],
                  model_logged: Sequence[float], model_target: Sequence[float], z: float = Z95) -> Estimate:
    """Doubly robust: ``model_logged[i]`` is the reward model's prediction for the logged
    action, ``model_target[i]`` its expectation under the target policy."""
    w = _weights(logged, target)
    terms = [qt + wi * (r - ql) for wi, r, ql, qt in zip(w, rewards, model_logged, model_target)]
    return mean_interval(terms, "dr", z)


def on_policy(rewards: Sequence[float], z: float = Z95) -> Estimate:
    return mean_interval(list(rewards), "logged", z)


def difference(new_terms: Sequence[float], old_terms: Sequence[float], z: float = Z95) -> Estimate:
    """New minus old, paired decision by decision (the interval of the change itself)."""
    return mean_interval([a - b for a, b in zip(new_terms, old_terms)], "difference", z)


def worse(change: Estimate, higher_is_better: bool) -> bool:
    """Whether ``change`` (new minus logged) is worse beyond its interval."""
    if change.n == 0 or math.isnan(change.value):
        return False
    return change.high < 0 if higher_is_better else change.low > 0


# -- the decision log ------------------------------------------------------------------------


@dataclass
class PolicyEstimate:
    """What the new policy would have achieved on the logged decisions, metric by metric."""

    decisions: int = 0  # logged decisions read
    evaluated: int = 0  # with a context, a learning trace and at least one outcome
    supported: int = 0  # whose logged action the new policy could have taken
    logged: dict[str, Estimate] = field(default_factory=dict)
    ips: dict[str, Estimate] = field(default_factory=dict)
    dr: dict[str, Estimate] = field(default_factory=dict)
    change: dict[str, Estimate] = field(default_factory=dict)  # DR minus logged, paired
    worse: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"decisions": self.decisions, "evaluated": self.evaluated, "supported": self.supported,
                **{name: {m: e.as_dict() for m, e in getattr(self, name).items()}
                   for name in ("logged", "ips", "dr", "change")}, "worse": self.worse}


def _outcomes(store: Any, ids: Sequence[str]) -> dict[str, dict[str, set[str]]]:
    """decision id -> gesture -> outcomes recorded."""
    from sqlalchemy import MetaData, Table, select

    table = Table("outcomes", MetaData(), autoload_with=store.engine)
    out: dict[str, dict[str, set[str]]] = {}
    with store.engine.connect() as conn:
        for i in range(0, len(ids), 500):
            chunk = list(ids[i:i + 500])
            rows = conn.execute(select(table.c.decision_id, table.c.gesture_id, table.c.outcome)
                                .where(table.c.decision_id.in_(chunk)))
            for d, g, o in rows:
                out.setdefault(d, {}).setdefault(g, set()).add(o)
    return out


def _taken(outcomes: Mapping[str, set[str]], g: str) -> bool:
    return bool(outcomes.get(g, set()) & {"accepted", "delivered"})


def _segments(decision_or_result: Any) -> dict[str, str]:
    """gesture -> the segment its evidence was read in (a logged decision's trace, or a result's)."""
    trace = getattr(decision_or_result, "learning", None)
    if trace is None:
        return {}
    evidence = trace.get("evidence") if isinstance(trace, dict) else trace.evidence
    return {g: str(v.get("segment", "")) for g, v in (evidence or {}).items() if isinstance(v, dict)}


def _tiers(result: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    base = tuple(r.gesture_id for r in result.recommendations if r.tier != "exceed")
    return base, tuple(r.gesture_id for r in result.recommendations if r.tier == "exceed")


def evaluate_log(decisions: Iterable[Any], recommender: Any, store: Any, *,
                 fail_on: Sequence[str] = ("acceptance", "coverage"), z: float = Z95) -> PolicyEstimate:
    """Estimate ``recommender`` (the new policy) on logged ``decisions`` of ``store``.

    A decision counts when it has a context, a learning trace (decisions logged by this
    version with a store) and at least one outcome. The reward model of the doubly robust
    estimate is each gesture's smoothed acceptance in its segment in the log
    (``(accepted + 1) / (shown + 2)``; the gesture's overall rate for a segment never shown),
    times its cost for the cost metric.
    """
    from ..learning import extras_probability
    from .decisions import ReplayMemory, replay_context

    rows: list[tuple[Any, dict[str, Any]]] = []
    est = PolicyEstimate()
    for d in decisions:
        est.decisions += 1
        ctx = replay_context(d)
        if ctx is not None and isinstance(getattr(d, "learning", None), dict):
            rows.append((d, ctx))
    outcomes = _outcomes(store, [d.id for d, _ in rows]) if rows else {}
    rows = [(d, c) for d, c in rows if d.id in outcomes]
    # the reward model: each gesture's acceptance in its segment (as logged), from the whole log
    seen: dict[tuple[str, str], list[float]] = {}
    for d, _ in rows:
        segs = _segments(d)
        for g in d.gestures:
            for key in ((g, segs.get(g, "")), (g, "*")):
                s = seen.setdefault(key, [0.0, 0.0])  # shown, accepted
                s[0] += 1
                s[1] += _taken(outcomes[d.id], g)

    def q_accept(g: str, segs: Mapping[str, str]) -> float:
        s = seen.get((g, segs.get(g, ""))) or seen.get((g, "*")) or [0.0, 0.0]
        return (s[1] + 1) / (s[0] + 2)

    terms: dict[str, dict[str, list[float]]] = {m: {"logged": [], "ips": [], "dr": []} for m in METRICS}
    for d, ctx in rows:
        new = recommender.recommend(ctx, store=ReplayMemory(d))
        got = outcomes[d.id]
        trace = d.learning or {}
        logged_costs = {g: float(c or 0.0) for g, c in (d.costs or {}).items()}
        kinds = getattr(d, "tiers", None) or {}
        log_extras = tuple(g for g in d.gestures if kinds.get(g) == "exceed")
        log_base = tuple(g for g in d.gestures if g not in log_extras)
        new_base, _ = _tiers(new)
        new_trace = new.learning
        chance = new_trace.extras_chance if new_trace is not None else None
        choices = dict(new_trace.choices) if new_trace is not None else {}
        mu = extras_probability(trace.get("extras_chance"), trace.get("choices") or {}, log_extras)
        if mu <= 0:  # a log from before choices were logged: what was given had probability 1 then
            mu = 1.0
        pi = extras_probability(chance, choices, log_extras) if set(new_base) == set(log_base) else 0.0
        if pi > 0:
            est.supported += 1
        accepted = sum(1.0 for g in d.gestures if _taken(got, g))
        spent = sum(logged_costs.get(g, 0.0) for g in d.gestures if _taken(got, g))
        new_costs = {r.gesture_id: r.cost for r in new.recommendations}
        extra_costs = {g: (next((w.cost for w in new.withheld if w.gesture_id == g), None)
                           if g not in new_costs else new_costs[g]) for g in choices}
        segs = {**_segments(new), **_segments(d)}

        def q(g: str, cost: float | None = None, money: bool = False) -> float:
            return q_accept(g, segs) * (float(cost or 0.0) if money else 1.0)

        expect_extra = (chance or 0.0) * sum(p * q(g) for g, p in choices.items())
        expect_extra_cost = (chance or 0.0) * sum(p * q(g, extra_costs.get(g), True) for g, p in choices.items())
        q_new = sum(q(g) for g in new_base) + expect_extra
        q_new_cost = sum(q(g, new_costs.get(g), True) for g in new_base) + expect_extra_cost
        q_log = sum(q(g) for g in d.gestures)
        q_log_cost = sum(q(g, logged_costs.get(g), True) for g in d.gestures)
        w = pi / mu
        for metric, r, ql, qt in (("acceptance", accepted, q_log, q_new), ("cost", spent, q_log_cost, q_new_cost)):
            terms[metric]["logged"].append(r)
            terms[metric]["ips"].append(w * r)
            terms[metric]["dr"].append(qt + w * (r - ql))
        severity = (ctx.get("interaction") or {}).get("severity")
        if severity is None and new.assessment is not None:
            severity = new.assessment.severity
        if (severity or 0) >= 1:
            covered_log = any(kinds.get(g) == "recover" for g in d.gestures)
            covered_new = any(r.tier == "recover" for r in new.recommendations)
            for name, v in (("logged", covered_log), ("ips", covered_new), ("dr", covered_new)):
                terms["coverage"][name].append(1.0 if v else 0.0)
    est.evaluated = len(rows)
    for metric, t in terms.items():
        est.logged[metric] = mean_interval(t["logged"], "logged", z)
        est.ips[metric] = mean_interval(t["ips"], "ips", z)
        est.dr[metric] = mean_interval(t["dr"], "dr", z)
        est.change[metric] = difference(t["dr"], t["logged"], z)
    est.worse = [m for m in fail_on if m in METRICS and worse(est.change[m], METRICS[m])]
    return est
