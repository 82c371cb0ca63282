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
from tests.support.wait import eventually


class Station201(ChargePoint):
    """A 2.0.1 charge point that answers the CSMS's calls and records them."""

    def __init__(self, station_id: str, connection: ClientConnection) -> None:
        super().__init__(station_id, connection, response_timeout=10)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.start_status = "Accepted"  # the answer to RequestStartTransaction
        self.stop_status = "Accepted"  # the answer to RequestStopTransaction

    @on(Action.reset)
    async def on_reset(self, type: str, **kwargs: Any) -> call_result.Reset:
        self.received.append(("Reset", {"type": type, **kwargs}))
        return call_result.Reset(status="Accepted")

    @on(Action.request_start_transaction)
    async def on_request_start(self, id_token: dict[str, Any], remote_start_id: int,
                               **kwargs: Any) -> call_result.RequestStartTransaction:
        self.received.append(("RequestStartTransaction",
                              {"id_token": id_token, "remote_start_id": remote_start_id,
                               **kwargs}))
        return call_result.RequestStartTransaction(status=self.start_status)

    @on(Action.request_stop_transaction)
    async def on_request_stop(self, transaction_id: str,
                              **kwargs: Any) -> call_result.RequestStopTransaction:
        self.received.append(("RequestStopTransaction", {"transaction_id": transaction_id}))
        return call_result.RequestStopTransaction(status=self.stop_status)

    def requests(self, action: str) -> list[dict[str, Any]]:
        return [payload for name, payload in self.received if name == action]

    async def wait_for(self, action: str, timeout: float = 5.0) -> dict[str, Any]:
        """Wait until the CSMS sent us `action`; returns its payload (snake_case)."""
        return await eventually(lambda: next(iter(self.requests(action)), None),
                                lambda payload: payload is not None, timeout=timeout,
                                interval=0.02)

    async def event(self, event_type: str, transaction_id: str, seq_no: int, *,
                    timestamp: str, wh: int | None = None, evse_id: int | None = 1,
                    id_token: str | None = None, remote_start_id: int | None = None,
                    trigger_reason: str | None = None, offline: bool | None = None,
                    stopped_reason: str | None = None) -> call_result.TransactionEvent:
        """One TransactionEvent; `wh` is its Energy.Active.Import.Register reading."""
        info: dict[str, Any] = {"transaction_id": transaction_id}
        if remote_start_id is not None:
            info["remote_start_id"] = remote_start_id
        if stopped_reason is not None:
            info["stopped_reason"] = stopped_reason
        context = {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(
            event_type, "Sample.Periodic")
        meter = None if wh is None else [{"timestamp": timestamp, "sampled_value": [
            {"value": wh, "context": context, "measurand": "Energy.Active.Import.Register"}]}]
        default_trigger = {"Started": "Authorized", "Ended": "StopAuthorized"}.get(
            event_type, "MeterValuePeriodic")
        return await self.call(call.TransactionEvent(
            event_type=event_type, timestamp=timestamp,
            trigger_reason=trigger_reason or default_trigger, seq_no=seq_no,
            transaction_info=info, meter_value=meter, offline=offline,
            evse={"id": evse_id, "connector_id": 1} if evse_id is not None else None,
            id_token={"id_token": id_token, "type": "Central"} if id_token else None))

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
