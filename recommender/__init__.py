"""Rule-based service-action recommender: the gestures worth making now, ranked and explained."""

from __future__ import annotations

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
