"""Test peer: a real OCPP 2.0.1 charge point (the `ocpp` library's `ocpp.v201` client)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action
from websockets.asyncio.client import ClientConnection

from tests.support.stations import station


class Station201(ChargePoint):
    """A 2.0.1 charge point that answers the CSMS's calls and records them."""

    def __init__(self, station_id: str, connection: ClientConnection) -> None:
        super().__init__(station_id, connection, response_timeout=10)
        self.received: list[tuple[str, dict[str, Any]]] = []

    @on(Action.reset)
    async def on_reset(self, type: str, **kwargs: Any) -> call_result.Reset:
        self.received.append(("Reset", {"type": type, **kwargs}))
        return call_result.Reset(status="Accepted")

    async def boot(self) -> call_result.BootNotification:
        return await self.call(call.BootNotification(
            charging_station={"vendor_name": "Vendor201", "model": "Model201",
                              "serial_number": "SN-201", "firmware_version": "2.0.1-fw"},
            reason="PowerUp"))

    async def status(self, evse_id: int, connector_id: int, status: str,
                     timestamp: str = "2026-11-22T10:00:00Z") -> call_result.StatusNotification:
        return await self.call(call.StatusNotification(
            timestamp=timestamp, connector_status=status, evse_id=evse_id,
            connector_id=connector_id))

    async def raw(self, frame: str) -> None:
        """Send a frame exactly as given (for bad-frame tests)."""
        await self._connection.send(frame)


@contextlib.asynccontextmanager
async def station201(url: str, station_id: str, *, password: str | None = None,
                     subprotocols: tuple[str, ...] = ("ocpp2.0.1",),
                     ) -> AsyncIterator[Station201]:
    """Connect a Station201, run its receive loop, and disconnect at the end."""
    async with station(url, station_id, password=password, subprotocols=list(subprotocols),
                       cls=Station201) as cp:
        assert cp._connection.subprotocol == "ocpp2.0.1"
        yield cp
