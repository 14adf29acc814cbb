"""The reference page (docs/reference.md), generated from the code: ``recommender reference``.

Everything a rule or plugin writer looks up: the context fields with their types and
meaning, the issue vocabulary by family, gesture categories and tiers, the core packs'
exclusive groups, staff levels, condition operators and the business profile's keys with
their defaults. Names, types, bounds, defaults and lists come from the models and packs
themselves; the one-line meanings are kept here, and rendering fails on a field without
one, so a new field cannot reach the page undescribed. ``tests/test_newcomer_reference.py``
holds docs/reference.md equal to :func:`render_reference`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["render_reference", "core_exclusive_groups", "render_core_groups", "CONTEXT_MEANINGS",
           "PROFILE_MEANINGS"]

#: One line per context field (dotted path). Rendering fails for a field missing here.
CONTEXT_MEANINGS: dict[str, str] = {
    "customer.id": "the customer's id at the business (the store's key for history and policy)",
    "customer.name": "what to call the customer in scripts",
    "customer.tenure_years": "years as a customer",
    "customer.lifetime_value": "money the customer has spent with the business; unknown is never zero",
    "customer.visits_last_year": "visits (orders, stays, contacts) in the last twelve months",
    "customer.visits": "lifetime visits including this one: 2 or more is a returning customer",
    "customer.tier": "the loyalty programme's tier (gold, ...)",
    "customer.is_new": "in their first quarter-year; derived from tenure_years unless given",
    "customer.is_vip": "marked as a VIP by the business",
    "customer.life_events": "recent life events (home_purchase, new_baby, retirement, ...)",
    "customer.interests": "what the customer is interested in",
    "customer.preferences": "open map: remembered preferences (contact channel, usual order, ...)",
    "customer.consents": "what the customer agreed to (partner_referrals, ...)",
    "customer.last_visit_days": "days since the last visit (from a store, a plugin or the caller)",
    "customer.prior_issues": "issue codes of earlier contacts (from a store or the caller)",
    "customer.recent_gestures": "gestures made to the customer recently (from a store or the caller)",
    "customer.attributes": "open map: anything else a pack or plugin tests (keys of your trade)",
    "customer.loyal": "loyal on this business's scale (profile); derived unless given",
    "customer.high_value": "high-value on this business's scale (profile); derived unless given",
    "customer.returning": "2 or more lifetime visits; derived unless given",
    "customer.value_percentile": "with a store: lifetime value's percentile among the business's customers",
    "customer.tenure_percentile": "with a store: tenure's percentile among the business's customers",
    "interaction.issue": "the issue code (the only required field): see the vocabulary below",
    "interaction.cost": "what fixing it costs the customer: the fee a waiver waives",
    "interaction.channel": "how the interaction reached us; unknown matches no channel rule",
    "interaction.wait_minutes": "how long the customer waited",
    "interaction.delay_days": "how late the delivery, repair or booking is",
    "interaction.repeat_issue": ("the customer contacted us about this issue before; derived from repeat_count "
                                 "unless given (the count wins a disagreement)"),
    "interaction.repeat_count": "earlier contacts about this same issue (0: the first contact)",
    "interaction.escalated": "escalated or disputed: a regulator, an ombudsman, a chargeback, a rejected answer",
    "interaction.amount": "money at stake for the customer: a disputed charge, an order's value, a claim",
    "interaction.sentiment": "the customer's mood, -1 (angry) to 1 (delighted)",
    "interaction.budget": "what this interaction may cost in gestures at most",
    "interaction.occurred_at": "when it happened (the extras draw's day, due dates); default: now",
    "interaction.attributes": "open map: facts of the trade (service_category, vehicle_year, ...)",
    "interaction.family": "the issue's family; derived from the vocabulary unless given",
    "interaction.severity": "0 none, 1 minor, 2 moderate, 3 major, 4 critical; derived unless given",
    "interaction.long_wait": "the wait reached the profile's long_wait_minutes; derived unless given",
    "staff.level": "the serving person's authority: see staff levels below",
    "staff.id": "the serving person's id",
    "business.id": "the tenant: selects plugins, profile and the store's partition",
    "business.vertical": "the trade (auto_repair, fitness, insurance, ...): selects plugins that declare it",
    "business.store_id": "the branch or store",
}

#: One line per profile key. Rendering fails for a key missing here.
PROFILE_MEANINGS: dict[str, str] = {
    "currency": "how money is shown (ISO 4217 code)",
    "loyal_tenure_years": "loyal from this tenure ...",
    "loyal_visits": "... or this many lifetime visits",
    "high_value": "high-value from this lifetime value",
    "loyal_percentile": "with a store: loyal from this tenure percentile among the business's customers",
    "high_value_percentile": "with a store: high-value from this value percentile",
    "major_amount": "money at stake from which a negative case is one severity step higher (ten times: two)",
    "long_wait_minutes": "a wait this long is a negative experience",
    "money_limits.synthetic": "what synthetic staff may give on their own, per gesture",
    "money_limits.genuine": "what genuine staff may give on their own, per gesture",
    "money_limits.super": "what super staff may give on their own, per gesture",
    "extras_rate": "the share of interactions with an extra on offer that get one",
    "extras_key": "the key of the extras draw: set your own",
    "listing.recover": "recover gestures listed at most (one more in a major case)",
    "listing.meet": "meet gestures listed at most",
    "listing.exceed": "exceed gestures (extras) listed at most",
}

TIER_MEANINGS = {
    "recover": "a negative experience put right (listed first)",
    "meet": "expectations met: the baseline of a good experience",
    "exceed": "the unexpected extra, drawn for about one interaction in ten",
}
CATEGORY_MEANINGS = {
    "fee_waiver": "a fee or charge not taken",
    "freebie": "something given free",
    "upgrade": "a better version at no extra cost",
    "referral": "an introduction to a partner (needs consent)",
    "information": "telling the customer something useful: a status, an estimate, the fees",
    "follow_up": "contacting the customer later",
    "personal_touch": "recognising the person: a name, a thank-you, a preference remembered",
    "loyalty_reward": "a reward for a long relationship",
    "service_recovery": "putting a failure right: an apology, a credit, a senior owner",
    "speed": "faster service: a priority queue, an express lane",
}
STAFF_MEANINGS = {
    "synthetic": "follows the script: may make zero- and low-cost gestures",
    "genuine": "a front-line agent with judgement (the default)",
    "super": "a supervisor or manager: may approve what others may not",
}
OPERATOR_MEANINGS = {
    "eq": "equals", "ne": "differs from (false when the field is absent)",
    "lt": "less than", "le": "at most", "gt": "more than", "ge": "at least",
    "in": "one of a list of values", "not_in": "none of a list of values",
    "exists": "the field is present (true) or absent (false)",
    "contains": "a list holds the value, or a text contains it",
    "not_contains": "a list lacks the value, or a text does not contain it",
}
_SYMBOLS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else str(value)


def _type(schema: dict[str, Any]) -> str:
    """A field's JSON Schema as a short type: ``number 0..200``, ``one of: a, b``, ..."""
    options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    if len(options) != 1:
        return "boolean, number or text"
    s = options[0]
    kind = s.get("type")
    if "enum" in s:
        return "one of: " + ", ".join(f"`{v}`" for v in s["enum"])
    if kind == "array":
        return "list of text"
    if kind == "object":
        return "map: key -> boolean, number or text"
    if kind == "string" and s.get("format") == "date-time":
        return "ISO 8601 date-time"
    name = {"number": "number", "integer": "integer", "boolean": "boolean", "string": "text"}.get(kind, str(kind))
    lo, hi = s.get("minimum"), s.get("maximum")
    if lo is not None and hi is not None:
        return f"{name} {_num(lo)}..{_num(hi)}"
    if "pattern" in s:
        return "id (letters, digits, `_.:-`)"
    return name


def _context_rows() -> list[tuple[str, str, str]]:
    from .context import Context

    schema = Context.model_json_schema()
    defs = schema["$defs"]
    rows = []
    for section, ref in schema["properties"].items():
        model = defs[(ref.get("$ref") or ref["anyOf"][0]["$ref"]).rsplit("/", 1)[1]] if "$ref" in ref or "anyOf" in ref \
            else defs[ref["allOf"][0]["$ref"].rsplit("/", 1)[1]]
        required = set(model.get("required", []))
        for name, prop in model["properties"].items():
            path = f"{section}.{name}"
            if path not in CONTEXT_MEANINGS:
                raise KeyError(f"{path}: no meaning in recommender.reference.CONTEXT_MEANINGS")
            kind = _type(prop)
            if path in required or name in required:
                kind += " (required)"
            elif prop.get("default") not in (None, [], {}):
                kind += f", default `{prop['default']}`"
            rows.append((f"`{path}`", kind, CONTEXT_MEANINGS[path]))
    return rows


def _profile_rows() -> list[tuple[str, str, str]]:
    from .profile import Profile

    rows = []
    for key, value in Profile().model_dump().items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, default in items:
            path = key if sub is None else f"{key}.{sub}"
            if path not in PROFILE_MEANINGS:
                raise KeyError(f"{path}: no meaning in recommender.reference.PROFILE_MEANINGS")
            rows.append((f"`{path}`", f"`{_num(default)}`", PROFILE_MEANINGS[path]))
    return rows


def core_exclusive_groups(rules: Sequence[str | Path] | None = None) -> dict[str, list[tuple[str, str]]]:
    """The exclusive groups of the shipped core packs: group -> [(gesture id, pack name)]."""
    from .core import default_rules_dir
    from .packs import load_packs

    groups: dict[str, list[tuple[str, str]]] = {}
    for pack in load_packs(list(rules) if rules is not None else [default_rules_dir()], origin="core"):
        for g in pack.gestures:
            if g.exclusive_group:
                groups.setdefault(g.exclusive_group, []).append((g.id, pack.name))
    return dict(sorted(groups.items()))


def render_core_groups() -> str:
    """The core's exclusive groups as a Markdown table (docs/plugins.md and the reference)."""
    rows = [(f"`{group}`", ", ".join(f"`{gid}`" for gid, _ in members),
             ", ".join(sorted({pack for _, pack in members})))
            for group, members in core_exclusive_groups().items()]
    return "\n".join(_table(["group", "gestures", "pack"], rows)) + "\n"


def render_reference() -> str:
    """docs/reference.md: every name a pack, a plugin or an integrator uses, from the code."""
    from .conditions import _ALLOWED, OPS
    from .context import STAFF_LEVELS
    from .issues import CORE_CODES, FAMILIES, SEVERITY_BANDS
    from .packs import CATEGORIES, TIERS

    out = [
        "# Reference",
        "",
        "<!-- Generated by `recommender reference > docs/reference.md` from the code; do not edit by hand",
        "     (tests/test_newcomer_reference.py fails when this page and the code differ). -->",
        "",
        "Every name a rule pack, a plugin or an integrator uses, generated from the code: the",
        "[context](#context-fields), the [issue vocabulary](#issue-vocabulary),",
        "[gestures](#gestures-categories-and-tiers), the core's [exclusive groups](#exclusive-groups-of-the-core-packs),",
        "[staff levels](#staff-levels), [operators](#operators) and the [business profile](#business-profile).",
        "How they work together: [advice.md](advice.md); writing a plugin: [plugins.md](plugins.md).",
        "",
        "## Context fields",
        "",
        "Every field is optional except `interaction.issue`; an absent field matches no condition",
        "and is listed in `missing_inputs`. Unknown fields are rejected, except keys of the open",
        "maps (`customer.preferences`, `customer.attributes`, `interaction.attributes`).",
        "",
        *_table(["field", "type", "meaning"], _context_rows()),
        "",
        "## Issue vocabulary",
        "",
        "`interaction.issue` is a code of the vocabulary (or an alias); its family sets",
        "`interaction.family` and the base of `interaction.severity` ("
        + ", ".join(f"{i} {band}" for i, band in enumerate(SEVERITY_BANDS)) + ").",
        "Plugins add their trades' codes (`recommender issues --vertical NAME` lists those in force).",
        "",
        *_table(["family", "negative", "kind", "base severity", "meaning"],
                [(f"`{f.name}`", "yes" if f.negative else "no", f.kind, f.base, f.meaning) for f in FAMILIES.values()]),
        "",
        "Core codes by family (aliases in brackets):",
        "",
    ]
    by_family: dict[str, list[str]] = {}
    for code in CORE_CODES:
        shown = f"`{code.code}`" + (f" ({', '.join(code.aliases)})" if code.aliases else "")
        by_family.setdefault(code.family, []).append(shown)
    out += _table(["family", "codes"], [(f"`{fam}`", ", ".join(by_family.get(fam, [])) or "-") for fam in FAMILIES])
    out += [
        "",
        "## Gestures: categories and tiers",
        "",
        *_table(["category", "meaning"], [(f"`{c}`", CATEGORY_MEANINGS[c]) for c in CATEGORIES]),
        "",
        *_table(["tier", "meaning"], [(f"`{t}`", TIER_MEANINGS[t]) for t in TIERS]),
        "",
        "## Exclusive groups of the core packs",
        "",
        "At most one gesture of a group is offered per interaction. A plugin gesture that joins",
        "one of these groups on purpose says `shares_group: true` (docs/plugins.md).",
        "",
        render_core_groups().rstrip("\n"),
        "",
        "## Staff levels",
        "",
        "From least to most authority; a gesture's `authority` is the lowest level that may make it.",
        "",
        *_table(["level", "meaning"], [(f"`{lv}`", STAFF_MEANINGS[lv]) for lv in STAFF_LEVELS]),
        "",
        "## Operators",
        "",
        "Conditions are `field op value`, combined with `all`, `any` and `not`. An absent field",
        "matches neither an operator nor its negation (except `exists false`).",
        "",
        *_table(["operator", "also written", "meaning", "on fields of kind"],
                [(f"`{op}`", f"`{_SYMBOLS[op]}`" if op in _SYMBOLS else "", OPERATOR_MEANINGS[op],
                  ", ".join(k for k, ops in _ALLOWED.items() if op in ops)) for op in OPS]),
        "",
        "## Business profile",
        "",
        "Per-business numbers the shipped rules read (docs/advice.md); defaults below, a plugin's",
        "`recommender_business_profile` and configuration (`--profiles`) override them.",
        "",
        *_table(["key", "default", "meaning"], _profile_rows()),
        "",
    ]
    return "\n".join(out)
