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
]
