"""Optional features and the extras that bring them.

A feature used without its extra raises :class:`MissingExtra` (a ``ModuleNotFoundError``
that names the extra), and the ``recommender`` command turns it, or any
``ModuleNotFoundError`` of a module listed in :data:`EXTRAS`, into one line and exit 2::

    error: recommender serve needs the 'server' extra: pip install 'service-recommender[server]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "DISTRIBUTION", "MissingExtra", "require", "extra_for", "hint"]

#: The distribution the extras belong to.
DISTRIBUTION = "service-recommender"
#: Top-level module -> the extra that installs it (pyproject.toml's optional-dependencies).
EXTRAS: dict[str, str] = {
    "fastapi": "server",
    "fastapi_offline": "server",
    "uvicorn": "server",
    "pydantic_settings": "server",
    "prometheus_client": "server",
    "httpx": "client",
    "psycopg": "postgres",
    "psycopg_binary": "postgres",
    "dask": "dask",
    "distributed": "dask",
    "zen": "bench",
    "rule_engine": "bench",
}


def extra_for(module: str | None) -> str | None:
    """The extra that brings ``module`` (a dotted name is looked up by its top level)."""
    return EXTRAS.get((module or "").split(".")[0])


def hint(feature: str, module: str) -> str:
    """``FEATURE needs the 'EXTRA' extra: pip install '...[EXTRA]'`` (or a plain install hint
    for a module no extra brings)."""
    extra = extra_for(module)
    if extra is None:
        return f"{feature} needs the Python package {module!r}, which is not installed"
    return f"{feature} needs the {extra!r} extra ({module} is not installed): pip install '{DISTRIBUTION}[{extra}]'"


class MissingExtra(ModuleNotFoundError):
    """An optional feature was used without the extra that brings it; ``extra`` names it."""

    def __init__(self, feature: str, module: str):
        self.feature = feature
        self.extra = extra_for(module)
        super().__init__(hint(feature, module), name=module)


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or raise :class:`MissingExtra` naming its extra."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] == module.split(".")[0]:
            raise MissingExtra(feature, module) from None
        raise
