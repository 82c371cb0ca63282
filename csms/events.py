"""What the charging core tells the rest of the house, in version-neutral terms.

The core (ChargingService) calls every registered `ChargingListener` in order. Two calls are
questions whose answer goes back to the station (`authorize`, `transaction_started` may replace
the idTagInfo status); the others are notifications carrying everything a listener needs, so no
listener has to read the core's store again to learn what just happened.

Listeners run inside the station's message loop: they must not await a call to the same
station (hand such work to a `TaskSet`) and should return quickly, because the station waits
for our answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Authorization:
    """An idToken's verdict in domain terms (OCPP 1.6 IdTagInfo, 2.0.1 IdTokenInfo)."""

    status: str  # Accepted | Blocked | Expired | Invalid | ConcurrentTx
    expiry_date: datetime | None = None
    parent_id_tag: str | None = None

    def with_status(self, status: str) -> Authorization:
        return self if status == self.status else replace(self, status=status)


@dataclass(frozen=True, slots=True)
class TransactionStarted:
    station_id: str
    connector_id: int
    transaction_id: int
    id_tag: str
    meter_start: int  # Wh
    started_at: datetime
    created: bool  # False when the station repeated a start we had already recorded


@dataclass(frozen=True, slots=True)
class MeterSample:
    """MeterValues for a known, running transaction were stored (or, with
    `ocpp.meter_commit_window`, taken for the next write: `csms.meter_window`)."""

    station_id: str
    connector_id: int
    transaction_id: int
    energy_wh: int  # delivered so far, from the transaction's own energy register
    at: datetime | None  # time of the newest energy register reading, if any


@dataclass(frozen=True, slots=True)
class TransactionStopped:
    station_id: str
    connector_id: int
    transaction_id: int
    id_tag: str
    meter_start: int
    meter_stop: int
    energy_wh: int  # meterStop - meterStart, never negative
    started_at: datetime
    stopped_at: datetime
    reason: str | None
    changed: bool  # False when the station repeated a stop we had already recorded


@dataclass(frozen=True, slots=True)
class ConnectorStatusChanged:
    station_id: str
    connector_id: int
    status: str
    error_code: str


class ChargingListener:
    """Base class with no-op defaults; subclass and override what you need."""

    async def authorize(self, station_id: str, id_tag: str, result: Authorization,
                        ) -> Authorization:
        """An idTag is presented at a station: return `result` or a replacement."""
        return result

    async def transaction_started(self, event: TransactionStarted, result: Authorization,
                                  ) -> Authorization:
        """A transaction was recorded: may change the idTagInfo the station receives."""
        return result

    async def meter_sample(self, event: MeterSample) -> None:
        """Meter values of a running transaction were stored."""

    async def transaction_stopped(self, event: TransactionStopped) -> None:
        """A stop was recorded (also when repeated: see `event.changed`)."""

    async def connector_status(self, event: ConnectorStatusChanged) -> None:
        """A connector's status was stored."""

    async def station_connected(self, station_id: str) -> None: ...

    async def station_disconnected(self, station_id: str) -> None: ...
