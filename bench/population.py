"""A seeded, varied population of interactions across verticals, and its population check.

    python -m bench.population                   # 10,000 interactions: the check's table
    python -m bench.population 2000 --seed 3     # another size or seed
    python -m bench.population -o pop.jsonl      # also write the population (JSON Lines)
    recommender backtest pop.jsonl --population  # the same check through the CLI

Issue 14's "Done when": on a generated, varied population of at least 10,000 interactions
every negative experience gets a recover gesture, the mean recovery cost rises with the
severity band, extras go to 5-15% of interactions and to no attribute value more than half
the time, no listed gesture costs more than the serving staff's money limit, at most 4
gestures are listed on average and at most 5 near misses are shown by default. The metrics
are computed by :mod:`recommender.backtest.population` (what ``recommender backtest
--population`` prints); this module makes the population.

The population: nine verticals (auto repair, fitness, insurance, telecom, retail, hotel,
bank, home services, restaurant), two or three businesses each, each with its own mix of
issue families, drawn as codes and aliases of the core vocabulary (every family of
:data:`recommender.issues.FAMILIES`) and, for the three trades with a plugin (auto repair,
fitness, insurance), as the trade's own codes (``oil_change``, ``class_cancelled``,
``claim_denied``: known once the plugin registers them), plus 3% of codes no vocabulary
knows (typos, a business's own codes). Customers come back (a pool of ids per business, each
with stable tenure, visits and lifetime value on the vertical's own scale: a bank's
customers stay decades and are worth tens of thousands, a gym's stay a year or two);
walk-ins have no record, some records lack tenure or value. Channels per vertical, sometimes
absent; sentiment mostly present, worse for failures; delays with a long tail; waits by
channel; repeat contacts as counts or a flag; escalations; money at stake on the vertical's
scale (a fraud at a bank is thousands, a wrong item at a restaurant is ten); staff levels
synthetic, genuine and super (sometimes unstated); dates spread over six months. Each row is
``{"id": ..., "context": {...}, "at": "2025-03-14T09:21:00Z"}`` (docs/backtest.md). The
same ``n`` and ``seed`` always give the same rows.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

__all__ = ["VERTICALS", "GENERAL_CODES", "UNKNOWN_CODES", "generate_population", "population_contexts",
           "write_population", "main"]

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
SPAN_DAYS = 181

#: General codes of every family (the core vocabulary's codes and aliases, docs/advice.md).
GENERAL_CODES: dict[str, tuple[str, ...]] = {
    "complaint": ("complaint", "poor_service", "rude_staff", "staff_attitude", "bad_experience", "dispute"),
    "billing_error": ("billing_error", "overcharge", "double_charge", "wrong_charge", "incorrect_bill",
                      "unexpected_fee", "hidden_fee"),
    "unauthorized_charge": ("unauthorized_charge", "unrecognized_charge", "unknown_charge"),
    "fraud": ("fraud", "identity_theft", "scam", "account_takeover", "phishing"),
    "service_failure": ("service_failure", "outage", "not_working", "system_error", "repair_failed"),
    "delay": ("late_delivery", "delay", "shipping_delay", "order_delayed", "late_arrival", "missed_appointment"),
    "product_defect": ("product_defect", "defect", "faulty_product", "damaged_item", "broken_item"),
    "wrong_or_changed_item": ("wrong_item", "missing_item", "substitution", "booking_changed", "wrong_order"),
    "contact_preference": ("unwanted_contact", "too_many_calls", "too_many_emails", "spam", "do_not_contact"),
    "information_request": ("question", "inquiry", "order_status", "how_to", "account_question", "status_request"),
    "routine": ("purchase", "booking", "visit", "appointment", "renewal", "order_pickup", "registration"),
}

#: Codes no vocabulary holds: typos of known codes and codes a business invented.
UNKNOWN_CODES: tuple[str, ...] = ("billng_error", "complant", "late_deliverry", "parking_fine", "compliment",
                                  "lost_card", "wifi_slow", "noise_complaint", "gift_card_balance")

#: Per vertical: weight in the population, business ids, customer scales (tenure in years,
#: lifetime visits and value per year of tenure), channels, issue families (weights) and the
#: trade's own codes per family, money at stake (the median amount of a money failure) and
#: the price range of routine work. Trade codes outside the core vocabulary only for the
#: trades with a plugin (whose ``recommender_register_issue_codes`` gives their families).
VERTICALS: dict[str, dict[str, Any]] = {
    "auto_repair": {
        "weight": 14, "businesses": ("main-st-garage", "quick-lube-7"),
        "tenure_mean": 4.0, "visits_per_year": 3.0, "value_per_year": 450.0, "value_sigma": 0.7,
        "channels": {"in_person": 5, "pos": 3, "phone": 3, "web": 1},
        "families": {"routine": 52, "information_request": 8, "delay": 9, "service_failure": 7, "complaint": 6,
                     "billing_error": 6, "product_defect": 4, "wrong_or_changed_item": 3, "contact_preference": 1,
                     "unauthorized_charge": 1.5, "fraud": 0.3},
        "trade": {"routine": ("oil_change", "flat_tire", "tire_rotation", "inspection", "brake_service",
                              "battery_replacement", "diagnostic"),
                  "service_failure": ("comeback", "repair_failed"), "delay": ("repair_delay",),
                  "product_defect": ("faulty_part",)},
        "stake": 180.0, "price": (20.0, 900.0),
    },
    "fitness": {
        "weight": 10, "businesses": ("iron-gym", "studio-flow", "city-fit"),
        "tenure_mean": 1.6, "visits_per_year": 60.0, "value_per_year": 420.0, "value_sigma": 0.5,
        "channels": {"in_person": 6, "web": 3, "chat": 2, "phone": 1},
        "families": {"routine": 55, "information_request": 10, "billing_error": 9, "service_failure": 6,
                     "complaint": 8, "delay": 3, "contact_preference": 4, "unauthorized_charge": 2,
                     "wrong_or_changed_item": 2, "product_defect": 1, "fraud": 0.2},
        "trade": {"routine": ("class_booking", "checkin", "membership_signup", "pt_booking", "cancellation_request",
                              "membership_freeze"),
                  "service_failure": ("class_cancelled", "equipment_broken")},
        "stake": 35.0, "price": (5.0, 90.0),
    },
    "insurance": {
        "escalation": 0.12, "weight": 9, "businesses": ("shield-mutual", "harbor-insurance"),
        "tenure_mean": 6.5, "visits_per_year": 1.2, "value_per_year": 1100.0, "value_sigma": 0.6,
        "channels": {"phone": 5, "email": 2, "web": 3, "in_person": 1},
        "families": {"routine": 30, "information_request": 22, "delay": 12, "complaint": 10, "billing_error": 8,
                     "service_failure": 4, "contact_preference": 3, "unauthorized_charge": 2, "fraud": 1.5,
                     "wrong_or_changed_item": 1, "product_defect": 0.5},
        "trade": {"routine": ("policy_renewal", "new_policy", "coverage_change", "policy_review"),
                  "information_request": ("claim_status",), "delay": ("claim_delay",),
                  "complaint": ("claim_denied",)},
        "stake": 600.0, "price": (0.0, 60.0),
    },
    "telecom": {
        "escalation": 0.12, "weight": 14, "businesses": ("nova-mobile", "fibrenet"),
        "tenure_mean": 4.5, "visits_per_year": 4.0, "value_per_year": 600.0, "value_sigma": 0.5,
        "channels": {"phone": 6, "chat": 4, "web": 2, "in_person": 1, "helpdesk": 1},
        "families": {"routine": 22, "information_request": 14, "billing_error": 18, "service_failure": 18,
                     "complaint": 12, "contact_preference": 4, "unauthorized_charge": 4, "delay": 4, "fraud": 1,
                     "wrong_or_changed_item": 2, "product_defect": 1},
        "trade": {"service_failure": ("dropped_call", "call_failure", "no_service", "outage"),
                  "routine": ("renewal", "purchase"), "information_request": ("account_question",)},
        "stake": 45.0, "price": (0.0, 120.0),
    },
    "retail": {
        "weight": 16, "businesses": ("corner-books", "mega-mart", "shoe-loft"),
        "tenure_mean": 2.5, "visits_per_year": 8.0, "value_per_year": 260.0, "value_sigma": 0.9,
        "channels": {"web": 4, "pos": 4, "email": 2, "chat": 2, "phone": 1},
        "families": {"routine": 40, "information_request": 10, "delay": 16, "product_defect": 9,
                     "wrong_or_changed_item": 8, "billing_error": 5, "complaint": 6, "contact_preference": 3,
                     "unauthorized_charge": 1, "service_failure": 1, "fraud": 0.3},
        "trade": {"routine": ("purchase", "order", "order_pickup", "checkout", "sale"),
                  "delay": ("late_delivery", "shipping_delay", "order_delayed")},
        "stake": 40.0, "price": (3.0, 300.0),
    },
    "hotel": {
        "weight": 10, "businesses": ("harbour-hotel", "alpine-lodge"),
        "tenure_mean": 3.0, "visits_per_year": 1.5, "value_per_year": 700.0, "value_sigma": 0.8,
        "channels": {"in_person": 5, "phone": 3, "web": 2, "email": 2},
        "families": {"routine": 45, "information_request": 10, "wrong_or_changed_item": 10, "complaint": 10,
                     "service_failure": 7, "delay": 6, "billing_error": 6, "contact_preference": 2,
                     "product_defect": 2, "unauthorized_charge": 1.5, "fraud": 0.3},
        "trade": {"routine": ("booking", "visit"), "wrong_or_changed_item": ("room_change", "overbooked"),
                  "complaint": ("poor_service", "rude_staff")},
        "stake": 160.0, "price": (80.0, 900.0),
    },
    "bank": {
        "escalation": 0.12, "weight": 12, "businesses": ("first-river-bank", "credit-union-9"),
        "tenure_mean": 9.0, "visits_per_year": 6.0, "value_per_year": 2400.0, "value_sigma": 0.9,
        "channels": {"phone": 5, "web": 4, "in_person": 2, "chat": 2},
        "families": {"routine": 28, "information_request": 20, "unauthorized_charge": 10, "fraud": 6,
                     "billing_error": 12, "complaint": 10, "service_failure": 5, "contact_preference": 3,
                     "delay": 4, "wrong_or_changed_item": 1, "product_defect": 1},
        "trade": {"routine": ("registration", "appointment"), "information_request": ("account_question",),
                  "billing_error": ("unexpected_fee", "hidden_fee", "billing_dispute"),
                  "fraud": ("identity_theft", "account_takeover", "phishing"),
                  "unauthorized_charge": ("unrecognized_charge", "unrecognised_charge")},
        "stake": 250.0, "price": (0.0, 40.0),
    },
    "home_services": {
        "weight": 8, "businesses": ("ace-plumbing", "bright-sparks"),
        "tenure_mean": 3.5, "visits_per_year": 1.5, "value_per_year": 380.0, "value_sigma": 0.7,
        "channels": {"phone": 6, "web": 2, "email": 1, "in_person": 1},
        "families": {"routine": 45, "information_request": 8, "delay": 14, "service_failure": 10, "complaint": 8,
                     "billing_error": 7, "product_defect": 3, "contact_preference": 2, "wrong_or_changed_item": 1,
                     "unauthorized_charge": 1, "fraud": 0.2},
        "trade": {"routine": ("appointment", "visit"), "delay": ("missed_appointment", "late_arrival"),
                  "service_failure": ("repair_failed", "not_working")},
        "stake": 220.0, "price": (60.0, 1500.0),
    },
    "restaurant": {
        "weight": 7, "businesses": ("trattoria-lina", "noodle-bar"),
        "tenure_mean": 2.0, "visits_per_year": 10.0, "value_per_year": 180.0, "value_sigma": 0.8,
        "channels": {"in_person": 7, "phone": 2, "web": 2},
        "families": {"routine": 55, "information_request": 5, "delay": 10, "wrong_or_changed_item": 9,
                     "complaint": 10, "product_defect": 4, "billing_error": 5, "contact_preference": 1,
                     "service_failure": 1, "unauthorized_charge": 0.5},
        "trade": {"routine": ("order", "booking", "visit"), "delay": ("late", "delay"),
                  "wrong_or_changed_item": ("wrong_order", "missing_item")},
        "stake": 20.0, "price": (8.0, 160.0),
    },
}

NEGATIVE = {"complaint", "billing_error", "unauthorized_charge", "fraud", "service_failure", "delay",
            "product_defect", "wrong_or_changed_item", "contact_preference"}
#: Families whose failure costs the customer money: they carry an amount at stake.
MONEY = {"billing_error", "unauthorized_charge", "fraud", "product_defect", "wrong_or_changed_item",
         "service_failure"}
STAFF = {"synthetic": 25, "genuine": 55, "super": 12, None: 8}
TIERS = ("bronze", "silver", "gold", "platinum")
NAMES = ("Ada", "Ben", "Chloe", "Dev", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jon", "Kemi", "Luis", "Mei", "Noor")
LIFE_EVENTS = ("birthday", "new_baby", "marriage", "graduation", "retirement", "home_purchase", "moving",
               "new_car")
WRITTEN = {"email", "web", "chat", "helpdesk"}


def _pick(rng: random.Random, weights: dict[Any, float]) -> Any:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _customer_record(rng: random.Random, spec: dict[str, Any], cid: str) -> dict[str, Any]:
    """A customer's stable facts, on the vertical's own scale (some unknown)."""
    c: dict[str, Any] = {"id": cid}
    u = rng.random()
    tenure: float | None
    if u < 0.12:
        tenure = round(rng.uniform(0, 0.3), 2)  # joined in the last few months
    else:
        tenure = round(min(45.0, rng.expovariate(1 / spec["tenure_mean"]) + rng.uniform(0, 0.5)), 1)
    if rng.random() < 0.10:
        tenure = None  # the record lacks it
    if tenure is not None:
        c["tenure_years"] = tenure
    years = tenure if tenure is not None else spec["tenure_mean"]
    if rng.random() < 0.75:
        lam = spec["visits_per_year"] * max(years, 0.05)
        c["visits"] = max(1, int(rng.lognormvariate(math.log(lam + 1), 0.6)))
    if rng.random() < 0.4:
        c["visits_last_year"] = min(2000, int(rng.expovariate(1 / spec["visits_per_year"])))
    if rng.random() < 0.78:
        median = spec["value_per_year"] * max(years, 0.1)
        c["lifetime_value"] = round(min(5e6, rng.lognormvariate(math.log(median), spec["value_sigma"])), 2)
    if rng.random() < 0.35:
        c["tier"] = TIERS[min(3, int(years // max(1.0, spec["tenure_mean"] / 1.5)))]
    if rng.random() < 0.03:
        c["is_vip"] = True
    if tenure is None and rng.random() < 0.3:
        c["is_new"] = rng.random() < 0.4
    if rng.random() < 0.45:
        c["name"] = rng.choice(NAMES)
    if rng.random() < 0.06:
        c["life_events"] = rng.sample(LIFE_EVENTS, k=1)
    if rng.random() < 0.08:
        c["preferences"] = {rng.choice(["usual", "preferred_staff", "contact_channel"]):
                            rng.choice(["the usual", "Sam", "email", "morning slot"])}
    if rng.random() < 0.10:
        c["consents"] = ["marketing"] if rng.random() < 0.7 else ["marketing", "sms"]
    if rng.random() < 0.10:  # a store's percentiles of the business's own customers
        c["value_percentile"] = round(rng.uniform(0, 100), 1)
        c["tenure_percentile"] = round(rng.uniform(0, 100), 1)
    if rng.random() < 0.08:
        c["last_visit_days"] = float(rng.randrange(20, 500))
    return c


def _issue(rng: random.Random, spec: dict[str, Any]) -> tuple[str, str | None]:
    """(issue code, the family it was drawn for; None for a code no vocabulary knows)."""
    if rng.random() < 0.03:
        return rng.choice(UNKNOWN_CODES), None
    family = _pick(rng, spec["families"])
    trade = spec["trade"].get(family)
    if trade and rng.random() < 0.5:
        return rng.choice(trade), family
    return rng.choice(GENERAL_CODES[family]), family


def _interaction(rng: random.Random, spec: dict[str, Any]) -> dict[str, Any]:
    issue, family = _issue(rng, spec)
    negative = family in NEGATIVE
    inter: dict[str, Any] = {"issue": issue}
    if rng.random() < 0.88:
        inter["channel"] = _pick(rng, spec["channels"])
    channel = inter.get("channel")
    lo, hi = spec["price"]
    if rng.random() < (0.75 if family == "routine" else 0.3):
        inter["cost"] = round(rng.uniform(lo, hi), 2)
    # waits: minutes at a counter or on the phone; hours for written channels (less often known)
    if channel in WRITTEN:
        if rng.random() < 0.3:
            inter["wait_minutes"] = round(rng.expovariate(1 / 240.0), 1)
    elif rng.random() < 0.7:
        inter["wait_minutes"] = round(min(600.0, rng.expovariate(1 / (9.0 if negative else 5.0))), 1)
    # delays: a long tail for delay cases; routine work sometimes runs late
    if family == "delay":
        if rng.random() < 0.9:
            inter["delay_days"] = float(rng.choice((1, 1, 2, 2, 3, 4, 5, 7, 10, 14, 21, 30, 58)))
    elif rng.random() < (0.05 if family == "routine" else 0.04):
        inter["delay_days"] = float(rng.choice((1, 2, 3, 5, 15)))
    # repeat contacts: a count most of the time, sometimes only the flag
    if rng.random() < (0.28 if negative else 0.04):
        if rng.random() < 0.7:
            inter["repeat_count"] = rng.choice((1, 1, 1, 1, 2, 2, 3, 4, 6, 10, 30))
        else:
            inter["repeat_issue"] = True
    elif rng.random() < 0.3:
        inter["repeat_issue"] = False
    if negative and rng.random() < spec.get("escalation", 0.07):
        inter["escalated"] = True
    elif rng.random() < 0.05:
        inter["escalated"] = False
    # money at stake, on the vertical's scale (a fraud is ten times a billing error)
    if family in MONEY and rng.random() < 0.8:
        scale = spec["stake"] * (10 if family == "fraud" else 3 if family == "unauthorized_charge" else 1)
        inter["amount"] = round(min(1e6, rng.lognormvariate(math.log(scale), 1.0)), 2)
    elif family is None and rng.random() < 0.3:
        inter["amount"] = round(rng.lognormvariate(math.log(spec["stake"]), 1.0), 2)
    # sentiment: worse for failures, repeats and escalations
    if rng.random() < 0.72:
        mood = 0.3 if not negative else -0.3
        mood -= 0.3 * bool(inter.get("repeat_count") or inter.get("repeat_issue")) + 0.3 * bool(inter.get("escalated"))
        inter["sentiment"] = round(max(-1.0, min(1.0, rng.gauss(mood, 0.4))), 2)
    if rng.random() < 0.02:
        inter["budget"] = float(rng.choice((0, 10, 25, 100)))
    if rng.random() < 0.06:
        inter["attributes"] = {"add_on_fee": rng.choice((2.5, 5, 8, 12, 20))}
    return inter


def generate_population(n: int = 10_000, seed: int = 14) -> Iterator[dict[str, Any]]:
    """``n`` rows ``{"id", "context", "at"}``, seeded: the same ``n`` and ``seed`` give the same rows."""
    rng = random.Random(seed)
    weights = {v: s["weight"] for v, s in VERTICALS.items()}
    customers: dict[str, dict[str, Any]] = {}
    pool = max(20, n // 30)  # ids per business: customers come back
    for i in range(n):
        vertical = _pick(rng, weights)
        spec = VERTICALS[vertical]
        business = rng.choice(spec["businesses"])
        ctx: dict[str, Any] = {"business": {"id": business, "vertical": vertical}}
        u = rng.random()
        if u < 0.07:
            pass  # a walk-in: no customer record at all
        elif u < 0.10:
            ctx["customer"] = {"name": rng.choice(NAMES)}
        else:
            cid = f"{business}-c{rng.randrange(pool):05d}"
            record = customers.get(cid)
            if record is None:
                record = customers[cid] = _customer_record(rng, spec, cid)
            ctx["customer"] = dict(record)
        ctx["interaction"] = _interaction(rng, spec)
        level = _pick(rng, STAFF)
        if level is not None:
            ctx["staff"] = {"level": level}
            if rng.random() < 0.5:
                ctx["staff"]["id"] = f"{business}-s{rng.randrange(12)}"
        at = START + timedelta(seconds=rng.randrange(SPAN_DAYS * 86_400))
        yield {"id": f"p{i:06d}", "context": ctx, "at": at.strftime("%Y-%m-%dT%H:%M:%SZ")}


def population_contexts(n: int = 10_000, seed: int = 14) -> list[dict[str, Any]]:
    """The population as contexts (``at`` put in ``interaction.occurred_at``, as the backtest reads it)."""
    out = []
    for row in generate_population(n, seed):
        ctx = row["context"]
        ctx["interaction"] = {**ctx["interaction"], "occurred_at": row["at"]}
        out.append(ctx)
    return out


def write_population(path: str | Path, n: int = 10_000, seed: int = 14) -> int:
    """Write the population as JSON Lines (what ``recommender backtest`` reads); returns the row count."""
    count = 0
    with open(path, "w", encoding="utf-8") as f:
        for row in generate_population(n, seed):
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    from recommender import Recommender
    from recommender.backtest.population import format_report, population_check

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int, nargs="?", default=10_000, help="interactions (default 10000)")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("-o", "--output", help="also write the population here (JSON Lines)")
    ap.add_argument("--explain", type=int, default=1000,
                    help="interactions explained for the near-miss count (spread over the population; default 1000)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error("n must be at least 1")
    if args.output:
        write_population(args.output, args.n, args.seed)
        print(f"wrote {args.n} rows to {args.output}", file=sys.stderr)
    contexts = population_contexts(args.n, args.seed)
    rec = Recommender()
    t = time.perf_counter()
    report = population_check(rec, contexts, explain_sample=args.explain)
    seconds = time.perf_counter() - t
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        print(f"population: {args.n:,} interactions (seed {args.seed}), rulebook {rec.ruleset_version}, "
              f"checked in {seconds:.1f} s")
        print(format_report(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
