"""One error tree for everything a user can get wrong.

Every message names what is at fault: a ``file:line`` for rule packs, a field path for
contexts, the plugin and hook for plugins. The CLI prints ``str(err)`` with no traceback;
the HTTP service maps the tree to 4xx responses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

__all__ = [
    "RecommenderError",
    "RulePackError",
    "PackProblem",
    "sort_problems",
    "ContextError",
    "EngineError",
    "PluginError",
    "PluginLoadError",
]


class RecommenderError(Exception):
    """Root of every error this package raises on purpose."""


@dataclass(frozen=True)
class PackProblem:
    """One problem in a rule pack, located as precisely as the source allows."""

    path: str
    line: int | None
    field_path: str
    message: str
    #: machine-readable kind: "" or "duplicate" (the same id defined in two places)
    code: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        field = f" {self.field_path}:" if self.field_path else ""
        return f"{where}:{field} {self.message}"


def sort_problems(problems: Sequence[PackProblem]) -> list[PackProblem]:
    """Problems grouped by file (in the order files first appear), then by line."""
    order: dict[str, int] = {}
    for p in problems:
        order.setdefault(p.path, len(order))
    return sorted(problems, key=lambda p: (order[p.path], p.line or 0))


class RulePackError(RecommenderError):
    """A rule pack (or a set of packs) is invalid. Nothing of it was loaded.

    ``problems`` lists every problem found, each rendered as ``file:line: field: message``.
    """

    def __init__(self, problems: Sequence[PackProblem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ContextError(RecommenderError, ValueError):
    """An interaction context failed validation. ``errors`` holds ``(field_path, message)``."""

    def __init__(self, errors: Sequence[tuple[str, str]]):
        self.errors = list(errors)
        lines = [f"{path or '<context>'}: {msg}" for path, msg in self.errors]
        super().__init__("invalid context:\n  " + "\n  ".join(lines))

    @classmethod
    def from_pydantic(cls, exc: Any, prefix: str = "") -> "ContextError":
        errors = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"])
            if prefix:
                path = f"{prefix}.{path}" if path else prefix
            errors.append((path, err["msg"]))
        return cls(errors)


class EngineError(RecommenderError):
    """durable-rules refused a compiled ruleset or a fact: a bug in our compiler, never user input."""


class PluginError(RecommenderError):
    """A plugin failed inside a hook (raised only in strict mode; otherwise a warning)."""

    def __init__(self, plugin: str, hook: str, message: str):
        self.plugin, self.hook = plugin, hook
        super().__init__(f"plugin {plugin!r} failed in {hook}: {message}")


class PluginLoadError(RecommenderError):
    """A plugin could not be imported or registered."""

    def __init__(self, plugin: str, source: str, message: str):
        self.plugin, self.source = plugin, source
        super().__init__(f'Error importing plugin "{plugin}" ({source}): {message}')
