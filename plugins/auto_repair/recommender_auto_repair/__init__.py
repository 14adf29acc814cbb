"""Auto-repair shop plugin for the service recommender.

Contributes (through the public hooks only):

* the trade it serves: ``recommender_declare_verticals`` -> ``["auto_repair"]``, so the
  plugin applies to businesses whose ``business.vertical`` is ``auto_repair`` (or that a
  ``PluginConfig`` selects it for), never to another trade's;
* the shop's issue codes (:data:`ISSUE_CODES`: a flat tire, an oil change, a repair... are
  ``routine`` jobs; a car not ready in time is a ``delay``), each in its family, with aliases;
* the trade's profile defaults (:data:`PROFILE`): loyal from 2 years or 8 visits,
  high-value from 3000, money limits on a garage's scale;
* a rule pack (``auto_repair.yaml``, shipped as package data) with the shop's gestures:
  the flat-tire fee waived for a loyal customer, a free tire check with a new customer's oil
  change, proactive updates when a repair runs late, a re-check of our own work at no
  charge, a courtesy call after a big repair, a loaner car or a ride for long repairs, and
  a few personal touches;
* context enrichment: ``interaction.attributes.service_category`` from the issue,
  ``vehicle_age_years``/``vehicle_age_band`` from ``vehicle_year``, ``hours_late`` from
  ``interaction.delay_days``;
* a ranking adjustment: no upsell in a negative experience (severity >= 1: an upset
  customer, a comeback, a late repair), one waiver per fee (the shop's own waiver replaces
  another pack's general waiver of the same fee), and a note on late repairs.

Installed, it is found through the entry point ``auto_repair`` (group ``recommender``).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from recommender import hookimpl
from recommender.trade import Trade

__all__ = [
    "PACK_PATH",
    "PREFIX",
    "VERTICAL",
    "ISSUE_CODES",
    "SERVICE_CATEGORIES",
    "PROFILE",
    "vehicle_age_band",
    "TRADE",
    "recommender_declare_verticals",
    "recommender_register_issue_codes",
    "recommender_business_profile",
    "recommender_register_rule_packs",
    "recommender_enrich_context",
    "recommender_adjust_recommendations",
]

__version__ = "0.1.0"

#: The plugin's rule pack, shipped inside the package.
PACK_PATH = Path(__file__).with_name("auto_repair.yaml")
#: Every gesture of this plugin starts with this prefix.
PREFIX = "auto_"
#: The trade this plugin serves (``business.vertical``).
VERTICAL = "auto_repair"

#: The shop's issue codes: code -> (family, service category, aliases). A job the customer
#: brings the car in for is ``routine`` (not a failure: the severity comes from the signals,
#: e.g. a repair running late); a car not ready when promised is a ``delay``. A comeback on
#: our own work uses the core's ``comeback``/``repair_failed`` (``service_failure``).
ISSUE_CODES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "flat_tire": ("routine", "tires", ("flat_tyre", "puncture")),
    "tire_rotation": ("routine", "tires", ("tyre_rotation",)),
    "tire_replacement": ("routine", "tires", ("tyre_replacement",)),
    "tire_pressure_check": ("routine", "tires", ("tyre_pressure_check",)),
    "wheel_alignment": ("routine", "tires", ("alignment",)),
    "oil_change": ("routine", "maintenance", ("oil_service", "lube", "oil_and_filter")),
    "inspection": ("routine", "maintenance", ("safety_inspection", "vehicle_inspection")),
    "battery_test": ("routine", "maintenance", ("battery_check",)),
    "battery_replacement": ("routine", "maintenance", ()),
    "fluid_service": ("routine", "maintenance", ("coolant_flush",)),
    "wiper_replacement": ("routine", "maintenance", ()),
    "bulb_replacement": ("routine", "maintenance", ()),
    "brake_service": ("routine", "brakes", ("brake_repair",)),
    "diagnostic": ("routine", "diagnostic", ("diagnosis", "check_engine_light")),
    "engine_repair": ("routine", "major_repair", ()),
    "transmission_repair": ("routine", "major_repair", ()),
    "collision_repair": ("routine", "major_repair", ("bodywork",)),
    "suspension_repair": ("routine", "major_repair", ()),
    "exhaust_repair": ("routine", "major_repair", ()),
    "vehicle_not_ready": ("delay", "other", ("car_not_ready",)),
}
#: interaction.issue (codes and aliases) -> interaction.attributes.service_category
SERVICE_CATEGORIES: dict[str, str] = {
    name: category for code, (_, category, aliases) in ISSUE_CODES.items() for name in (code, *aliases)
}
#: The trade's profile defaults (docs/advice.md "The business profile"): a garage sees a
#: customer a few times a year, so two years or eight visits make a regular; a year's
#: servicing and one repair come to about a thousand, so 3000 is a valuable customer; a
#: service advisor routinely credits a diagnostic fee or a small repair (up to 100).
PROFILE: dict[str, Any] = {
    "loyal_tenure_years": 2,
    "loyal_visits": 8,
    "high_value": 3000,
    "major_amount": 300,
    "money_limits": {"synthetic": 25, "genuine": 100, "super": 500},
}


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
    """Auto-repair work: the business says so, or (no vertical given, and a ``PluginConfig``
    selected the plugin for the business) the issue is one of ours."""
    return TRADE.serves(context)


# -- registration --------------------------------------------------------------------

#: The trade's vertical, issue codes, profile and pack, as hook implementations
#: (:class:`recommender.trade.Trade`: the set-up every one-trade plugin shares).
TRADE = Trade(VERTICAL, pack=PACK_PATH, issue_codes={code: (family, aliases) for code, (family, _, aliases)
                                                     in ISSUE_CODES.items()}, profile=PROFILE)

recommender_declare_verticals = TRADE.declare_verticals
recommender_register_issue_codes = TRADE.register_issue_codes
recommender_business_profile = TRADE.business_profile
recommender_register_rule_packs = TRADE.register_rule_packs


# -- context -------------------------------------------------------------------------


@hookimpl
def recommender_enrich_context(context: Any) -> dict[str, Any] | None:
    """Derive auto-repair facts; returns updates, never mutates ``context``.

    The host fills only what the caller left unset, so a caller's own
    ``service_category`` (or ``vehicle_age_band``, ``hours_late``) always wins.
    """
    if not _in_scope(context):
        return None
    interaction = context.interaction
    attrs: dict[str, Any] = {"service_category": SERVICE_CATEGORIES.get(interaction.issue, "other")}

    year = _vehicle_year(interaction.attributes.get("vehicle_year"))
    if year is not None:
        now = interaction.occurred_at.year if interaction.occurred_at is not None else date.today().year
        age = max(0, now - year)
        attrs["vehicle_age_years"] = age
        attrs["vehicle_age_band"] = vehicle_age_band(age)

    if interaction.delay_days is not None:
        attrs["hours_late"] = round(interaction.delay_days * 24, 2)

    return {"interaction": {"attributes": attrs}}


# -- ranking -------------------------------------------------------------------------


@hookimpl
def recommender_adjust_recommendations(recommendations: list[Any], context: Any) -> list[Any] | None:
    """Veto our upsells in a negative experience, keep one waiver per fee, and add a note to
    a late-repair update.

    No selling to a customer whose experience is negative (``interaction.severity`` >= 1:
    upset, back with the same fault, a repair running late...).

    A fee can be waived only once: when one of our waivers is recommended, another pack's
    waiver of the same fee (same cost: the interaction's fee) is withheld as vetoed - the
    shop's own, more specific gesture replaces the general one. If ours is not in the list
    (e.g. it needs approval), the other pack's waiver stays.
    """
    interaction = context.interaction
    unhappy = (interaction.severity or 0) >= 1
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
            changed = True  # no selling to someone who is upset, kept waiting or back with the same fault
            continue
        if ours_waives_fee and not gid.startswith(PREFIX) and rec.category == "fee_waiver" and rec.cost == fee:
            changed = True  # the same fee is already waived by our gesture: one waiver is enough
            continue
        if gid == "auto_delay_status_update" and isinstance(hours_late, (int, float)) and not isinstance(hours_late, bool):
            rec.agent_reason += f" Note: the repair is {hours_late:g} h late; give the new ready time and call again before it."
            changed = True
        kept.append(rec)
    return kept if changed else None
