"""The seam between the charging domain and whoever wants to follow it (billing).

The hub calls every registered `ChargingHooks` in order. `authorize` and `transaction_started`
may change the idTagInfo the station receives; the others only observe. Hooks run inside the
station's message loop: they must not await a call to the same station (hand such work to a
task) and should return quickly, because the station waits for our answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from csms.domain import MeterValue, Transaction


@dataclass(frozen=True, slots=True)
class Authorization:
    """OCPP 1.6 IdTagInfo in domain terms."""

    status: str  # Accepted | Blocked | Expired | Invalid | ConcurrentTx
    expiry_date: datetime | None = None
    parent_id_tag: str | None = None

    def with_status(self, status: str) -> Authorization:
        return replace(self, status=status)


class ChargingHooks:
    """Base class with no-op defaults; subclass and override what you need."""

    async def authorize(self, station_id: str, id_tag: str, result: Authorization,
                        ) -> Authorization:
        """Authorize.req from a station: return `result` or a replacement."""
        return result

    async def transaction_started(self, transaction: Transaction, created: bool,
                                  result: Authorization) -> Authorization:
        """StartTransaction stored (created=False on a retried start): may change idTagInfo."""
        return result

    async def transaction_stopped(self, transaction: Transaction, changed: bool) -> None:
        """StopTransaction stored (changed=False on a repeat)."""

    async def meter_values(self, transaction: Transaction | None,
                           values: Sequence[MeterValue]) -> None:
        """MeterValues stored; `transaction` carries the updated latest energy register."""

    async def connector_status(self, station_id: str, connector_id: int, status: str,
                               error_code: str) -> None:
        """StatusNotification stored."""

    async def station_connected(self, station_id: str) -> None: ...

    async def station_disconnected(self, station_id: str) -> None: ...
