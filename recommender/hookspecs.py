"""Hook specifications: how plugins extend the recommender.

A plugin is a module or object with functions named ``recommender_*`` decorated with
``recommender.hookimpl``. Installed plugins are found through the entry-point group
``recommender``; drop-in ``.py`` files through ``--plugins-dir``; objects through
``Recommender(plugins=[...])``. The core's own packs are registered by a built-in plugin
through these same hooks.

Hooks are grouped by lifecycle: registration (when a business's rulebook is built),
context (before rules run), ranking (after arbitration), outcome (after the fact).

The host calls every implementation one at a time and isolates it: an implementation that
raises, returns malformed data or runs past the time limit is skipped, and the result
carries a warning naming the plugin and hook (``strict=True`` raises instead). Call order
is pluggy's: last registered first, adjustable with ``tryfirst``/``trylast``.

.. versionadded:: 0.1
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from pluggy import HookspecMarker

if TYPE_CHECKING:
    from .context import Business, Context
    from .results import Recommendation
    from .outcomes import OutcomeEvent

_spec = HookspecMarker("recommender")

__all__ = [
    "recommender_declare_verticals",
    "recommender_register_issue_codes",
    "recommender_business_profile",
    "recommender_register_gestures",
    "recommender_register_rule_packs",
    "recommender_enrich_context",
    "recommender_adjust_recommendations",
    "recommender_record_outcome",
]

# -- registration ------------------------------------------------------------------


@_spec
def recommender_declare_verticals() -> "list[str] | None":
    """Name the trades (``business.vertical`` values) this plugin serves, called once when
    the plugin is registered.

    :returns: a list of verticals, or ``None`` for a plugin that serves every business.
        A plugin that declares verticals applies only to businesses of those verticals,
        unless the plugin configuration selects it explicitly (``PluginConfig``), which
        widens or narrows it. All results are collected, one per plugin.

    .. versionadded:: 0.2
    """


@_spec
def recommender_register_issue_codes(register: Callable[[Any], None], business: "Business") -> None:
    """Add the trade's issue codes to the vocabulary, called once when the rulebook of
    ``business`` is built.

    :param register: call ``register({"code": "flat_tire", "family": "routine",
        "aliases": ["puncture"]})`` once per code (or with an :class:`~recommender.issues.IssueCode`).
        ``family`` is one of :data:`recommender.issues.FAMILIES`; an unknown family is an error
        with a suggestion. A code another source put in a different family is an error naming both.
    :param business: the tenant being built.
    :returns: nothing. All implementations are called.

    .. versionadded:: 0.2
    """


@_spec
def recommender_business_profile(business: "Business") -> "dict[str, Any] | None":
    """A trade's defaults for the business profile (:class:`~recommender.profile.Profile`),
    e.g. what counts as loyal at a gym, called when a business's profile is first needed.

    :param business: the business (``id``, ``vertical``).
    :returns: ``None`` or a partial profile dict. All results are collected and merged over
        the core defaults in call order; configuration and a tenant's stored profile override
        them. Invalid keys or values drop this plugin's layer with a warning naming the key.

    .. versionadded:: 0.2
    """


@_spec
def recommender_register_gestures(register: Callable[[Any], None], business: "Business") -> None:
    """Contribute gestures, called once when the rulebook of ``business`` is built.

    :param register: call ``register(gesture)`` once per gesture, with a dict of the
        gesture fields (as in a pack's ``gestures:`` list) or a :class:`~recommender.Gesture`.
        Each is validated as it arrives and stamped with the plugin's name.
    :param business: the tenant (``id``, ``vertical``) being built, for plugins whose
        gestures differ by business.
    :returns: nothing. All implementations are called.

    A gesture id already defined by another plugin or pack is an error naming both.
    """


@_spec
def recommender_register_rule_packs(register: Callable[[Any], None], business: "Business") -> None:
    """Contribute rule packs, called once when the rulebook of ``business`` is built.

    :param register: call ``register(pack)`` with a path to a YAML pack file or folder,
        or an in-memory pack dict (same shape as a YAML pack). Rules may use gestures of
        any pack or plugin selected for the business.
    :param business: the tenant being built.
    :returns: nothing. All implementations are called.

    A pack with an error (bad YAML, unknown gesture or field) drops this plugin's
    contributions with a warning naming the plugin and ``file:line``; other plugins keep
    working.
    """


# -- context -----------------------------------------------------------------------


@_spec
def recommender_enrich_context(context: "Context", business: "Business") -> dict[str, Any] | None:
    """Add data to a context before the rules run (e.g. a CRM look-up).

    Called on every ``recommend``/``explain`` for the plugins selected for the business.

    :param context: the validated context (read it; do not mutate it).
    :param business: the tenant.
    :returns: ``None`` or updates by section, e.g.
        ``{"customer": {"is_vip": True}, "interaction": {"attributes": {"bay": 3}}}``.
        Updates fill only fields the caller left unset (``attributes`` are merged, the
        caller's keys win) and are validated like the context itself. All results are
        collected, applied in call order.
    """


# -- ranking -----------------------------------------------------------------------


@_spec
def recommender_adjust_recommendations(
    recommendations: "list[Recommendation]", context: "Context"
) -> "list[Recommendation] | None":
    """Adjust the ranked list after arbitration: re-score, veto, add a note.

    Called on every ``recommend``/``explain``. Implementations are folded one at a time,
    each receiving the list as the previous one left it (wrapper-style: each wraps the
    result of the ones after it in call order).

    :param recommendations: the ranked list (copies: change their fields freely). The rule
        matches in ``rules`` are frozen and shared between results: replace one with
        ``match.model_copy(update=...)`` rather than change it.
    :param context: the (enriched) context.
    :returns: ``None`` for no change, or the new list. A gesture left out is reported
        as ``withheld`` with reason ``vetoed``; a gesture cannot be added that no rule
        matched. The list is re-sorted by tier (recover/meet first) and score.
    """


# -- outcome -----------------------------------------------------------------------


@_spec
def recommender_record_outcome(outcome: "OutcomeEvent") -> None:
    """Observe an outcome (offered, accepted, declined, delivered) of a recommended gesture.

    Called by :meth:`Recommender.record_outcome` after the outcome is stored.

    :param outcome: decision id, gesture id, outcome, tenant, customer, note, cost.
    :returns: nothing. All implementations are called; failures only warn.
    """
