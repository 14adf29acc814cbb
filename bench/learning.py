"""Learning from outcomes, simulated: regret of learning vs the rules' fixed order vs an oracle.

A business whose customers take gestures at known rates per segment (high-value customers
prefer a call-back, the others a credit; among the extras, the ones that delight differ too).
Every interaction runs through the real pipeline (``Recommender.recommend`` with a memory):
the rules match the same gestures every time; what is listed depends on the policy:

* ``fixed``: ``Recommender(learning=False)``: the rules' priorities decide, always;
* ``learning``: the learned acceptance reorders each tier once a segment has enough outcomes,
  and the extra is chosen by Thompson sampling;
* ``oracle``: knows the true rates and lists the best gesture of each kind.

The reward of an interaction is the expected number of gestures accepted (the true rates of
the gestures listed, so the curves are smooth); each listed gesture's outcome is drawn from
its true rate and recorded, which is what learning sees. The memory is
:class:`SimMemory`, the store's learning (``recommender.memory.learning``) in a dict: the
same model functions, no database, so thousands of interactions take seconds.

    python -m bench.learning            # the regret table
    python -m bench.learning --n 3000 --seeds 5
"""

from __future__ import annotations

import argparse
import random
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from recommender import Recommender
from recommender.learning import LearningConfig, Posterior, Stats, counts_of, posterior, segment_key, update
from recommender.memory_protocol import Hold, Offer

__all__ = ["PACK", "TRUTH", "SimMemory", "simulate", "regret_table", "main"]

PACK: dict[str, Any] = {
    "pack": "learning_sim",
    "version": "1",
    "gestures": [
        {"id": "credit", "title": "A credit", "category": "loyalty_reward", "tier": "recover", "cost": 0,
         "exclusive_group": "make_good", "script": "A credit for the trouble."},
        {"id": "callback", "title": "A call-back", "category": "personal_touch", "tier": "recover", "cost": 0,
         "exclusive_group": "make_good", "script": "We will call you back."},
        {"id": "voucher", "title": "A voucher", "category": "loyalty_reward", "tier": "recover", "cost": 0,
         "exclusive_group": "make_good", "script": "A voucher for next time."},
        {"id": "upgrade", "title": "A free upgrade", "category": "freebie", "tier": "exceed", "cost": 0,
         "script": "An upgrade, on us."},
        {"id": "thank_you", "title": "A thank-you card", "category": "personal_touch", "tier": "exceed", "cost": 0,
         "script": "Thank you for being with us."},
        {"id": "tasting", "title": "A tasting", "category": "freebie", "tier": "exceed", "cost": 0,
         "script": "Try something new, on us."},
    ],
    "rules": [
        {"id": "credit", "when": "interaction.issue eq late_delivery", "then": "credit", "priority": 80,
         "because": "Late costs them."},
        {"id": "callback", "when": "interaction.issue eq late_delivery", "then": "callback", "priority": 60,
         "because": "Talk it through."},
        {"id": "voucher", "when": "interaction.issue eq late_delivery", "then": "voucher", "priority": 40,
         "because": "Bring them back."},
        {"id": "extras", "when": "interaction.issue eq late_delivery", "then": ["upgrade", "thank_you", "tasting"],
         "priority": 50, "because": "Turn it around."},
    ],
}

#: The true acceptance of each gesture by value band (what the oracle knows).
TRUTH: dict[str, dict[str, float]] = {
    "high": {"credit": 0.30, "callback": 0.75, "voucher": 0.45, "upgrade": 0.20, "thank_you": 0.40, "tasting": 0.65},
    "standard": {"credit": 0.70, "callback": 0.25, "voucher": 0.40, "upgrade": 0.60, "thank_you": 0.30,
                 "tasting": 0.35},
}
GROUPS = (("credit", "callback", "voucher"), ("upgrade", "thank_you", "tasting"))
#: Every extra is drawn (the simulation measures which extra, not how often).
PROFILE = {"extras_rate": 1.0, "listing": {"recover": 1, "meet": 2, "exceed": 1}}
START = datetime(2026, 1, 1, 9, tzinfo=timezone.utc)
PER_DAY = 40


class SimMemory:
    """The store's learning in a dict: the same segments, posteriors and updates
    (:mod:`recommender.learning`), logged traces by decision id."""

    def __init__(self, config: LearningConfig | None = None) -> None:
        self.learning_config = config or LearningConfig()
        self.stats: dict[tuple[str, str, str], tuple[Stats, datetime]] = {}
        self.traces: dict[str, dict[str, Any]] = {}

    def enrich(self, ctx: Any) -> dict[str, Any]:
        return {}

    def screen(self, ctx: Any, offers: list[Offer]) -> list[Hold]:
        return []

    def record_decision(self, ctx: Any, result: Any) -> str:
        decision_id = str(uuid.uuid4())
        if result.learning is not None:
            self.traces[decision_id] = {"tenant": ctx.business.id, **result.learning.model_dump()}
        return decision_id

    def propensities(self, ctx: Any, offers: Iterable[tuple[str, str, int]]) -> dict[str, Posterior]:
        config, out = self.learning_config, {}
        for g, tier, priority in offers:
            seg = segment_key(ctx, tier, config.segments)
            got = self.stats.get((ctx.business.id, g, seg))
            out[g] = posterior(got[0] if got else None, priority, seg, config)
        return out

    def record_outcome(self, decision_id: str, gesture_id: str, outcome: str, at: datetime,
                       before: set[str] | None = None) -> None:
        trace = self.traces.get(decision_id)
        logged = (trace or {}).get("evidence", {}).get(gesture_id)
        if not logged:
            return
        acc, dec, dlv = counts_of(outcome, before or set())
        if not (acc or dec or dlv):
            return
        key = (trace["tenant"], gesture_id, logged["segment"])  # type: ignore[index]
        old, stamp = self.stats.get(key, (Stats(), None))
        self.stats[key] = update(old, stamp, at, acc, dec, dlv, self.learning_config.half_life_days)


def _context(i: int, band: str, customer: str | None = None) -> dict[str, Any]:
    return {"customer": {"id": customer or f"c-{i}", "lifetime_value": 5000 if band == "high" else 500},
            "interaction": {"issue": "late_delivery", "delay_days": 1,
                            "occurred_at": (START + timedelta(days=(i // PER_DAY) % 3000)).isoformat()},
            "business": {"id": "sim"}}


def recommender(learning: bool) -> Recommender:
    return Recommender([], packs=[PACK], autoload=False, learning=learning, profiles={"default": PROFILE})


def simulate(policy: str, n: int, seed: int) -> list[float]:
    """The expected reward of each of ``n`` interactions under ``policy`` (``fixed``,
    ``learning`` or ``oracle``); customers and outcomes drawn from ``seed``."""
    rng = random.Random(seed)
    memory = SimMemory()
    rec = recommender(policy == "learning") if policy != "oracle" else None
    out: list[float] = []
    for i in range(n):
        band = "high" if rng.random() < 0.5 else "standard"
        truth = TRUTH[band]
        if rec is None:
            out.append(sum(max(truth[g] for g in group) for group in GROUPS))
            continue
        result = rec.recommend(_context(i, band, f"s{seed}-c{i}"), store=memory)
        given = result.gesture_ids()
        out.append(sum(truth[g] for g in given))
        at = START + timedelta(days=i // PER_DAY, minutes=i % PER_DAY)
        for g in given:
            taken = rng.random() < truth[g]
            assert result.decision_id is not None
            memory.record_outcome(result.decision_id, g, "accepted" if taken else "declined", at)
    return out


def regret_table(n: int = 2000, seeds: Iterable[int] = (1, 2, 3), points: Iterable[int] | None = None
                 ) -> list[dict[str, float]]:
    """Cumulative expected reward per policy at checkpoints, averaged over ``seeds``, with
    learning's and the fixed order's regret against the oracle."""
    seeds = list(seeds)
    runs = {p: [simulate(p, n, s) for s in seeds] for p in ("oracle", "learning", "fixed")}
    marks = sorted(set(points or [m for m in (100, 250, 500, 1000, 2000, 4000, 8000) if m < n] + [n]))
    rows = []
    for m in marks:
        cum = {p: sum(sum(r[:m]) for r in rs) / len(rs) for p, rs in runs.items()}
        rows.append({"interactions": m, **cum, "regret_learning": cum["oracle"] - cum["learning"],
                     "regret_fixed": cum["oracle"] - cum["fixed"]})
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args(argv)
    rows = regret_table(args.n, range(1, args.seeds + 1))
    head = f"{'interactions':>12} {'oracle':>9} {'learning':>9} {'fixed':>9} {'regret(learning)':>17} {'regret(fixed)':>14}"
    print(head)
    for r in rows:
        print(f"{r['interactions']:>12} {r['oracle']:>9.1f} {r['learning']:>9.1f} {r['fixed']:>9.1f} "
              f"{r['regret_learning']:>17.1f} {r['regret_fixed']:>14.1f}")


if __name__ == "__main__":
    main()
