"""A stop is a durable intent: once a driver, an operator or the budget guard asks a running
session to stop, the request is recorded on the session (who, when) in the same
compare-and-set that moves it CHARGING -> STOPPING, and RemoteStopTransaction is sent again
until the station's stop is recorded: when the station reconnects, when the driver asks again,
when the budget guard sees the cost still rising, and on a schedule with backoff. Each attempt
is recorded (count, time, error), so drivers and operators see why a session still runs."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import datetime, timedelta

from billing import payment
from billing.models import Session, SessionStatus, StopRequester
from billing.settings import BillingConfig
from billing.store.ports import BillingStore
from csms.background import TaskSet, doubling_delay
from csms.commands import CommandError, StationCommands
from csms.domain import utcnow

log = logging.getLogger(__name__)

S = SessionStatus

# seconds before a failed look for reconnected stations' owed stops is tried again, doubling
LOOKUP_RETRY_DELAY = 0.5
MAX_LOOKUP_RETRY_DELAY = 10.0


class Stops:
    def __init__(self, settings: BillingConfig, store: BillingStore, stations: StationCommands,
                 tasks: TaskSet) -> None:
        self.settings = settings
        self.store = store
        self.stations = stations
        self.tasks = tasks
        # one RemoteStop in flight per session (a reconnect, the sweep and a driver at once)
        self._sending: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # stations that connected since the last look for the stops owed to them
        self._reconnected: set[str] = set()
        self._looking: asyncio.Task[None] | None = None

    async def request(self, session_id: str, by: StopRequester) -> Session | None:
        """CHARGING -> STOPPING with the request recorded; None when it was not CHARGING."""
        now = utcnow()
        return await payment.move_session(self.store, session_id, {S.CHARGING}, S.STOPPING,
                                          stop_requested_by=by, stop_requested_at=now,
                                          stop_next_at=now)

    async def send(self, session_id: str) -> Session | None:
        """Send RemoteStopTransaction for a STOPPING session whose stop the station has not
        reported yet, and record the attempt. Returns the session as it is now."""
        async with self._sending[session_id]:
            session = await self.store.get_session(session_id)
            if session is None or session.status != S.STOPPING or session.stop_recorded \
                    or session.transaction_id is None:
                return session
            error = await self._remote_stop(session, session.transaction_id)
            now = utcnow()
            attempts = session.stop_attempts + 1
            recorded = await self.store.update_session(
                session_id, if_status={S.STOPPING}, stop_attempts=attempts,
                stop_last_attempt_at=now, stop_last_error=error,
                stop_next_at=now + self.backoff(attempts),
                stop_requested_at=session.stop_requested_at or now)
            return recorded or await self.store.get_session(session_id)

    def forget(self, session_id: str) -> None:
        """The station's stop arrived: nothing more to send for this session."""
        lock = self._sending.get(session_id)
        if lock is not None and not lock.locked():
            del self._sending[session_id]

    def send_later(self, session_id: str) -> None:
        """`send` off the caller's path (a station's message loop must not wait for it). A
        send already in flight covers this request: meter samples of a station that never
        answers RemoteStop must not queue a task each behind it."""
        sending = self._sending.get(session_id)
        if sending is not None and sending.locked():
            return
        self.tasks.spawn(self.send(session_id), f"stop-{session_id[:8]}")

    def backoff(self, attempts: int) -> timedelta:
        billing = self.settings.billing
        return timedelta(seconds=doubling_delay(billing.stop_retry_interval, attempts,
                                                billing.stop_retry_max_interval))

    def station_connected(self, station_id: str) -> None:
        """The station is back: every stop still owed to it is sent again at once. Looked up
        off the station's path, and for all the stations that connected meanwhile in one read:
        one read per connect was a round trip on every station's way to its first frame, and
        a tenth of the loop's time when 10,000 connect (issue 15)."""
        self._reconnected.add(station_id)
        if self._looking is None:
            self._looking = self.tasks.spawn(self._resend_to_reconnected(), "stops-reconnected")

    async def _resend_to_reconnected(self) -> None:
        failures = 0
        try:
            while self._reconnected:
                stations, self._reconnected = self._reconnected, set()
                try:
                    found = await self.store.list_sessions(
                        statuses={S.STOPPING}, station_ids=stations,
                        limit=1000 * len(stations))
                except Exception:
                    # Kept and read again: the reconnect is when an owed stop can go out, and
                    # the sweep may not try it again for up to stop_retry_max_interval (before
                    # the read moved off the station's path, its failure dropped the
                    # connection and the station's next connect read again).
                    self._reconnected |= stations
                    failures += 1
                    log.exception("could not look up the stops owed to %d reconnected "
                                  "station(s); trying again", len(stations))
                    await asyncio.sleep(doubling_delay(LOOKUP_RETRY_DELAY, failures,
                                                       MAX_LOOKUP_RETRY_DELAY))
                    continue
                failures = 0
                for session in found:
                    if not session.stop_recorded:
                        self.send_later(session.session_id)
        finally:
            self._looking = None

    async def sweep(self, now: datetime | None = None) -> None:
        """Send again every stop whose next attempt is due."""
        now = now or utcnow()
        for session in await self.store.list_sessions(statuses={S.STOPPING}, limit=1000):
            due = session.stop_next_at is None or session.stop_next_at <= now
            if due and not session.stop_recorded:
                self.send_later(session.session_id)

    async def _remote_stop(self, session: Session, transaction_id: int) -> str | None:
        """Ask the station; the error of this attempt, None when it accepted."""
        try:
            if await self.stations.remote_stop(session.station_id, transaction_id):
                return None
            error = "station rejected RemoteStopTransaction"
        except CommandError as exc:
            error = f"RemoteStopTransaction failed: {exc or type(exc).__name__}"
        log.warning("session %s: %s; it will be sent again", session.session_id, error)
        return error
