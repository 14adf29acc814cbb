"""The backtest engine: history rows through one or two rule sets, in-process or on Dask.

The history is cut into chunks of rows; :func:`process_chunk` decodes, validates and
recommends each row of a chunk and returns a :class:`~recommender.backtest.report.Partial`
(counts and integer cents). In-process, chunks run one after another; with Dask
(``workers=N`` for a local cluster of processes, or ``scheduler="tcp://host:8786"``) they
run on the workers, each of which builds its own :class:`Recommender` from the same rule
*paths* (a :class:`RuleSet` is a picklable description, never the object). Partials merge
in any order to the same totals, so every engine gives the same report.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..context import parse_context
from ..errors import ContextError, RecommenderError
from .decisions import ReplayMemory, replay_context
from .io import RowError, Source, decode, iter_raw
from .tally import DiffTally, Partial, Tally, negative_reasons, segments_of, to_cents

__all__ = ["RuleSet", "BacktestError", "process_chunk", "run_history", "replay_decisions", "ReplayTally",
           "recommender_for", "chunked"]

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
IN_PROCESS_CHUNK = 250
DASK_CHUNK = 2000


class BacktestError(RecommenderError):
    """A backtest could not run (a worker failed, a scheduler is unreachable, rule sets differ)."""

    def __init__(self, message: str):
        super().__init__(message)


@dataclass(frozen=True)
class RuleSet:
    """How to build a :class:`Recommender`: rule pack paths (None: the shipped packs) and plugins.

    ``version`` is the rulebook version the driver built; a worker whose files give a
    different version refuses to run (its copy of the rule files differs).
    """

    paths: tuple[str, ...] | None = None
    plugins_dir: str | None = None
    autoload: bool = True
    version: str | None = None

    @classmethod
    def of(cls, paths: Sequence[str | Path] | None, plugins_dir: str | Path | None = None,
           autoload: bool = True) -> "RuleSet":
        return cls(tuple(str(Path(p).resolve()) for p in paths) if paths else None,
                   str(Path(plugins_dir).resolve()) if plugins_dir is not None else None, autoload)

    @property
    def label(self) -> str:
        return "shipped packs" if self.paths is None else ", ".join(Path(p).name for p in self.paths)

    def build(self) -> Any:
        from ..core import Recommender

        kwargs: dict[str, Any] = {"autoload": self.autoload}
        if self.plugins_dir is not None:
            kwargs["plugins_dir"] = self.plugins_dir
        return Recommender(list(self.paths) if self.paths is not None else None, **kwargs)

    def pinned(self) -> "RuleSet":
        """Build here (validating the packs) and return a copy that carries the version."""
        rec = recommender_for(self)
        pinned = RuleSet(self.paths, self.plugins_dir, self.autoload, rec.ruleset_version)
        with _lock:
            _cache[pinned] = rec
        return pinned


_cache: dict[RuleSet, Any] = {}
_lock = threading.Lock()


def recommender_for(rs: RuleSet) -> Any:
    """One Recommender per rule set and process (a Dask worker builds it on its first chunk)."""
    rec = _cache.get(rs)
    if rec is not None:
        return rec
    with _lock:
        rec = _cache.get(rs)
        if rec is None:
            try:
                rec = rs.build()
            except RecommenderError as exc:
                raise BacktestError(str(exc)) from None
            if rs.version is not None and rec.ruleset_version != rs.version:
                raise BacktestError(
                    f"rule set {rs.label} has version {rec.ruleset_version} here but {rs.version} where the "
                    "backtest started: the rule files or installed plugins differ between machines")
            _cache[rs] = rec
    return rec


def _utc(when: datetime) -> datetime:
    return when.astimezone(timezone.utc) if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _batch() -> Callable[..., list[Any]] | None:
    """``recommender.batch.recommend_many`` when this build has it (same results, cheaper)."""
    global _recommend_many
    if _recommend_many is None:
        try:
            from ..batch import recommend_many
        except ImportError:
            _recommend_many = False
        else:
            _recommend_many = recommend_many
    return _recommend_many or None


_recommend_many: Any = None


def _recommend_all(rec: Any, ctxs: list[Any]) -> list[Any]:
    """One result per context, or the error text for a context the engine refused."""
    many = _batch()
    if many is not None and ctxs:
        try:
            return list(many(rec, ctxs))
        except RecommenderError:
            pass  # find the row at fault one by one below
    out: list[Any] = []
    for ctx in ctxs:
        try:
            out.append(rec.recommend(ctx))
        except RecommenderError as exc:
            out.append(f"recommend failed: {' '.join(str(exc).split())}")
    return out


def process_chunk(rows: list[tuple[int, Any]], source: Source, rulesets: tuple[RuleSet, ...]) -> Partial:
    """Decode, validate and recommend each row with every rule set; count the results."""
    recs = [recommender_for(rs) for rs in rulesets]
    part = Partial(tallies=[Tally() for _ in rulesets], diff=DiffTally() if len(rulesets) == 2 else None)
    valid: list[tuple[int, Any]] = []
    for line, raw in rows:
        part.rows_read += 1
        try:
            data, _ = decode(raw, source)
            valid.append((line, parse_context(data)))
        except RowError as exc:
            part.bad.append((line, str(exc)))
        except ContextError as exc:
            part.bad.append((line, "; ".join(f"{path or '<context>'}: {msg}" for path, msg in exc.errors)))
    ctxs = [ctx for _, ctx in valid]
    per_set = [_recommend_all(rec, ctxs) for rec in recs]
    for i, (line, ctx) in enumerate(valid):
        results = [res[i] for res in per_set]
        failed = next((r for r in results if isinstance(r, str)), None)
        if failed is not None:
            part.bad.append((line, failed))
            continue
        if ctx.interaction.occurred_at is not None:
            part.see_time(_utc(ctx.interaction.occurred_at))
        segs = segments_of(ctx)
        reasons = negative_reasons(results[0].assessment)
        fired = [t.add(res, segs, reasons)[0] for t, res in zip(part.tallies, results, strict=True)]
        if part.diff is not None:
            part.diff.add(fired[0], fired[1])
    return part


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class EngineInfo:
    engine: str
    workers: int
    seconds: float = 0.0


def run_history(source: Source, rulesets: Sequence[RuleSet], *, workers: int | None = None,
                scheduler: str | None = None, chunk_size: int | None = None,
                progress: Progress | None = None, connect_timeout: float = 10.0) -> tuple[Partial, EngineInfo]:
    """Run the history through the rule sets; return the merged partial and how it ran.

    ``workers``: a local Dask cluster of that many worker processes. ``scheduler``: an
    existing Dask scheduler's address. Neither: in-process.
    """
    sets = tuple(rs if rs.version is not None else rs.pinned() for rs in rulesets)
    start = time.perf_counter()
    if workers is None and scheduler is None:
        info = EngineInfo("in-process", 1)
        total = Partial(tallies=[Tally() for _ in sets], diff=DiffTally() if len(sets) == 2 else None)
        for chunk in chunked(iter_raw(source), chunk_size or IN_PROCESS_CHUNK):
            total.merge(process_chunk(chunk, source, sets))
            if progress:
                progress(len(chunk))
    else:
        total, info = _run_dask(source, sets, workers, scheduler, chunk_size or DASK_CHUNK, progress,
                                connect_timeout)
    info.seconds = time.perf_counter() - start
    return total, info


def _run_dask(source: Source, sets: tuple[RuleSet, ...], workers: int | None, scheduler: str | None,
              chunk_size: int, progress: Progress | None, connect_timeout: float) -> tuple[Partial, EngineInfo]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ModuleNotFoundError as exc:  # depends on the install
        if (exc.name or "").split(".")[0] not in ("distributed", "dask"):
            raise
        from ..optional import MissingExtra

        raise MissingExtra("a backtest on Dask (--workers, --dask)", "distributed") from None

    cluster = None
    try:
        if scheduler is not None:
            try:
                client = Client(scheduler, timeout=connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise BacktestError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
            info = EngineInfo(f"dask {scheduler}", 0)
        else:
            n = max(1, int(workers or 1))
            try:
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       silence_logs=logging.ERROR)
                client = Client(cluster, timeout=connect_timeout)
            except Exception as exc:  # noqa: BLE001 - any failure to start is reported as one line
                raise BacktestError(f"cannot start a local Dask cluster of {n} workers: "
                                    f"{type(exc).__name__}: {exc}") from None
            info = EngineInfo(f"dask local cluster ({n} worker processes)", n)
    except BacktestError:
        if cluster is not None:
            cluster.close()
        raise
    try:
        nthreads = sum(client.nthreads().values())
        if scheduler is not None:
            info.workers = len(client.nthreads())
            if not nthreads:
                raise BacktestError(f"the Dask scheduler at {scheduler} has no workers")
        slots = max(2, 2 * nthreads)
        total = Partial(tallies=[Tally() for _ in sets], diff=DiffTally() if len(sets) == 2 else None)
        pending = as_completed()
        inflight = 0

        def collect_one() -> None:
            nonlocal inflight
            fut = next(pending)
            try:
                part = fut.result()
            except Exception as exc:  # a worker's error, a killed worker, a lost connection
                raise BacktestError(f"a Dask worker failed: {type(exc).__name__}: {exc}") from None
            total.merge(part)
            inflight -= 1
            if progress:
                progress(part.rows_read)

        for chunk in chunked(iter_raw(source), chunk_size):
            pending.add(client.submit(process_chunk, chunk, source, sets, pure=False))
            inflight += 1
            while inflight >= slots:
                collect_one()
        while inflight:
            collect_one()
        return total, info
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# -- replaying the decision log ---------------------------------------------------------


@dataclass
class ReplayTally:
    decisions: int = 0
    replayed: int = 0
    no_context: int = 0
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (decision id, reason)
    changed: int = 0
    reordered: int = 0
    cents_before: int = 0
    cents_after: int = 0
    gained: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    gaining: list[tuple[str | None, str, str]] = field(default_factory=list)  # (customer, decision, gesture)
    losing: list[tuple[str | None, str, str]] = field(default_factory=list)
    stored_versions: dict[str, int] = field(default_factory=dict)
    new_versions: dict[str, int] = field(default_factory=dict)


def replay_decisions(decisions: Iterable[Any], ruleset: RuleSet, progress: Progress | None = None) -> ReplayTally:
    """Recommend each logged decision's context again with ``ruleset`` (a what-if: nothing is logged).

    A decision *changes* when the set of recommended gestures differs from the logged one.
    Each replay runs through a :class:`~recommender.backtest.decisions.ReplayMemory`: the holds
    the store's screening logged with the decision (contact policy, goodwill cap, budgets,
    authority limits, abuse review) are applied before ranking, exactly as when the decision
    was made, so with unchanged rules nothing changes.
    """
    rec = recommender_for(ruleset if ruleset.version is not None else ruleset.pinned())
    t = ReplayTally()
    for d in decisions:
        t.decisions += 1
        if progress:
            progress(1)
        version = getattr(d, "ruleset_version", "") or "?"
        t.stored_versions[version] = t.stored_versions.get(version, 0) + 1
        context = replay_context(d)
        if context is None:
            t.no_context += 1
            continue
        try:
            result = rec.recommend(context, store=ReplayMemory(d))
        except ContextError as exc:
            t.invalid.append((d.id, "; ".join(f"{p or '<context>'}: {m}" for p, m in exc.errors)))
            continue
        t.replayed += 1
        t.new_versions[result.ruleset_version] = t.new_versions.get(result.ruleset_version, 0) + 1
        before = list(d.gestures)
        after = [r.gesture_id for r in result.recommendations]
        costs = getattr(d, "costs", None) or {}
        if costs:
            t.cents_before += sum(to_cents(c) for c in costs.values() if c is not None)
        else:
            t.cents_before += to_cents(d.cost_total or 0.0)
        t.cents_after += sum(to_cents(r.cost) for r in result.recommendations if r.cost is not None)
        sb, sa = set(before), set(after)
        if sb != sa:
            t.changed += 1
            for g in sorted(sa - sb):
                t.gained[g] = t.gained.get(g, 0) + 1
                t.gaining.append((d.customer_id, d.id, g))
            for g in sorted(sb - sa):
                t.lost[g] = t.lost.get(g, 0) + 1
                t.losing.append((d.customer_id, d.id, g))
        elif before != after:
            t.reordered += 1
    return t


def backtest(history: str | Path, rules: Sequence[str | Path] | None = None, *,
             compare: Sequence[str | Path] | None = None, mapping: str | Path | None = None,
             plugins_dir: str | Path | None = None, autoload: bool = True, workers: int | None = None,
             scheduler: str | None = None, chunk_size: int | None = None,
             progress: Progress | None = None) -> Any:
    """Backtest a history file; return a :class:`~recommender.backtest.report.BacktestReport`.

    Raises :class:`~recommender.backtest.io.HistoryInputError` for an unusable file or
    mapping (before any work), :class:`RecommenderError` for invalid rule packs.
    """
    from .io import open_source
    from .report import Timing, build_report

    source = open_source(history, mapping)
    sets = [RuleSet.of(rules, plugins_dir, autoload).pinned()]
    if compare:
        sets.append(RuleSet.of(compare, plugins_dir, autoload).pinned())
    partial, info = run_history(source, sets, workers=workers, scheduler=scheduler, chunk_size=chunk_size,
                                progress=progress)
    labels = [rs.label for rs in sets]
    timing = Timing(engine=info.engine, workers=info.workers, seconds=round(info.seconds, 3),
                    rows_per_second=round(partial.rows_read / info.seconds, 1) if info.seconds > 0 else None)
    return build_report(partial, history=str(history), fmt=source.format,
                        mapping=source.mapping.source if source.mapping and mapping is not None else None,
                        labels=labels, rules=[list(rs.paths or []) for rs in sets], timing=timing)
