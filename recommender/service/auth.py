"""API keys: who is calling, for which tenant, with which scopes.

A key travels as ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``. It is checked by
one of three verifiers: the memory store's :class:`~recommender.memory.keys.KeyStore`
(when a store is configured), the hashed ``api_keys`` of the config file (so the service
runs without a database), or none at all (``--no-auth``, development only).

Missing or unknown key: 401. A key without the scope an endpoint needs, or for another
tenant than the one the request is about: 403.

**Panel tokens** let a help-desk tool show the agent console's side panel without putting an
API key in a browser: the tool's backend mints a short-lived token with its key
(``POST /v1/panel-tokens``), the panel sends it as ``Authorization: Bearer <token>``. A token is
``pt1.<payload>.<signature>``: the payload (tenant, scopes, expiry, the agent's name, the
minting key) in base64url JSON, signed with HMAC-SHA256 under the server's ``panel_secret``.
It never carries more scopes than the key that minted it, never ``admin``, and lives at most
:data:`MAX_TOKEN_SECONDS`. An expired token is 401 ``token_expired``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol

from .settings import SCOPES, ApiKeyEntry

__all__ = ["Principal", "Verifier", "ConfigKeys", "StoreKeys", "NoAuth", "extract_key", "AuthError", "PanelTokens",
           "WithPanelTokens", "TOKEN_PREFIX", "MAX_TOKEN_SECONDS", "TOKEN_SCOPES"]

#: What every panel token starts with (API keys start with ``rk_``).
TOKEN_PREFIX = "pt1."
#: The longest a panel token lives, and its default life.
MAX_TOKEN_SECONDS = 3600
DEFAULT_TOKEN_SECONDS = 900
MAX_TOKEN_LENGTH = 500
#: The scopes a panel token may carry (a subset of the minting key's): never admin.
TOKEN_SCOPES = ("recommend", "outcome", "approve")


@dataclass(frozen=True)
class Principal:
    """The caller: ``tenant`` None means any tenant (no-auth mode)."""

    key_id: str
    tenant: str | None
    scopes: frozenset[str]
    name: str = ""

    def can(self, scope: str) -> bool:
        """``admin`` allows everything (as in the memory store's KeyStore)."""
        return scope in self.scopes or "admin" in self.scopes

    def tenant_for(self, requested: str | None) -> str | None:
        """The tenant a request acts for, or raise :class:`AuthError` (403) if not allowed."""
        if self.tenant is None:
            return requested
        if requested is not None and requested != self.tenant:
            raise AuthError(403, "forbidden_tenant",
                            f"this API key belongs to tenant {self.tenant!r}, not {requested!r}")
        return self.tenant


class AuthError(Exception):
    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message
        super().__init__(message)


class Verifier(Protocol):
    #: True when verify() may block (database I/O): the service then calls it off the event loop.
    blocking: bool

    def verify(self, plaintext: str) -> Principal | None: ...


def extract_key(headers: Any) -> str | None:
    """The API key of a request (``X-API-Key`` first, then ``Authorization: Bearer``)."""
    key = headers.get("x-api-key")
    if key:
        return key.strip() or None
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


class NoAuth:
    """Development mode: every request may do everything, for any tenant."""

    blocking = False
    _all = Principal("anonymous", None, frozenset(SCOPES), "no-auth")

    def verify(self, plaintext: str | None) -> Principal:
        return self._all


class ConfigKeys:
    """Keys listed (hashed) in the config file."""

    blocking = False

    def __init__(self, entries: Iterable[ApiKeyEntry]):
        self._by_hash: dict[str, Principal] = {}
        for i, e in enumerate(entries):
            digest = e.hash.split(":", 1)[1]
            self._by_hash[digest] = Principal(f"config:{e.name or i}", e.tenant, frozenset(e.scopes), e.name)

    def __len__(self) -> int:
        return len(self._by_hash)

    def verify(self, plaintext: str) -> Principal | None:
        digest = hashlib.sha256(plaintext.encode()).hexdigest()
        # a lookup by the key's hash: timing reveals nothing about a stored key
        return self._by_hash.get(digest)


class StoreKeys:
    """Keys from the memory store's KeyStore, with a short cache of verified keys.

    A revoked key stops working within ``ttl`` seconds (in every worker); unknown keys
    are not cached, so a newly created key works at once.
    """

    blocking = True

    def __init__(self, keystore: Any, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self._keys = keystore
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def cached(self, plaintext: str) -> Principal | None:
        """A still-fresh verified principal for this key, without I/O (None if unknown or stale)."""
        if self._ttl <= 0:
            return None
        digest = hashlib.sha256(plaintext.encode()).hexdigest()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        return None

    def verify(self, plaintext: str) -> Principal | None:
        hit = self.cached(plaintext)
        if hit is not None:
            return hit
        info = self._keys.verify(plaintext)
        if info is None or getattr(info, "revoked_at", None) is not None:
            return None
        principal = Principal(str(info.id), info.tenant, frozenset(info.scopes), getattr(info, "name", "") or "")
        if self._ttl > 0:
            digest = hashlib.sha256(plaintext.encode()).hexdigest()
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (self._clock() + self._ttl, principal)
        return principal

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PanelTokens:
    """Mints and checks panel tokens: HMAC-SHA256 over the payload under ``secret``."""

    def __init__(self, secret: bytes | str | None = None, clock: Callable[[], float] = time.time):
        if secret is None:
            secret = secrets.token_bytes(32)
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self._clock = clock

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, (TOKEN_PREFIX + body).encode("ascii"), hashlib.sha256).digest())

    def mint(self, *, tenant: str | None, scopes: Iterable[str], seconds: int, agent: str,
             key_id: str) -> tuple[str, int]:
        """A token for ``tenant`` with ``scopes``, valid for ``seconds``; returns it and its expiry (Unix time)."""
        expires = int(self._clock()) + max(1, min(int(seconds), MAX_TOKEN_SECONDS))
        while True:  # a token fits where an API key does (512 characters): a long name is shortened
            payload = {"t": tenant, "s": sorted(set(scopes)), "e": expires, "a": agent, "k": key_id}
            body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
            token = f"{TOKEN_PREFIX}{body}.{self._sign(body)}"
            if len(token) <= MAX_TOKEN_LENGTH or not agent:
                return token, expires
            agent = agent[:-8]

    def verify(self, token: str) -> Principal:
        """The principal a token stands for; :class:`AuthError` 401 when forged, malformed or expired."""
        body, _, signature = token[len(TOKEN_PREFIX):].partition(".")
        if not body or not signature or not hmac.compare_digest(signature, self._sign(body)):
            raise AuthError(401, "unauthorized", "invalid panel token: sign in again from your help-desk tool")
        try:
            payload = json.loads(_unb64(body))
            tenant, scopes, expires = payload["t"], payload["s"], int(payload["e"])
            agent, key_id = str(payload.get("a") or ""), str(payload.get("k") or "")
        except (ValueError, KeyError, TypeError):
            raise AuthError(401, "unauthorized",
                            "invalid panel token: sign in again from your help-desk tool") from None
        if expires <= self._clock():
            raise AuthError(401, "token_expired",
                            "this panel token has expired: reopen the panel from your help-desk tool to sign in again")
        allowed = frozenset(s for s in scopes if s in TOKEN_SCOPES)
        return Principal(f"panel:{key_id}", tenant, allowed, agent or f"panel:{key_id}")


class WithPanelTokens:
    """A verifier that takes panel tokens as well as the keys ``inner`` knows.

    A token is checked without I/O (``cached`` answers it, so the service never hands it to a
    thread); anything else goes to ``inner``.
    """

    def __init__(self, inner: Verifier, tokens: PanelTokens):
        self.inner = inner
        self.tokens = tokens
        self.blocking = inner.blocking

    def cached(self, plaintext: str) -> Principal | None:
        if plaintext.startswith(TOKEN_PREFIX):
            return self.tokens.verify(plaintext)
        cached = getattr(self.inner, "cached", None)
        return cached(plaintext) if cached is not None else None

    def verify(self, plaintext: str) -> Principal | None:
        if plaintext.startswith(TOKEN_PREFIX):
            return self.tokens.verify(plaintext)
        return self.inner.verify(plaintext)

    def forget(self) -> None:
        forget = getattr(self.inner, "forget", None)
        if forget is not None:
            forget()
