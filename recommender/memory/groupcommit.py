"""Group commit: decision-log writes from concurrent requests share one transaction.

Every ``recommend()`` with a store logs its decision. One transaction (and one COMMIT, a
WAL flush on PostgreSQL, an fsync on SQLite) per decision costs more than the rest of the
store's work, and while one commit waits on the disk the next requests are ready to log
theirs. So a request hands its rows to :class:`GroupCommit` and waits: the first waiting
request leads, writing everything queued by then in one transaction (each table's rows in
one ``executemany``); requests arriving meanwhile queue for the next batch, whose first
request leads in turn.

* Each request still returns only after the transaction holding its rows committed, so an
  acknowledged decision is durable.
* A batch that fails is rolled back whole, then each of its requests is written alone in a
  transaction of its own: the error reaches only the request whose rows failed, the others
  are stored as usual. Nothing stored before is touched.
* A batch whose COMMIT failed (the connection lost half-way, the outcome unknown) is not
  written again: every request of it gets the error, as a lone write would.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

__all__ = ["GroupCommit", "MAX_BATCH"]

I = TypeVar("I")

#: Requests written in one transaction at most (the rest wait for the next one).
MAX_BATCH = 256


class _Waiter(Generic[I]):
    __slots__ = ("item", "ready", "lead", "error")

    def __init__(self, item: I) -> None:
        self.item = item
        self.ready = threading.Event()
        self.lead = False  # set with ``ready`` when this request is to lead the next batch
        self.error: BaseException | None = None


class GroupCommit(Generic[I]):
    """Runs ``write(items)`` (one transaction, committed on return) for batches of items
    submitted by concurrent threads; :meth:`submit` returns once its item's batch committed."""

    def __init__(self, write: Callable[[list[I]], None], max_batch: int = MAX_BATCH) -> None:
        self._write = write
        self._max = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Waiter[I]] = []
        self._busy = False  # a leader is writing (or has been chosen)
        #: transactions run (batches and lone retries): a batch shows as fewer than its items
        self.transactions = 0

    def submit(self, item: I) -> None:
        """Write ``item`` with whatever else is queued; raise the error its write met."""
        me: _Waiter[I] = _Waiter(item)
        with self._lock:
            self._queue.append(me)
            lead = not self._busy
            self._busy = True
        if not lead:
            me.ready.wait()
            if not me.lead:
                if me.error is not None:
                    raise me.error
                return
        self._lead(me)
        if me.error is not None:
            raise me.error

    def _lead(self, me: _Waiter[I]) -> None:
        with self._lock:
            batch, self._queue = self._queue[:self._max], self._queue[self._max:]
        assert me in batch  # the leader is the oldest waiter
        try:
            self._run(batch)
        finally:
            with self._lock:
                nxt = self._queue[0] if self._queue else None
                if nxt is None:
                    self._busy = False
            for w in batch:
                if w is not me:
                    w.ready.set()
            if nxt is not None:
                nxt.lead = True
                nxt.ready.set()

    def _run(self, batch: list[_Waiter[I]]) -> None:
        try:
            self.transactions += 1
            self._write([w.item for w in batch])
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the requests it concerns
            if len(batch) == 1 or getattr(exc, "_recommender_at_commit", False) or not isinstance(exc, Exception):
                for w in batch:
                    w.error = exc
                return
        for w in batch:  # the batch rolled back: each alone, so an error reaches only its own request
            try:
                self.transactions += 1
                self._write([w.item])
            except Exception as exc:  # noqa: BLE001 - re-raised in the request's own thread
                w.error = exc
