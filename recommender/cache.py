"""A cache of parsed and validated rule packs and of compiled rulesets, shared between processes.

Most of a cold start is reading pack files (YAML, parsed with every line number kept, then
validated) and compiling rules into durable-rules rulesets. Both
depend only on their input and on the code that makes them, so both are kept on disk:

* **a pack file**, parsed and validated (its :class:`~recommender.packs.Pack`), keyed by the
  SHA-256 of the file's bytes, its path and label, the caps in force (``pack_limits``) and
  the code (:func:`fingerprint`). Only a pack without problems is stored: a pack with
  problems is read afresh every time, so its problems are always reported.
* **compiled rulesets** (:func:`~recommender.compiler.compile_branches`' units: their JSON
  definitions and what each action reports), keyed by everything compiled (every test of
  every branch, in order, and what it reports), the compiler's limits and the code.

A changed pack file has another hash, so it is never served stale: the bytes hashed are the
bytes parsed. A plugin's packs are keyed by their content too (a plugin's version changes
nothing unless what it registers does; in-memory packs and gestures are validated afresh).
The engine's own state (durable-rules' C rulesets) cannot be stored: each process creates
its rulesets from the stored JSON definitions (one C call per ruleset of at most 256 rules).

Where: the folder ``RECOMMENDER_CACHE_DIR``, else the user's cache folder (``platformdirs``:
``~/.cache/recommender`` on Linux). ``RECOMMENDER_CACHE=0`` turns the cache off.

Safe to share between processes: an entry is written to a temporary file in the folder and
renamed into place (atomic), so a reader sees a whole entry or none; two processes writing
the same entry write the same bytes. Each entry starts with a format tag and the SHA-256 of
the rest; an entry that fails either check, or fails to load, is ignored, removed and
rebuilt. Entries are pickles, so the folder must belong to the user and not be writable by
anyone else; otherwise the cache is off (with a warning). Past :data:`MAX_BYTES` of entries
the least recently used are removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from .compiler import LIMITS, Unit, compile_branches

if TYPE_CHECKING:
    from .conditions import Atom
    from .packs import Pack

__all__ = ["Cache", "default", "fingerprint", "load_packs", "compile_units", "cache_dir", "MAX_BYTES"]

log = logging.getLogger("recommender.cache")

#: Bump when what is stored changes shape.
FORMAT = 1
_MAGIC = b"RECC%03d" % FORMAT  # 7 bytes + the digest
_DIGEST = 32
#: Entries kept, in bytes, before the least recently used are removed (to 3/4 of it).
MAX_BYTES = 256 * 1024 * 1024
#: Entries also kept in memory by a process (stored size), so a pack read by several
#: businesses' rulebooks is read from disk once.
MEMO_BYTES = 32 * 1024 * 1024


def cache_dir() -> Path:
    """The folder the cache uses (whether or not it is on)."""
    configured = os.environ.get("RECOMMENDER_CACHE_DIR", "").strip()
    if configured:
        return Path(configured).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("recommender", appauthor=False))


def _enabled() -> bool:
    return os.environ.get("RECOMMENDER_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


_FINGERPRINT: str | None = None


def fingerprint() -> str:
    """What the code that parses, validates and compiles packs is: this package's modules
    (name, size and modification time of each, so an edited module is a new fingerprint),
    its version, Python's, and the files of the libraries whose behaviour the results depend
    on (the YAML readers: ruamel and PyYAML's libyaml, pydantic-core, durable-rules). Worked out
    once per process."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        from importlib.util import find_spec

        from . import __version__

        h = hashlib.sha256(f"{FORMAT}|{__version__}|{sys.version}|{sys.platform}".encode())
        package = Path(__file__).resolve().parent
        with os.scandir(package) as entries:
            files = sorted((e.name, e.stat()) for e in entries if e.is_file() and not e.name.startswith("."))
        for name, st in files:
            h.update(f"{name}|{st.st_size}|{st.st_mtime_ns};".encode())
        for module in ("ruamel.yaml", "yaml", "pydantic_core._pydantic_core", "durable_rules_engine", "pydantic"):
            try:
                spec = find_spec(module)
                origin = spec.origin if spec is not None else None
                lib = f"{os.stat(origin).st_size}|{os.stat(origin).st_mtime_ns}" if origin else "-"
            except (ImportError, ValueError, OSError):
                lib = "-"
            h.update(f"{module}|{lib};".encode())
        _FINGERPRINT = h.hexdigest()
    return _FINGERPRINT


def _pack_limits() -> str:
    from . import pack_limits

    return repr([(name, getattr(pack_limits, name)) for name in pack_limits.__all__])


@dataclass
class Stats:
    hits: int = 0
    misses: int = 0
    writes: int = 0
    #: entries that failed their checks or failed to load (removed and rebuilt)
    bad: int = 0


class CachedUnit(Unit):
    """A compiled unit read back from the cache: its JSON definition as stored."""

    def __init__(self, name: str, definition_json: str, fields: list[tuple[str, str, str]], actions: dict[str, Any],
                 shared: dict[str, list[Any]]):
        super().__init__(name=name, definition={}, fields=fields, actions=actions, shared=shared)
        self._json = definition_json

    def definition_json(self) -> str:
        return self._json


class Cache:
    """Entries in one folder (see the module's docstring)."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.stats = Stats()
        self._usable: bool | None = None
        self._puts = 0
        self._lock = threading.Lock()
        self._memo: dict[tuple[str, str], Any] = {}
        self._memo_sizes: dict[tuple[str, str], int] = {}
        self._memo_bytes = 0

    # -- entries -----------------------------------------------------------------------

    def usable(self) -> bool:
        """Whether the folder exists (it is made if not), belongs to this user and is not
        writable by anyone else. Checked once."""
        if self._usable is None:
            with self._lock:
                if self._usable is None:
                    self._usable = self._check_dir()
        return self._usable

    def _check_dir(self) -> bool:
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.stat(self.dir)
        except OSError as exc:
            log.warning("rule cache off: cannot use %s (%s)", self.dir, exc)
            return False
        getuid = getattr(os, "getuid", None)
        if getuid is not None and (st.st_uid != getuid() or st.st_mode & 0o022):
            log.warning("rule cache off: %s must belong to this user and not be writable by others "
                        "(its entries are loaded as pickles)", self.dir)
            return False
        return True

    def _path(self, kind: str, key: str) -> Path:
        return self.dir / f"{kind}-{key}.bin"

    def get(self, kind: str, key: str) -> Any | None:
        """The entry, or None (absent, unreadable, damaged: a damaged one is removed). Entries
        read in this process are kept in memory too (up to :data:`MEMO_BYTES`): what is stored
        is never changed by its users (frozen packs, compiled definitions)."""
        if not self.usable():
            return None
        memo = self._memo.get((kind, key))
        if memo is not None:
            self.stats.hits += 1
            return memo
        path = self._path(kind, key)
        try:
            with open(path, "rb") as f:
                blob = f.read()
        except OSError:
            self.stats.misses += 1
            return None
        head = len(_MAGIC) + _DIGEST
        view = memoryview(blob)
        if blob[:len(_MAGIC)] != _MAGIC or hashlib.sha256(view[head:]).digest() != blob[len(_MAGIC):head]:
            return self._bad(path, "checksum")
        try:
            value = pickle.loads(view[head:])
        except Exception as exc:  # written by another version of a class, truncated, ...
            return self._bad(path, f"{type(exc).__name__}: {exc}")
        self.stats.hits += 1
        try:
            os.utime(path)  # recently used: kept longest
        except OSError:
            pass
        self._remember(kind, key, value, len(blob))
        return value

    def _remember(self, kind: str, key: str, value: Any, size: int) -> None:
        with self._lock:
            if size > MEMO_BYTES // 4:
                return
            while self._memo_bytes + size > MEMO_BYTES and self._memo:
                old = next(iter(self._memo))
                self._memo_bytes -= self._memo_sizes.pop(old)
                del self._memo[old]
            self._memo[(kind, key)] = value
            self._memo_sizes[(kind, key)] = size
            self._memo_bytes += size

    def _bad(self, path: Path, why: str) -> Any:
        log.info("rule cache: ignoring %s (%s)", path.name, why)
        self.stats.bad += 1
        self.stats.misses += 1
        try:
            path.unlink()
        except OSError:
            pass
        return None

    def put(self, kind: str, key: str, value: Any) -> None:
        """Store an entry (atomically; a failure to write is logged, never raised)."""
        if not self.usable():
            return
        import tempfile  # only a process that writes pays for importing it

        tmp = None
        try:
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.dir)
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + hashlib.sha256(payload).digest())
                f.write(payload)
            os.replace(tmp, self._path(kind, key))
            tmp = None
            self.stats.writes += 1
            self._remember(kind, key, value, len(payload))
        except Exception as exc:  # a full disk, a read-only folder, an unpicklable value
            log.info("rule cache: not stored (%s: %s)", type(exc).__name__, exc)
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        self._puts += 1
        if self._puts % 32 == 1:
            self.prune()

    def prune(self, max_bytes: int | None = None) -> None:
        """Remove the least recently used entries past ``max_bytes`` (:data:`MAX_BYTES`), and
        temporary files left by writers that died."""
        limit = MAX_BYTES if max_bytes is None else max_bytes
        now = time.time()
        entries = []
        try:
            with os.scandir(self.dir) as it:
                for e in it:
                    try:
                        st = e.stat()
                    except OSError:
                        continue
                    if e.name.startswith(".tmp-"):
                        if now - st.st_mtime > 3600:
                            _unlink(e.path)
                    elif e.name.endswith(".bin"):
                        entries.append((st.st_mtime, st.st_size, e.path))
        except OSError:
            return
        total = sum(size for _, size, _ in entries)
        if total <= limit:
            return
        for _, size, path in sorted(entries):
            if total <= limit * 3 // 4:
                break
            _unlink(path)
            total -= size

    def clear(self) -> int:
        """Remove every entry; how many there were."""
        n = 0
        try:
            with os.scandir(self.dir) as it:
                for e in it:
                    if e.name.endswith(".bin") or e.name.startswith(".tmp-"):
                        n += e.name.endswith(".bin")
                        _unlink(e.path)
        except OSError:
            pass
        return n

    # -- what is cached ----------------------------------------------------------------

    def load_packs(self, paths: Iterable[str | Path], origin: str | None = None) -> list["Pack"]:
        """:func:`~recommender.pack_loading.load_packs`, each valid file read from the cache
        when its bytes are unchanged. Anything wrong with any file (unreadable, too large, not
        UTF-8, invalid YAML, problems) is left to the loader itself, so every problem is
        reported exactly as without the cache."""
        from . import pack_limits
        from .pack_loading import check_pack_data, pack_files
        from .pack_loading import load_packs as load_uncached

        paths = list(paths)
        files = pack_files(paths)
        if not files or not self.usable():
            return load_uncached(paths, origin)
        limits = _pack_limits()
        cap = pack_limits.MAX_PACK_BYTES
        packs: list[Pack] = []
        for f, name in files:
            label = f"{origin}:{name}" if origin else name
            try:
                with f.open("rb") as fh:
                    raw = fh.read(cap + 1)
            except OSError:
                return load_uncached(paths, origin)
            if len(raw) > cap:
                return load_uncached(paths, origin)
            h = hashlib.sha256(f"{fingerprint()}|{limits}|{f}|{label}|".encode())
            h.update(raw)
            key = h.hexdigest()
            pack = self.get("pack", key)
            if pack is None:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    return load_uncached(paths, origin)
                if not text.strip():
                    return load_uncached(paths, origin)
                from .errors import RulePackError
                from .pack_yaml import parse_pack_text

                try:
                    data = parse_pack_text(text, str(f))
                except RulePackError:
                    return load_uncached(paths, origin)
                pack, problems = check_pack_data(data, str(f), label)
                if problems:
                    return load_uncached(paths, origin)
                pack = _plain_pack(pack)
                self.put("pack", key, pack)
            packs.append(pack)
        return packs

    def compile_units(self, items: Iterable[tuple[Any, Sequence["Atom"]]], prefix: str = "u",
                      keep_order: bool = False) -> list[Unit]:
        """:func:`~recommender.compiler.compile_branches`, read from the cache when the same
        branches (tests and what they report, in order) were compiled before."""
        items = list(items)
        if not self.usable():
            return compile_branches(items, prefix, keep_order)
        h = hashlib.sha256(f"{fingerprint()}|{sorted(LIMITS.items())!r}|{prefix}|{keep_order}|".encode())
        h.update(repr([(payload, [(a.key, a.kind) for a in branch]) for payload, branch in items]).encode())
        key = h.hexdigest()
        stored = self.get("units", key)
        if stored is None:
            units = compile_branches(items, prefix, keep_order)
            self.put("units", key, [(u.name, u.definition_json(), u.fields, u.actions, u.shared) for u in units])
            return units
        return [CachedUnit(*u) for u in stored]


def _builtin(value: Any) -> Any:
    """``value`` as plain built-in types: the YAML reader's mappings, lists and scalars (which
    carry line and comment bookkeeping) as dict, list, str, int, float, bool."""
    if isinstance(value, dict):
        return {_builtin(k): _builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_builtin(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    return value


def _plain_pack(pack: "Pack") -> "Pack":
    """The pack with each rule's ``when`` (what its author wrote, kept for display) as plain
    built-ins: equal in value, and much lighter to store and to load than the YAML reader's
    objects (which carry every line and comment)."""
    rules = tuple(r.model_copy(update={"when": _builtin(r.when)}) for r in pack.rules)
    return pack.model_copy(update={"rules": rules})


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


_DEFAULT: tuple[tuple[str, str], Cache | None] | None = None


def default() -> Cache | None:
    """The cache the environment asks for (None: ``RECOMMENDER_CACHE=0``)."""
    global _DEFAULT
    env = (os.environ.get("RECOMMENDER_CACHE", ""), os.environ.get("RECOMMENDER_CACHE_DIR", ""))
    got = _DEFAULT
    if got is None or got[0] != env:
        got = _DEFAULT = (env, Cache(cache_dir()) if _enabled() else None)
    return got[1]


def load_packs(paths: Iterable[str | Path], origin: str | None = None) -> list["Pack"]:
    """:meth:`Cache.load_packs` on the default cache (the plain loader when it is off)."""
    cache = default()
    if cache is None:
        from .pack_loading import load_packs as load_uncached

        return load_uncached(paths, origin)
    return cache.load_packs(paths, origin)


def compile_units(items: Iterable[tuple[Any, Sequence["Atom"]]], prefix: str = "u",
                  keep_order: bool = False) -> list[Unit]:
    """:meth:`Cache.compile_units` on the default cache (plain compilation when it is off)."""
    cache = default()
    if cache is None:
        return compile_branches(items, prefix, keep_order)
    return cache.compile_units(items, prefix, keep_order)
