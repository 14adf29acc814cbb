"""The HTTP service: ``create_app(settings)`` builds the FastAPI app (``recommender serve`` runs it)."""

from __future__ import annotations

from .app import create_app, create_app_from_env
from .settings import ApiKeyEntry, Settings, hash_key

__all__ = ["create_app", "create_app_from_env", "Settings", "ApiKeyEntry", "hash_key"]
