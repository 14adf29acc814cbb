"""Registers the core rule packs (the shipped ones, or the paths a user gave)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from ..plugins import hookimpl


class CorePacks:
    """The packs every business gets: ``rules/`` by default, or ``Recommender(rules=...)``."""

    __name__ = "core_packs"

    def __init__(self, paths: Sequence[Path], packs: Sequence[Any] = ()) -> None:
        self.paths = list(paths)
        self.packs = list(packs)

    @hookimpl(trylast=True)
    def recommender_register_rule_packs(self, register: Callable[[Any], None]) -> None:
        for path in self.paths:
            register(path)
        for pack in self.packs:
            register(pack)
