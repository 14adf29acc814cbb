"""Small builders shared by the tests (imported as ``from helpers import ...``)."""

from __future__ import annotations

from typing import Any

from recommender import Recommender


def gesture(gid: str, tier: str = "meet", cost: Any = 0, **extra: Any) -> dict[str, Any]:
    return {"id": gid, "title": gid.replace("_", " ").title(), "category": extra.pop("category", "freebie"),
            "tier": tier, "cost": cost, "script": extra.pop("script", f"{gid} for you."), **extra}


def rule(rid: str, when: Any, then: Any, priority: int = 50, **extra: Any) -> dict[str, Any]:
    return {"id": rid, "when": when, "then": then, "priority": priority,
            "because": extra.pop("because", f"{rid} principle."), **extra}


def pack(gestures: list[dict[str, Any]], rules: list[dict[str, Any]], name: str = "t") -> dict[str, Any]:
    return {"pack": name, "version": "1", "gestures": gestures, "rules": rules}


#: A profile that switches off the listing caps, the money limits and the extras draw, for
#: tests of one mechanism at a time (tests of those three pass ``profiles=`` themselves).
OPEN_PROFILE: dict[str, Any] = {
    "listing": {"recover": 20, "meet": 20, "exceed": 20},
    "money_limits": {"synthetic": 1e9, "genuine": 1e9, "super": 1e9},
    "extras_rate": 1.0,
}


def make(gestures: list[dict[str, Any]], rules: list[dict[str, Any]], **kw: Any) -> Recommender:
    """A Recommender with only this in-memory pack (no shipped packs, no installed plugins),
    and :data:`OPEN_PROFILE` unless ``profiles`` is given."""
    kw.setdefault("profiles", {"default": OPEN_PROFILE})
    return Recommender([], packs=[pack(gestures, rules)], autoload=False, **kw)


def ctx(issue: str = "flat_tire", **sections: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"interaction": {"issue": issue, **sections.pop("interaction", {})}}
    out.update(sections)
    return out
