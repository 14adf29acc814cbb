"""Rule-based service-action recommender: the gestures worth making now, ranked and explained."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the public API, imported on first use (below) so start-up pays only for what it uses
    from .context import Business, Context, Customer, Interaction, Staff, parse_context
    from .core import Recommender, default_rules_dir
    from .errors import (
        ContextError,
        EngineError,
        PluginError,
        PluginLoadError,
        RecommenderError,
        RulePackError,
    )
    from .outcomes import OutcomeEvent
    from .packs import Gesture, Pack, Rule, load_pack, load_packs
    from .plugins import PluginConfig, hookimpl
    from .results import Explanation, Recommendation, RecommendationResult

#: Each public name and the module it lives in. ``import recommender`` imports none of them:
#: the first use of a name imports its module (``recommender --help`` and a warm
#: ``recommender recommend`` never import what they do not run).
_LAZY = {
    **dict.fromkeys(("Business", "Context", "Customer", "Interaction", "Staff", "parse_context"), "context"),
    **dict.fromkeys(("Recommender", "default_rules_dir"), "core"),
    **dict.fromkeys(("ContextError", "EngineError", "PluginError", "PluginLoadError", "RecommenderError",
                     "RulePackError"), "errors"),
    "OutcomeEvent": "outcomes",
    **dict.fromkeys(("Gesture", "Pack", "Rule", "load_pack", "load_packs"), "packs"),
    **dict.fromkeys(("PluginConfig", "hookimpl"), "plugins"),
    **dict.fromkeys(("Explanation", "Recommendation", "RecommendationResult"), "results"),
}


def __getattr__(name: str) -> Any:
    """A public name on first use (``_LAZY``), or a submodule (``recommender.core``)."""
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value  # later uses skip this function
        return value
    if not name.startswith("__"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"


def compiled_modules() -> list[str]:
    """The modules of this install that run as C extensions (a ``RECOMMENDER_COMPILE=1``
    build, see ``hatch_build.py``); empty when everything runs as pure Python."""
    from importlib.machinery import EXTENSION_SUFFIXES
    from importlib.util import find_spec
    from pkgutil import iter_modules

    found = []
    for info in iter_modules(__path__, __name__ + "."):
        spec = find_spec(info.name)
        if spec is not None and spec.origin and spec.origin.endswith(tuple(EXTENSION_SUFFIXES)):
            found.append(info.name)
    return sorted(found)

import logging as _logging

_logging.getLogger("recommender").addHandler(_logging.NullHandler())

__all__ = [
    "Recommender",
    "hookimpl",
    "PluginConfig",
    "OutcomeEvent",
    "Context",
    "Customer",
    "Interaction",
    "Staff",
    "Business",
    "parse_context",
    "default_rules_dir",
    "Gesture",
    "Rule",
    "Pack",
    "load_pack",
    "load_packs",
    "RecommendationResult",
    "Recommendation",
    "Explanation",
    "RecommenderError",
    "RulePackError",
    "ContextError",
    "EngineError",
    "PluginError",
    "PluginLoadError",
    "__version__",
    "compiled_modules",
]
