"""Test peers: real OCPP 1.6 charge points (the `ocpp` library's client) over real websockets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import ClientConnection, connect

from tests.support.wait import eventually


class FakeStation(ChargePoint):
    """A charge point that answers the CSMS's calls and records them."""

    def __init__(self, station_id: str, connection: ClientConnection) -> None:
        super().__init__(station_id, connection, response_timeout=10)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.remote_start_status = "Accepted"
        self.remote_stop_status = "Accepted"

    @on(Action.remote_start_transaction)
    async def on_remote_start(self, id_tag: str, **kwargs: Any,
                              ) -> call_result.RemoteStartTransaction:
        self.received.append(("RemoteStartTransaction", {"id_tag": id_tag, **kwargs}))
        return call_result.RemoteStartTransaction(status=self.remote_start_status)

    @on(Action.remote_stop_transaction)
    async def on_remote_stop(self, transaction_id: int) -> call_result.RemoteStopTransaction:
        self.received.append(("RemoteStopTransaction", {"transaction_id": transaction_id}))
        return call_result.RemoteStopTransaction(status=self.remote_stop_status)

    @on(Action.reset)
    async def on_reset(self, type: str) -> call_result.Reset:
        self.received.append(("Reset", {"type": type}))
        return call_result.Reset(status="Accepted")

    @on(Action.get_configuration)
    async def on_get_configuration(self, **kwargs: Any) -> call_result.GetConfiguration:
        self.received.append(("GetConfiguration", kwargs))
        return call_result.GetConfiguration(
            configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "300"}])

    @on(Action.change_configuration)
    async def on_change_configuration(self, key: str, value: str,
                                      ) -> call_result.ChangeConfiguration:
        self.received.append(("ChangeConfiguration", {"key": key, "value": value}))
        return call_result.ChangeConfiguration(status="Accepted")

    @on(Action.unlock_connector)
    async def on_unlock(self, connector_id: int) -> call_result.UnlockConnector:
        self.received.append(("UnlockConnector", {"connector_id": connector_id}))
        return call_result.UnlockConnector(status="Unlocked")

    @on(Action.change_availability)
    async def on_change_availability(self, connector_id: int, type: str,
                                     ) -> call_result.ChangeAvailability:
        self.received.append(("ChangeAvailability", {"connector_id": connector_id, "type": type}))
        return call_result.ChangeAvailability(status="Accepted")

    @on(Action.trigger_message)
    async def on_trigger(self, requested_message: str, **kwargs: Any,
                         ) -> call_result.TriggerMessage:
        self.received.append(("TriggerMessage", {"requested_message": requested_message}))
        return call_result.TriggerMessage(status="Accepted")

    @on(Action.clear_cache)
    async def on_clear_cache(self) -> call_result.ClearCache:
        self.received.append(("ClearCache", {}))
        return call_result.ClearCache(status="Accepted")

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> call_result.DataTransfer:
        self.received.append(("DataTransfer", {"vendor_id": vendor_id, **kwargs}))
        return call_result.DataTransfer(status="Accepted", data="pong")

    # conveniences ------------------------------------------------------------------------------
    async def boot(self) -> call_result.BootNotification:
        return await self.call(call.BootNotification(
            charge_point_vendor="TestVendor", charge_point_model="TestModel",
            charge_point_serial_number="SN-1", firmware_version="1.2.3"))

    async def status(self, connector_id: int, status: str,
                     error_code: str = "NoError") -> call_result.StatusNotification:
        return await self.call(call.StatusNotification(
            connector_id=connector_id, error_code=error_code, status=status))

    async def raw(self, frame: str) -> None:
        """Send a frame exactly as given (for bad-frame tests)."""
        await self._connection.send(frame)

    async def wait_for(self, action: str, timeout: float = 5.0) -> dict[str, Any]:
        """Wait until the CSMS sent us `action`; returns its payload (snake_case)."""
        return await eventually(
            lambda: next((payload for name, payload in self.received if name == action), None),
            lambda payload: payload is not None, timeout=timeout, interval=0.02)


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@contextlib.asynccontextmanager
async def station(url: str, station_id: str, *, password: str | None = None,
                  subprotocols: list[str] | None = None,
                  cls: type[Any] = FakeStation) -> AsyncIterator[Any]:
    """Connect a charge point of class `cls` (the `ocpp` library's client: a FakeStation unless
    told), run its receive loop, and disconnect at the end."""
    headers = basic_auth(station_id, password) if password is not None else None
    protocols = ["ocpp1.6"] if subprotocols is None else subprotocols
    async with connect(f"{url}/{station_id}", subprotocols=protocols or None,
                       additional_headers=headers, open_timeout=5) as ws:
        cp = cls(station_id, ws)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
