"""Service settings: defaults < config file (TOML/YAML/JSON) < ``RECOMMENDER_*`` env < arguments.

The config file is named by ``--config`` / ``RECOMMENDER_CONFIG``. Relative paths in it
(``rules``, ``plugins_dir``) are resolved against the file's folder, so a config file and
its packs can move together. Example (TOML)::

    rules = ["rules/"]
    store_url = "postgresql://svc@db/recommender"
    host = "0.0.0.0"
    port = 8080
    workers = 2

    [[api_keys]]          # used when no store is configured (auth = "auto" or "config")
    name = "pos-terminals"
    tenant = "acme"
    scopes = ["recommend", "outcome"]
    hash = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

Env vars: ``RECOMMENDER_RULES`` (paths separated by ``:`` or a JSON list),
``RECOMMENDER_PLUGINS_DIR``, ``RECOMMENDER_STORE_URL``, ``RECOMMENDER_STORE_POLICY``, ``RECOMMENDER_HOST``,
``RECOMMENDER_PORT``, ``RECOMMENDER_WORKERS``, ``RECOMMENDER_MAX_BODY_BYTES``,
``RECOMMENDER_AUTH``, ``RECOMMENDER_API_KEYS`` (a JSON list of key entries),
``RECOMMENDER_PROFILES`` (JSON), ``RECOMMENDER_FRAME_ANCESTORS`` (origins separated by
spaces, or a JSON list) and ``RECOMMENDER_PANEL_SECRET`` (the key panel tokens are signed with).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources import InitSettingsSource

from ..context import MAX_CONTEXT_BYTES
from ..learning import LearningConfig
from ..errors import RecommenderError

__all__ = ["Settings", "ApiKeyEntry", "ConfigFileError", "hash_key", "SCOPES", "Scope"]

Scope = Literal["recommend", "outcome", "approve", "admin"]
SCOPES: tuple[str, ...] = ("recommend", "outcome", "approve", "admin")
AuthMode = Literal["auto", "store", "config", "none"]
ENV_PREFIX = "RECOMMENDER_"


class ConfigFileError(RecommenderError):
    """The service config file cannot be read or parsed."""


def hash_key(plaintext: str) -> str:
    """The ``sha256:<hex>`` form of an API key, as written in a config file."""
    return "sha256:" + hashlib.sha256(plaintext.encode()).hexdigest()


class ApiKeyEntry(BaseModel):
    """An API key allowed by the config file (only its hash is stored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hash: Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
    tenant: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")]
    scopes: list[Scope] = Field(min_length=1)
    name: str = ""


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if not text.strip():
        raise ConfigFileError(f"config file {path}: the file is empty")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            from ruamel.yaml import YAML
            from ruamel.yaml.error import YAMLError

            try:
                data = YAML(typ="safe", pure=True).load(text)
            except YAMLError as exc:
                raise ValueError(str(exc)) from None
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigFileError(f"config file {path}: unknown format {suffix or '(none)'}; use .toml, .yaml or .json")
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigFileError(f"config file {path}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"config file {path}: the top level must be a table/mapping")
    base = path.resolve().parent
    if isinstance(data.get("rules"), (list, str)):
        rules = data["rules"] if isinstance(data["rules"], list) else [data["rules"]]
        data["rules"] = [str(base / r) if isinstance(r, str) else r for r in rules]
    for key in ("plugins_dir", "store_policy"):
        if isinstance(data.get(key), str):
            data[key] = str(base / data[key])
    data.pop("config", None)
    return data


#: A frame ancestor: 'self', 'none', or an origin (scheme, host with an optional leading
#: ``*.`` wildcard, optional port), nothing that could end the header's directive.
_ANCESTOR = re.compile(r"'self'|'none'|https?://(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})(?::[0-9]{1,5})?")


def _split_ancestors(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        return json.loads(text) if text.startswith("[") else text.replace(",", " ").split()
    return value


def _split_paths(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            return json.loads(text)
        return [p for p in text.split(os.pathsep) if p]
    return value


class Settings(BaseSettings):
    """Everything ``recommender serve`` can be told."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    config: Path | None = Field(default=None, description="The config file this was read from.")
    rules: Annotated[list[Path], NoDecode] = Field(default_factory=list,
                                                   description="Rule pack files or folders; empty: the shipped packs.")
    plugins_dir: Path | None = None
    autoload_plugins: bool = Field(default=True, description="Load plugins installed as entry points.")
    plugins: dict[str, Any] | None = Field(default=None, description=(
        "Which plugins apply to which business: {businesses: {id: [names]}, verticals: {...}, default: [...]}"))
    profiles: dict[str, dict[str, Any]] | None = Field(default=None, description=(
        "Business profiles by business id ('default' for every business): loyalty and value scales, "
        "money limits, extras rate, listing caps (docs/advice.md); read at start"))
    store_url: str | None = Field(default=None, description="Memory store URL (e.g. postgresql://...); none: no memory.")
    store_policy: Path | None = Field(default=None, description="The store's policy file (contact rules, budgets).")
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    # Every body, not only contexts; a context is held to MAX_CONTEXT_BYTES even if this is larger.
    max_body_bytes: Annotated[int, Field(ge=1024, le=100_000_000)] = MAX_CONTEXT_BYTES
    auth: AuthMode = Field(default="auto", description=(
        "auto: the store's API keys when a store is configured, else the config file's; "
        "none: no authentication (development only)."))
    api_keys: list[ApiKeyEntry] = Field(default_factory=list)
    key_cache_seconds: Annotated[float, Field(ge=0, le=3600)] = 5.0
    max_extras: Annotated[int, Field(ge=0, le=100)] | None = None
    learning: bool = Field(default=True, description=(
        "Rank by what outcomes taught (with a store; docs/learning.md); false: by the rules alone."))
    learning_model: LearningConfig | None = Field(default=None, description=(
        "The learning model: segments, half_life_days, min_evidence, prior_strength (docs/learning.md); "
        "the same on every server sharing the store."))
    plugin_timeout: Annotated[float, Field(ge=0, le=60)] = Field(default=0.5, description=(
        "Seconds a plugin's enrich/adjust hook may take; a request's hooks then run on a worker thread "
        "(one thread hand-off per request). 0: call hooks inline, with no time limit (trusted plugins)."))
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    frame_ancestors: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["'self'"], description=(
        "Who may show the agent console in a frame (the help-desk tools that embed it): 'self', "
        "'none', or origins such as https://helpdesk.example.com or https://*.example.com."))
    panel_secret: SecretStr | None = Field(default=None, description=(
        "The key panel tokens are signed with (HMAC-SHA256; at least 32 characters). Give every worker and "
        "server the same one; unset: a random key per process (tokens then work only on the process that "
        "minted them)."), min_length=32)

    @field_validator("rules", mode="before")
    @classmethod
    def _rules(cls, v: Any) -> Any:
        return _split_paths(v)

    @field_validator("frame_ancestors", mode="before")
    @classmethod
    def _ancestors_in(cls, v: Any) -> Any:
        return _split_ancestors(v)

    @field_validator("frame_ancestors")
    @classmethod
    def _ancestors(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one: 'self', 'none', or an origin such as https://helpdesk.example.com")
        for entry in v:
            if not _ANCESTOR.fullmatch(entry):
                raise ValueError(f"{entry[:100]!r} is not 'self', 'none' or an origin such as "
                                 "https://helpdesk.example.com (a scheme, a host, an optional port)")
        if "'none'" in v and len(v) > 1:
            raise ValueError("'none' cannot be combined with other frame ancestors")
        return list(dict.fromkeys(v))

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, v: Any) -> Any:
        return json.loads(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _auth_mode(self) -> "Settings":
        if self.auth == "store" and not self.store_url:
            raise ValueError("auth = 'store' needs a store_url")
        return self

    @property
    def effective_auth(self) -> Literal["store", "config", "none"]:
        if self.auth == "auto":
            return "store" if self.store_url else "config"
        return self.auth

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        init_kwargs = getattr(init_settings, "init_kwargs", {}) or {}
        path = init_kwargs.get("config") or os.environ.get(ENV_PREFIX + "CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path:
            data = _read_config_file(Path(path))
            data["config"] = str(path)
            sources.append(InitSettingsSource(settings_cls, init_kwargs=data))
        return tuple(sources)
