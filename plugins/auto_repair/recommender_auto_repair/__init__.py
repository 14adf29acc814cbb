"""Auto-repair shop plugin for the service recommender.

Contributes (through the public hooks only):

* a rule pack (``auto_repair.yaml``, shipped as package data) with the shop's gestures:
  waive small fees for regulars (the flat-tire fee), a free tire check with a new
  customer's oil change, proactive updates when a repair runs late, a courtesy call after
  a big repair, a loaner car or a ride for long repairs, and a few personal touches;
* context enrichment: ``interaction.attributes.service_category`` from the issue,
  ``vehicle_age_years``/``vehicle_age_band`` from ``vehicle_year``, ``hours_late`` from
  ``interaction.delay_days``, and ``customer.is_vip`` from lifetime value;
* a ranking adjustment: no upsell to an unhappy customer or on a comeback, one waiver per
  fee (the shop's own waiver replaces another pack's general waiver of the same fee), and
  a note on late repairs.

Installed, it is found through the entry point ``auto_repair`` (group ``recommender``).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Callable

from recommender import hookimpl

__all__ = [
    "PACK_PATH",
    "PREFIX",
    "SERVICE_CATEGORIES",
    "VIP_LIFETIME_VALUE",
    "UNHAPPY_SENTIMENT",
    "vehicle_age_band",
    "recommender_register_rule_packs",
    "recommender_enrich_context",
    "recommender_adjust_recommendations",
]

__version__ = "0.1.0"

#: The plugin's rule pack, shipped inside the package.
PACK_PATH = Path(__file__).with_name("auto_repair.yaml")
#: Every gesture of this plugin starts with this prefix.
PREFIX = "auto_"
VERTICAL = "auto_repair"

#: interaction.issue -> interaction.attributes.service_category
SERVICE_CATEGORIES: dict[str, str] = {
    "flat_tire": "tires",
    "tire_rotation": "tires",
    "tire_replacement": "tires",
    "tire_pressure_check": "tires",
    "wheel_alignment": "tires",
    "oil_change": "maintenance",
    "inspection": "maintenance",
    "battery_test": "maintenance",
    "battery_replacement": "maintenance",
    "fluid_service": "maintenance",
    "wiper_replacement": "maintenance",
    "bulb_replacement": "maintenance",
    "brake_service": "brakes",
    "diagnostic": "diagnostic",
    "engine_repair": "major_repair",
    "transmission_repair": "major_repair",
    "collision_repair": "major_repair",
    "suspension_repair": "major_repair",
}
#: A customer whose lifetime value reaches this is treated as VIP (unless the caller says otherwise).
VIP_LIFETIME_VALUE = 5000.0
#: Sentiment at or below this counts as unhappy: no upsells.
UNHAPPY_SENTIMENT = -0.3


def vehicle_age_band(age_years: float) -> str:
    """``new`` (under 4 years), ``mid`` (4 to 9) or ``old`` (10 and more)."""
    if age_years < 4:
        return "new"
    if age_years < 10:
        return "mid"
    return "old"


def _vehicle_year(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and float(value).is_integer():
        year = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        year = int(value.strip())
    else:
        return None
    return year if 1886 <= year <= 2200 else None


def _in_scope(context: Any) -> bool:
    """Auto-repair work: the business says so, or (no vertical given) the issue is one of ours."""
    vertical = context.business.vertical
    if vertical is not None:
        return vertical == VERTICAL
    return context.interaction.issue in SERVICE_CATEGORIES


# -- registration --------------------------------------------------------------------


@hookimpl
def recommender_register_rule_packs(register: Callable[[Any], None]) -> None:
    """The shop's gestures and rules, from the YAML pack shipped with the package."""
    register(PACK_PATH)


# -- context -------------------------------------------------------------------------


@hookimpl
def recommender_enrich_context(context: Any) -> dict[str, Any] | None:
    """Derive auto-repair facts; returns updates, never mutates ``context``.

    The host fills only what the caller left unset, so a caller's own
    ``service_category`` or ``is_vip`` always wins.
    """
    if not _in_scope(context):
        return None
    interaction, customer = context.interaction, context.customer
    attrs: dict[str, Any] = {"service_category": SERVICE_CATEGORIES.get(interaction.issue, "other")}

    year = _vehicle_year(interaction.attributes.get("vehicle_year"))
    if year is not None:
        now = interaction.occurred_at.year if interaction.occurred_at is not None else date.today().year
        age = max(0, now - year)
        attrs["vehicle_age_years"] = age
        attrs["vehicle_age_band"] = vehicle_age_band(age)

    if interaction.delay_days is not None:
        attrs["hours_late"] = round(interaction.delay_days * 24, 2)

    updates: dict[str, Any] = {"interaction": {"attributes": attrs}}
    if customer.is_vip is None and customer.lifetime_value >= VIP_LIFETIME_VALUE:
        updates["customer"] = {"is_vip": True}
    return updates


# -- ranking -------------------------------------------------------------------------


@hookimpl
def recommender_adjust_recommendations(recommendations: list[Any], context: Any) -> list[Any] | None:
    """Veto our upsells for an unhappy or returning customer, keep one waiver per fee, and
    add a note to a late-repair update.

    A fee can be waived only once: when one of our waivers is recommended, another pack's
    waiver of the same fee (same cost: the interaction's fee) is withheld as vetoed - the
    shop's own, more specific gesture replaces the general one. If ours is not in the list
    (e.g. it needs approval), the other pack's waiver stays.
    """
    interaction = context.interaction
    unhappy = (interaction.sentiment is not None and interaction.sentiment <= UNHAPPY_SENTIMENT) \
        or interaction.repeat_issue is True
    fee = interaction.cost
    ours_waives_fee = fee is not None and any(
        r.category == "fee_waiver" and r.gesture_id.startswith(PREFIX) and r.cost == fee
        for r in recommendations
    )
    hours_late = interaction.attributes.get("hours_late")

    changed = False
    kept = []
    for rec in recommendations:
        gid = rec.gesture_id
        if gid.startswith(PREFIX + "upsell_") and unhappy:
            changed = True  # no selling to someone who is upset or back with the same fault
            continue
        if ours_waives_fee and not gid.startswith(PREFIX) and rec.category == "fee_waiver" and rec.cost == fee:
            changed = True  # the same fee is already waived by our gesture: one waiver is enough
            continue
        if gid == "auto_delay_status_update" and isinstance(hours_late, (int, float)) and not isinstance(hours_late, bool):
            rec.agent_reason += f" Note: the repair is {hours_late:g} h late; give the new ready time and call again before it."
            changed = True
        kept.append(rec)
    return kept if changed else None
