"""Seeded synthetic history of service interactions, for ``recommender backtest``.

    python -m bench.gen_history 100000 -o history.jsonl                 # JSON Lines
    python -m bench.gen_history 100000 -o h.jsonl --csv h.csv --mapping h.map.yaml

Each line is ``{"context": {...}, "at": "2025-03-14T09:21:00Z"}``. The mix is built so the
shipped packs fire a wide variety of gestures: six trades (auto repair, retail, telecom,
insurance, home services, fitness) with their own issues and channels; tenure with walk-ins
(no customer record), new customers and a long tail of loyal ones; lifetime value that
grows with tenure; waits by channel (minutes at a counter, hours for email); late
deliveries with delays; repeat issues and upset customers (about a fifth of interactions
are negative experiences); life events, preferences, add-on fees and transfers.

``--bad-rate`` mixes in malformed rows (invalid JSON, wrong types) to exercise reporting.
The same ``seed`` and ``n`` always give the same file.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from bench.reference import get_path  # one dotted-path reader for the bench tools

__all__ = ["generate_history", "write_jsonl", "write_csv", "CSV_MAPPING", "VERTICALS"]

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
SPAN_DAYS = 181

#: vertical -> (weight, issues with weights, channels with weights, base cost range by issue)
VERTICALS: dict[str, dict[str, Any]] = {
    "auto_repair": {
        "weight": 0.25,
        "issues": {"flat_tire": 5, "oil_change": 6, "tire_rotation": 2, "brake_repair": 2, "battery_check": 1,
                   "routine_maintenance": 1},
        "channels": {"pos": 5, "in_person": 4, "phone": 2, "web": 1},
        "cost": {"flat_tire": (15, 60), "oil_change": (30, 90), "tire_rotation": (20, 45), "brake_repair": (150, 450),
                 "battery_check": (0, 25), "routine_maintenance": (80, 250)},
    },
    "retail": {
        "weight": 0.22,
        "issues": {"late_delivery": 5, "damaged_item": 2, "wrong_item": 2, "refund": 2, "exchange": 2},
        "channels": {"web": 4, "email": 3, "chat": 3, "phone": 2, "pos": 2},
        "cost": {"late_delivery": (0, 15), "damaged_item": (10, 120), "wrong_item": (0, 20), "refund": (0, 0),
                 "exchange": (0, 10)},
    },
    "telecom": {
        "weight": 0.18,
        "issues": {"billing_error": 5, "outage": 3, "plan_change": 2, "login": 2, "installation": 1},
        "channels": {"phone": 5, "chat": 3, "helpdesk": 2, "web": 2, "in_person": 1},
        "cost": {"billing_error": (5, 40), "outage": (0, 0), "plan_change": (0, 20), "login": (0, 0),
                 "installation": (50, 150)},
    },
    "insurance": {
        "weight": 0.12,
        "issues": {"policy_review": 4, "policy_renewal": 3, "claim": 3, "new_policy": 2, "coverage_change": 1},
        "channels": {"phone": 4, "in_person": 2, "email": 2, "web": 2},
        "cost": {"policy_review": (0, 0), "policy_renewal": (0, 30), "claim": (0, 100), "new_policy": (0, 0),
                 "coverage_change": (0, 25)},
    },
    "home_services": {
        "weight": 0.13,
        "issues": {"maintenance": 3, "boiler_service": 3, "installation": 2, "annual_service": 2, "cleaning": 1},
        "channels": {"phone": 4, "in_person": 3, "web": 2, "email": 1},
        "cost": {"maintenance": (60, 220), "boiler_service": (80, 160), "installation": (150, 900),
                 "annual_service": (90, 140), "cleaning": (40, 120)},
    },
    "fitness": {
        "weight": 0.10,
        "issues": {"membership_signup": 3, "class_booking": 4, "billing_error": 2, "renewal": 2},
        "channels": {"in_person": 4, "pos": 2, "web": 3, "chat": 1},
        "cost": {"membership_signup": (0, 50), "class_booking": (0, 15), "billing_error": (5, 35), "renewal": (0, 40)},
    },
}
LIFE_EVENTS = ["birthday", "new_baby", "marriage", "graduation", "retirement", "home_purchase", "house_hunting",
               "moving", "new_car", "inheritance"]
STAGES = ["ordered", "in_production", "in_transit", "awaiting_parts", "in_repair"]
TIERS = ["bronze", "silver", "gold", "platinum"]
WRITTEN = {"email", "web", "helpdesk", "chat"}


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _customer(rng: random.Random, i: int) -> dict[str, Any]:
    u = rng.random()
    if u < 0.10:  # walk-in: no record at all
        return {}
    cust: dict[str, Any] = {"id": f"c-{rng.randrange(1, 40_000):05d}"}
    if u < 0.13:  # a record without tenure
        cust["lifetime_value"] = round(rng.uniform(0, 300), 2)
        return cust
    if u < 0.28:
        tenure = round(rng.uniform(0, 0.99), 2)  # new-ish: a quarter are in their first quarter-year
    else:
        tenure = round(min(40.0, rng.expovariate(1 / 5.0) + 1.0), 1)
    cust["tenure_years"] = tenure
    cust["lifetime_value"] = round(min(250_000.0, rng.lognormvariate(math.log(300 + 450 * tenure), 0.8)), 2)
    cust["visits_last_year"] = min(200, int(rng.expovariate(1 / 4.0)))
    if rng.random() < 0.6:
        cust["tier"] = TIERS[min(3, int(tenure // 4))]
    if rng.random() < 0.03 or cust["lifetime_value"] > 25_000:
        cust["is_vip"] = True
    if rng.random() < 0.30:
        cust["name"] = rng.choice(["Ana", "Ben", "Chloe", "Dev", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jon"])
    if rng.random() < 0.08:
        cust["life_events"] = rng.sample(LIFE_EVENTS, k=1 if rng.random() < 0.85 else 2)
    prefs: dict[str, Any] = {}
    if rng.random() < 0.10:
        prefs["usual"] = rng.choice(["synthetic 5w-30", "window seat", "oat latte", "morning slot"])
    if rng.random() < 0.05:
        prefs["preferred_staff"] = rng.choice(["Sam", "Priya", "Lee"])
    if rng.random() < 0.15:
        prefs["contact_channel"] = rng.choice(["sms", "email", "phone"])
    if prefs:
        cust["preferences"] = prefs
    if rng.random() < 0.05:
        cust["attributes"] = {"last_conversation": rng.choice(["daughter's wedding", "marathon training", "new puppy"])}
    if rng.random() < 0.12:
        cust["last_visit_days"] = float(rng.randrange(90, 400))
    if rng.random() < 0.05:
        cust["recent_gestures"] = [rng.choice(["waive_small_fee", "frequent_visitor_thanks", "waive_moderate_fee"])]
    return cust


def _interaction(rng: random.Random, vertical: str) -> dict[str, Any]:
    spec = VERTICALS[vertical]
    issue = _pick(rng, spec["issues"])
    channel = _pick(rng, spec["channels"])
    lo, hi = spec["cost"][issue]
    inter: dict[str, Any] = {"issue": issue, "channel": channel}
    if hi > 0 and rng.random() < 0.92:
        inter["cost"] = round(rng.uniform(lo, hi), 2)
    elif hi == 0:
        inter["cost"] = 0.0
    # waits: minutes in person or on the phone, hours for written channels
    if rng.random() < 0.8:
        mean = 600.0 if channel in WRITTEN else (7.0 if channel != "phone" else 6.0)
        inter["wait_minutes"] = round(min(20_000.0, rng.expovariate(1 / mean)), 1)
    if issue == "late_delivery":
        inter["delay_days"] = float(rng.choice([1, 1, 2, 2, 3, 4, 5, 7, 10]))
    elif rng.random() < 0.04:
        inter["delay_days"] = float(rng.choice([1, 2, 3, 5]))
    if rng.random() < 0.08:
        inter["repeat_issue"] = True
    elif rng.random() < 0.5:
        inter["repeat_issue"] = False
    mood = 0.25 - 0.35 * bool(inter.get("repeat_issue")) - 0.05 * inter.get("delay_days", 0)
    if inter.get("wait_minutes", 0) >= (1440 if channel in WRITTEN else 20):
        mood -= 0.3
    if rng.random() < 0.7:
        inter["sentiment"] = round(max(-1.0, min(1.0, rng.gauss(mood, 0.35))), 2)
    attrs: dict[str, Any] = {}
    if rng.random() < 0.10:
        attrs["add_on_fee"] = rng.choice([2.5, 5, 8, 12, 20])
    if channel in ("phone", "chat", "helpdesk") and rng.random() < 0.12:
        attrs["transferred"] = True
    if channel in ("phone", "email", "chat", "web", "helpdesk") and rng.random() < 0.2:
        attrs["resolved"] = rng.random() < 0.4
    if issue in ("late_delivery", "brake_repair", "installation", "claim") and rng.random() < 0.5:
        attrs["stage"] = rng.choice(STAGES)
    if issue in ("brake_repair", "damaged_item") and rng.random() < 0.15:
        attrs["awaiting_parts"] = True
    if issue == "late_delivery" and rng.random() < 0.2:
        attrs["backorder"] = True
    if attrs:
        inter["attributes"] = attrs
    return inter


def generate_history(n: int = 100_000, seed: int = 7, bad_rate: float = 0.0) -> Iterator[dict[str, Any] | str]:
    """``n`` rows: ``{"context": ..., "at": ...}`` dicts, or (with ``bad_rate``) a bad row's raw text."""
    rng = random.Random(seed)
    verticals = {v: s["weight"] for v, s in VERTICALS.items()}
    for i in range(n):
        if bad_rate and rng.random() < bad_rate:
            yield rng.choice(['{"context": {"interaction": ', '{"interaction": {"issue": "flat_tire", "cost": "ten"}}',
                              '{"customer": {"tenure_years": -2}, "interaction": {"issue": "oil_change"}}'])
            continue
        vertical = _pick(rng, verticals)
        ctx: dict[str, Any] = {"customer": _customer(rng, i), "interaction": _interaction(rng, vertical),
                               "staff": {"level": rng.choices(["synthetic", "genuine", "super"], [2, 7, 1])[0]},
                               "business": {"vertical": vertical}}
        if not ctx["customer"]:
            del ctx["customer"]
        at = START + timedelta(seconds=rng.randrange(SPAN_DAYS * 86_400))
        yield {"context": ctx, "at": at.strftime("%Y-%m-%dT%H:%M:%SZ")}


def write_jsonl(path: str | Path, n: int = 100_000, seed: int = 7, bad_rate: float = 0.0) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as f:
        for row in generate_history(n, seed, bad_rate):
            f.write(row if isinstance(row, str) else json.dumps(row, separators=(",", ":")))
            f.write("\n")
            count += 1
    return count


#: CSV column -> (context field path, how to write it); the mapping file is made from it.
CSV_MAPPING: dict[str, str] = {
    "customer_id": "customer.id",
    "name": "customer.name",
    "tenure": "customer.tenure_years",
    "ltv": "customer.lifetime_value",
    "visits": "customer.visits_last_year",
    "tier": "customer.tier",
    "vip": "customer.is_vip",
    "life_events": "customer.life_events",
    "last_visit_days": "customer.last_visit_days",
    "recent_gestures": "customer.recent_gestures",
    "pref_usual": "customer.preferences.usual",
    "pref_staff": "customer.preferences.preferred_staff",
    "pref_channel": "customer.preferences.contact_channel",
    "last_conversation": "customer.attributes.last_conversation",
    "issue": "interaction.issue",
    "channel": "interaction.channel",
    "price": "interaction.cost",
    "wait": "interaction.wait_minutes",
    "delay": "interaction.delay_days",
    "repeat": "interaction.repeat_issue",
    "sentiment": "interaction.sentiment",
    "add_on_fee": "interaction.attributes.add_on_fee",
    "transferred": "interaction.attributes.transferred",
    "resolved": "interaction.attributes.resolved",
    "stage": "interaction.attributes.stage",
    "awaiting_parts": "interaction.attributes.awaiting_parts",
    "backorder": "interaction.attributes.backorder",
    "staff_level": "staff.level",
    "vertical": "business.vertical",
    "created": "at",
}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "|".join(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def write_csv(path: str | Path, mapping_path: str | Path, n: int = 100_000, seed: int = 7) -> int:
    """The same rows as :func:`write_jsonl` (bad rows excluded), as CSV plus its mapping file."""
    columns = list(CSV_MAPPING)
    with open(mapping_path, "w", encoding="utf-8") as f:
        f.write("# context field path: CSV column\n")
        for col, field_path in CSV_MAPPING.items():
            f.write(f"{field_path}: {col}\n")
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for row in generate_history(n, seed):
            assert isinstance(row, dict)
            full = {**row["context"], "at": row["at"]}
            w.writerow([_cell(get_path(full, CSV_MAPPING[c])) for c in columns])
            count += 1
    return count


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int, nargs="?", default=100_000, help="number of interactions (default 100000)")
    ap.add_argument("-o", "--output", default="history.jsonl", help="JSON Lines file to write")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--bad-rate", type=float, default=0.0, help="share of malformed rows to mix in (JSONL only)")
    ap.add_argument("--csv", help="also write the rows as CSV to this file")
    ap.add_argument("--mapping", help="where to write the CSV's mapping file (default: CSV path + .map.yaml)")
    args = ap.parse_args(argv)
    count = write_jsonl(args.output, args.n, args.seed, args.bad_rate)
    print(f"wrote {count} rows to {args.output}")
    if args.csv:
        mapping = args.mapping or f"{args.csv}.map.yaml"
        write_csv(args.csv, mapping, args.n, args.seed)
        print(f"wrote {args.n} rows to {args.csv} (mapping: {mapping})")


if __name__ == "__main__":
    main()
