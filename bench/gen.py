"""Seeded generator of rule packs (our own pack format) and of matching contexts.

``generate(k, m, seed)`` returns a pack dict with ``k`` rules and ``m`` contexts (plain
nested dicts, accepted as-is by ``Recommender.recommend``). Each rule is a conjunction of
1-4 tests: equality on ``interaction.issue`` / ``interaction.channel`` / ``customer.tier``
and thresholds (``ge``/``gt``/``le``/``lt``) on ``customer.tenure_years``,
``customer.lifetime_value``, ``interaction.cost`` and ``interaction.wait_minutes``.

Selectivity is tuned so that about 2% of rules match a context: a rule's equality tests
have known selectivity (1/number of values times how often the field is present), and its
thresholds share the rest, each jittered (log-uniform, the jitters of one rule cancel out)
so that rules differ. Context values sit on a grid and thresholds on a 10x finer one, so
some thresholds are hit exactly (``ge`` vs ``gt`` matters) and most rules are distinct
(about 95% distinct condition sets at 1,000 rules, 80% at 10,000). Fields are sometimes
absent from a context, and a test on an absent field never matches.
"""

from __future__ import annotations

import math
import random
from typing import Any

__all__ = ["generate", "generate_pack", "generate_contexts", "EQ_FIELDS", "NUM_FIELDS", "TARGET"]

TARGET = 0.02
ISSUES = ["billing", "late_delivery", "damaged_item", "wrong_item", "flat_tire", "oil_change",
          "refund", "outage", "login", "noise"]
CHANNELS = ["pos", "in_person", "phone", "helpdesk", "web", "email", "chat", "mail", "other"]
TIERS = ["bronze", "silver", "gold", "platinum", "diamond"]
#: equality fields: values, and how often a context carries the field
EQ_FIELDS: dict[str, tuple[list[str], float]] = {
    "interaction.issue": (ISSUES, 1.0),
    "interaction.channel": (CHANNELS, 1.0),
    "customer.tier": (TIERS, 0.9),
}
#: threshold fields: (upper bound, grid step, presence)
NUM_FIELDS: dict[str, tuple[float, float, float]] = {
    "customer.tenure_years": (30.0, 0.5, 0.9),
    "customer.lifetime_value": (10000.0, 50.0, 1.0),
    "interaction.cost": (500.0, 5.0, 0.9),
    "interaction.wait_minutes": (120.0, 1.0, 0.8),
}
OPS = ("ge", "gt", "le", "lt")
TIER_MIX = ("recover", "meet", "exceed")
CATEGORIES = ("fee_waiver", "freebie", "upgrade", "information", "follow_up", "loyalty_reward",
              "service_recovery", "speed")


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


JITTER = 0.6  # thresholds' selectivity varies by a factor up to e**0.6 either way


def _threshold(rng: random.Random, fld: str, sel: float) -> tuple[str, float]:
    """A test on ``fld`` true for about ``sel`` of contexts (presence included)."""
    hi, step, present = NUM_FIELDS[fld]
    raw = min(1.0, sel / present)
    op = rng.choice(OPS)
    cut = hi * (1.0 - raw) if op in ("ge", "gt") else hi * raw
    fine = step / 10
    return op, round(round(cut / fine) * fine, 6)


def _rule(rng: random.Random, i: int, gestures: list[str]) -> dict[str, Any]:
    n = rng.randint(1, 4)
    conds: list[str] = []
    p_eq = 1.0
    if n >= 2 and rng.random() < 0.6:
        fld = rng.choice(list(EQ_FIELDS))
        values, present = EQ_FIELDS[fld]
        conds.append(f"{fld} eq {rng.choice(values)}")
        p_eq = present / len(values)
    n_thr = n - len(conds)
    per = (TARGET / p_eq) ** (1.0 / n_thr)
    jitter = [rng.uniform(-JITTER, JITTER) for _ in range(n_thr)]
    if n_thr > 1:
        mean = sum(jitter) / n_thr
        jitter = [j - mean for j in jitter]
    else:  # E[e**U(-a, a)] = sinh(a)/a: keep the mean selectivity on target
        jitter = [jitter[0] - math.log(math.sinh(JITTER) / JITTER)]
    for fld, j in zip(rng.sample(list(NUM_FIELDS), n_thr), jitter):
        op, cut = _threshold(rng, fld, per * math.exp(j))
        conds.append(f"{fld} {op} {_fmt(cut)}")
    rng.shuffle(conds)
    return {
        "id": f"r{i}",
        "when": {"all": conds},
        "then": rng.choice(gestures),
        "priority": rng.randint(0, 100),
        "because": f"generated rule {i}",
    }


def _gestures(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for j in range(n):
        out.append({
            "id": f"g{j}",
            "title": f"Gesture {j}",
            "category": CATEGORIES[j % len(CATEGORIES)],
            "tier": TIER_MIX[j % 3],
            "cost": float(rng.choice([0, 5, 10, 25, 50])),
            "authority": "synthetic" if j % 5 else "genuine",
            "script": f"Gesture {j} for you, {{customer.tier|friend}}.",
        })
    return out


def gesture_count(k: int) -> int:
    return max(4, min(40, k // 25))


def generate_pack(k: int, seed: int = 1, name: str = "gen") -> dict[str, Any]:
    """A pack dict with ``k`` generated rules (deterministic for a seed)."""
    rng = random.Random(f"pack:{seed}:{k}")
    gestures = _gestures(rng, gesture_count(k))
    ids = [g["id"] for g in gestures]
    return {"pack": name, "version": "1", "gestures": gestures, "rules": [_rule(rng, i, ids) for i in range(k)]}


def generate_contexts(m: int, seed: int = 1) -> list[dict[str, Any]]:
    """``m`` contexts as nested dicts; values on the threshold grid, some fields absent."""
    rng = random.Random(f"ctx:{seed}")
    out = []
    for _ in range(m):
        customer: dict[str, Any] = {}
        interaction: dict[str, Any] = {}
        for fld, (values, present) in EQ_FIELDS.items():
            if rng.random() < present:
                section, key = fld.split(".")
                (customer if section == "customer" else interaction)[key] = rng.choice(values)
        for fld, (hi, step, present) in NUM_FIELDS.items():
            if rng.random() < present:
                section, key = fld.split(".")
                value = float(rng.randint(0, int(hi / step)) * step)
                (customer if section == "customer" else interaction)[key] = value
        out.append({"customer": customer, "interaction": interaction, "staff": {"level": "genuine"}})
    return out


def generate(k: int, m: int, seed: int = 1) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return generate_pack(k, seed), generate_contexts(m, seed)
