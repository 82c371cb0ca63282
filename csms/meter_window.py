"""Meter values acknowledged before their commit, written within `ocpp.meter_commit_window`.

Issue 15 allows a meter value to be stored "before it is acknowledged or within the
group-commit window you document". With `ocpp.meter_commit_window` = W > 0 seconds the store
is wrapped in a `WindowedStore`: its `append_meter_values` puts the values in memory and returns
at once, and a flusher writes everything pending with ONE `append_meter_values` of the wrapped
store W seconds after the first value that found nothing pending (a value waits at most W plus
the writes' own time). Hand-rolled for measured speed: awaiting each MeterValues frame's own
group commit (a future, a hop to the SQLite thread and a wake-up back) was a large share of the
frame's cost (docs/performance.md, "Round four").
W = 0 (the default) wraps nothing: every value is stored before it is acknowledged.

What stays exact:
- Every transaction method and `list_meter_values` writes what is pending first, so
  billing, the operator API, the dashboard and the hub never read a stale register or miss a
  value, and a stop (1.6 StopTransaction, 2.0.1 Ended, a superseded transaction) is recorded
  after every value acknowledged before it.
- The in-memory transaction state billing listens to is the charging service's, as before.
- A failed write is logged and kept (in order, ahead of newer values) and retried: after n
  failures in a row the next try comes min(W * 2**n, RETRY_DELAY_CAP) seconds later, for as
  long as the process runs. Memory is bounded: while MAX_PENDING values wait, a new frame
  first waits for a write of everything pending, and gets the store's error if that fails
  (then it is not acknowledged, so the station sends it again; it is not kept either).
- Closing the store (shutdown, after the hub has closed every station) writes what is
  pending, STOP_ATTEMPTS tries; values still unwritten after that are logged at ERROR, each.

What a crash (kill -9, power loss) loses: the values acknowledged in the last W seconds, plus
the time of a write in flight. SQLite commits each write in one transaction: a value is stored
once or not at all. MongoDB inserts, then moves registers: a write that fails after its insert
is retried whole, so its values may be stored twice (as when a station resends a frame that
got that error without the window). In a cluster, other nodes read this node's values up to W
late while the transaction runs; its stop is recorded here, after they are written.

2.0.1 TransactionEvents keep their values: `record_event` reads the transaction, decides by its
stored seqNos whether the event is new, moves the register and stores the values in one atomic
write, and the answer and billing depend on that outcome. Deferring half of it would reopen the
crash gap `record_event` closed; deferring all of it would need those rules applied in memory and
kept across nodes. So a TransactionEvent stays stored before it is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from csms.background import stop_if_cancelled, wait_cancelled
from csms.domain import MeterValue, NewestEnergy, newest_energy
from csms.store import Store

log = logging.getLogger(__name__)

MAX_PENDING = 100_000  # values kept while the store fails (~25 MB); then frames wait for it
RETRY_DELAY_CAP = 5.0  # seconds: the longest wait between tries of a failing write
STOP_ATTEMPTS = 3  # tries to write what is pending when the store closes
STOP_RETRY_DELAY = 0.5  # seconds between them


class MeterWindow:
    """The buffer and its flusher (see the module docstring)."""

    def __init__(self, store: Store, window: float, *, max_pending: int = MAX_PENDING,
                 retry_delay_cap: float = RETRY_DELAY_CAP) -> None:
        self.store = store
        self.window = window
        self.max_pending = max_pending
        self.retry_delay_cap = max(retry_delay_cap, window)
        self.failures = 0  # failed writes in a row
        self._pending: list[MeterValue] = []
        # the pending calls' registers merged as the store applies calls one by one (a later
        # call's reading at the same time leaves it), so one write of many calls stores the
        # register the charging service's copy holds
        self._newest: NewestEnergy = {}
        # values appended and values written since start: writes go oldest first, so the
        # written ones are always the first `_written` appended
        self._appended = 0
        self._written = 0
        self._writing: asyncio.Task[None] | None = None
        self._due = asyncio.Event()  # set while something waits for the flusher
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Values acknowledged and not yet written (in flight included)."""
        return self._appended - self._written

    async def append(self, values: Sequence[MeterValue],
                     newest: NewestEnergy | None = None) -> None:
        """Keep `values` (their `newest_energy`, when the caller has it) for the next write;
        waits only while MAX_PENDING values wait."""
        if not values:
            return
        if self.pending >= self.max_pending:
            await self.flush()  # the store is behind or failing: this frame waits for it
        self._pending.extend(values)
        _merge(self._newest, newest_energy(values) if newest is None else newest)
        self._appended += len(values)
        self._due.set()

    async def flush(self) -> None:
        """Write every value appended before this call (and what came since, in the same
        write). Raises the store's error if a write fails; the values stay pending.

        The write runs in its own task: a caller that is cancelled does not cancel it, so a
        write is never half-abandoned and then written again."""
        target = self._appended
        while self._written < target:
            if self._writing is None:
                self._writing = asyncio.create_task(self._write(), name="meter-window-write")
                self._writing.add_done_callback(_retrieved)
            await asyncio.shield(self._writing)

    async def _write(self) -> None:
        batch, self._pending = self._pending, []
        newest, self._newest = self._newest, {}
        try:
            await self.store.append_meter_values(batch, newest)
        except BaseException:
            self._pending[:0] = batch  # kept, ahead of what came since
            self._newest = _merge(newest, self._newest)
            self.failures += 1
            log.exception("writing %d meter values failed (%d in a row); kept, %d pending",
                          len(batch), self.failures, self.pending)
            raise
        finally:
            self._writing = None
        self._written += len(batch)
        if self.failures:
            log.warning("meter values written again after %d failed writes", self.failures)
        self.failures = 0

    def _delay(self) -> float:
        if not self.failures:
            return self.window
        return min(self.window * 2 ** min(self.failures, 16), self.retry_delay_cap)

    async def _run(self) -> None:
        while True:
            await self._due.wait()
            await asyncio.sleep(self._delay())
            self._due.clear()  # values appended from here on set it again
            try:
                await self.flush()
            except Exception:  # logged by _write; kept for the next try
                self._due.set()
            stop_if_cancelled()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="meter-window")

    async def stop(self) -> None:
        """Stop the flusher and write what is pending (STOP_ATTEMPTS tries)."""
        if self._task is not None:
            await wait_cancelled([self._task])
            self._task = None
        for attempt in range(1, STOP_ATTEMPTS + 1):
            try:
                await self.flush()
                return
            except Exception:
                if attempt < STOP_ATTEMPTS:
                    await asyncio.sleep(STOP_RETRY_DELAY)
        lost, self._pending = self._pending, []
        self._newest = {}
        self._written += len(lost)  # given up on: flush() must not wait for them
        log.error("%d acknowledged meter values could not be stored before shutdown; they "
                  "follow, one per line", len(lost))
        for value in lost:
            log.error("meter value not stored: %r", value)


def _merge(into: NewestEnergy, later: NewestEnergy) -> NewestEnergy:
    """`into` with the readings of a later call that are strictly newer: as a store applies
    the calls one after another (and `apply_energy_readings` the charging service's copy)."""
    for key, reading in later.items():
        held = into.get(key)
        if held is None or held[0] < reading[0]:
            into[key] = reading
    return into


def _retrieved(task: asyncio.Task[None]) -> None:
    """The write's error is logged and raised to whoever awaits it; one that nobody awaits
    any more (a cancelled caller) must not be reported again as never retrieved."""
    if not task.cancelled():
        task.exception()


def _flushed_first(name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def method(self: WindowedStore, *args: Any, **kwargs: Any) -> Any:
        await self.meter_window.flush()
        return await getattr(self.store, name)(*args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"`Store.{name}`, after every pending meter value is written."
    return method


class WindowedStore:
    """A `Store` whose `append_meter_values` is windowed (`MeterWindow`); every other
    transaction method and `list_meter_values` write what is pending first, and the rest is
    the wrapped store's own (`__getattr__`)."""

    def __init__(self, store: Store, window: float) -> None:
        self.store = store
        self.meter_window = MeterWindow(store, window)

    def __getattr__(self, name: str) -> Any:
        if name in ("store", "meter_window"):  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.store, name)

    async def open(self) -> None:
        await self.store.open()
        self.meter_window.start()

    async def close(self) -> None:
        await self.meter_window.stop()
        await self.store.close()

    async def append_meter_values(self, values: Sequence[MeterValue],
                                  newest: NewestEnergy | None = None) -> None:
        await self.meter_window.append(values, newest)

    # every transaction method (they read or change transactions, whose registers the
    # values move), and the one read of meter values
    next_transaction_id = _flushed_first("next_transaction_id")
    open_transaction = _flushed_first("open_transaction")  # supersedes at the register
    stop_transaction = _flushed_first("stop_transaction")
    get_transaction = _flushed_first("get_transaction")
    get_station_transaction = _flushed_first("get_station_transaction")
    record_event = _flushed_first("record_event")
    list_transactions = _flushed_first("list_transactions")
    active_transaction = _flushed_first("active_transaction")
    list_orphan_stops = _flushed_first("list_orphan_stops")
    list_meter_values = _flushed_first("list_meter_values")


def with_meter_window(store: Store, window: float) -> Store:
    """`store` itself when `window` is 0 (stored before acknowledged), else windowed."""
    if window <= 0:
        return store
    windowed: Any = WindowedStore(store, window)
    return windowed  # a Store by delegation (`WindowedStore.__getattr__`)
