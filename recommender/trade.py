"""The set-up every one-trade plugin repeats, once: :class:`Trade`.

A plugin for one trade (a garage, a gym, an agency) declares its vertical, registers its
issue codes and its profile defaults, ships one rule pack, and scopes its enrichment to its
own trade's interactions. :class:`Trade` holds those four hooks and the scope test; the
plugin module binds them to the hook names pluggy looks for::

    from recommender.trade import Trade

    TRADE = Trade("car_wash", pack=Path(__file__).with_name("car_wash.yaml"),
                  issue_codes={"wash": ("routine", ["car_wash"]), "wash_redo": ("service_failure", [])},
                  profile={"loyal_visits": 12})

    recommender_declare_verticals = TRADE.declare_verticals
    recommender_register_issue_codes = TRADE.register_issue_codes
    recommender_business_profile = TRADE.business_profile
    recommender_register_rule_packs = TRADE.register_rule_packs

The three shipped plugins (``plugins/``) and ``recommender plugin new`` use it; their tests
share :class:`recommender.testing.TradePluginTests`. See docs/plugins.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

from .plugins import hookimpl

__all__ = ["Trade"]

T = TypeVar("T")


class Trade:
    """One trade's vertical, issue codes (code -> ``(family, aliases)``), profile defaults
    (a partial :class:`~recommender.profile.Profile`) and rule pack, as hook implementations."""

    def __init__(self, vertical: str, *, pack: str | Path,
                 issue_codes: Mapping[str, tuple[str, Iterable[str]]] | None = None,
                 profile: Mapping[str, Any] | None = None):
        self.vertical = vertical
        self.pack = Path(pack)
        self.issue_codes = {code: (family, tuple(aliases)) for code, (family, aliases) in (issue_codes or {}).items()}
        self.profile = dict(profile) if profile else None
        #: every code and alias of the trade
        self.issues = frozenset(name for code, (_, aliases) in self.issue_codes.items() for name in (code, *aliases))

    # -- scope --------------------------------------------------------------------------

    def serves(self, context: Any) -> bool:
        """This trade's interaction: the business is of our vertical, or (no vertical given: a
        ``PluginConfig`` selected the plugin for the business) the issue is one of ours."""
        vertical = context.business.vertical
        return vertical == self.vertical if vertical is not None else context.interaction.issue in self.issues

    def scope(self, context: Any, table: Mapping[str, T], default: T) -> T | None:
        """A scope marker (docs/plugins.md, per-business selection): ``table``'s entry for the
        issue when this is our trade's interaction (``default`` for an issue not in it at a
        business of our vertical), None for another trade's, so every rule that tests the
        marker stays silent there."""
        issue, vertical = context.interaction.issue, context.business.vertical
        if vertical is None:
            return table.get(issue)
        return table.get(issue, default) if vertical == self.vertical else None

    # -- the hooks (bind them to the module's recommender_* names) -----------------------

    @hookimpl
    def declare_verticals(self) -> list[str]:
        """The trade it serves: businesses of other verticals never see the plugin, unless a
        ``PluginConfig`` selects it for them."""
        return [self.vertical]

    @hookimpl
    def register_issue_codes(self, register: Callable[[Any], None]) -> None:
        """The trade's issue codes, each in its family."""
        for code, (family, aliases) in self.issue_codes.items():
            register({"code": code, "family": family, "aliases": list(aliases)})

    @hookimpl
    def business_profile(self, business: Any) -> dict[str, Any] | None:
        """The trade's scale; nothing for a business of another trade that a ``PluginConfig``
        gave the plugin too (its own trade's profile applies there)."""
        if self.profile is None or business.vertical not in (None, self.vertical):
            return None
        return dict(self.profile)

    @hookimpl
    def register_rule_packs(self, register: Callable[[Any], None]) -> None:
        """The trade's gestures and rules, from the YAML pack shipped inside the package (so
        errors point at its real file and line)."""
        register(self.pack)
