"""OCPP 1.6 handlers: one per action the central system answers.

Each maps the payload (already schema-checked by the session) to domain values, calls the
`ChargingService`, and returns the library's 1.6 call_result dataclass (the hot ones return the
wire payload itself: `WireAnswer`). No business logic here.
Handlers take the payload as snake_case keyword arguments (the `ocpp` library's convention),
except those marked `@camel_payload` (the meter values, the hot path), which read the payload
as it arrived.
"""

from __future__ import annotations

import logging
from typing import Any

from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action, DataTransferStatus, RegistrationStatus

from csms.domain import parse_timestamp, utcnow_text
from csms.ocpp.v16 import mapping
from csms.ocpp.version import StationHandlers, WireAnswer, camel_payload, routes_of

log = logging.getLogger(__name__)


class Handlers(StationHandlers):
    """The 1.6 handlers of one connection, routed with the library's `@on`. One object per
    connection, the route table (`ROUTES`) shared."""

    __slots__ = ()

    @on(Action.boot_notification)
    async def on_boot_notification(self, charge_point_vendor: str, charge_point_model: str,
                                   **kwargs: Any) -> WireAnswer:
        await self.service.boot(
            self.id, vendor=charge_point_vendor, model=charge_point_model,
            serial_number=kwargs.get("charge_point_serial_number")
            or kwargs.get("charge_box_serial_number"),
            firmware_version=kwargs.get("firmware_version"))
        return {"currentTime": utcnow_text(), "interval": self.heartbeat_interval,
                "status": RegistrationStatus.accepted.value}

    @on(Action.heartbeat)
    async def on_heartbeat(self) -> WireAnswer:
        await self.service.heartbeat(self.id)
        return {"currentTime": utcnow_text()}

    @on(Action.status_notification)
    async def on_status_notification(self, connector_id: int, error_code: str, status: str,
                                     timestamp: str | None = None, **kwargs: Any,
                                     ) -> WireAnswer:
        await self.service.connector_status(
            self.id, connector_id, status=status, error_code=error_code,
            info=kwargs.get("info"), vendor_error_code=kwargs.get("vendor_error_code"),
            timestamp=parse_timestamp(timestamp) if timestamp else None)
        return {}

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str) -> call_result.Authorize:
        auth = await self.service.authorize(self.id, id_tag)
        return call_result.Authorize(id_tag_info=mapping.id_tag_info(auth))

    @on(Action.start_transaction)
    async def on_start_transaction(self, connector_id: int, id_tag: str, meter_start: int,
                                   timestamp: str, reservation_id: int | None = None,
                                   ) -> call_result.StartTransaction:
        transaction, auth = await self.service.start_transaction(
            self.id, connector_id=connector_id, id_tag=id_tag, meter_start=meter_start,
            timestamp=parse_timestamp(timestamp), reservation_id=reservation_id)
        return call_result.StartTransaction(transaction_id=transaction.transaction_id,
                                            id_tag_info=mapping.id_tag_info(auth))

    @on(Action.stop_transaction)
    @camel_payload
    async def on_stop_transaction(self, payload: dict[str, Any]) -> call_result.StopTransaction:
        auth = await self.service.stop_transaction(
            self.id, transaction_id=payload["transactionId"], meter_stop=payload["meterStop"],
            timestamp=parse_timestamp(payload["timestamp"]), reason=payload.get("reason"),
            id_tag=payload.get("idTag"),
            transaction_data=mapping.meter_values(self.id, 0, payload.get("transactionData", ())))
        return call_result.StopTransaction(
            id_tag_info=mapping.id_tag_info(auth) if auth else None)

    @on(Action.meter_values)
    @camel_payload
    async def on_meter_values(self, payload: dict[str, Any]) -> WireAnswer:
        connector_id = payload["connectorId"]
        await self.service.meter_values(
            self.id, connector_id=connector_id, transaction_id=payload.get("transactionId"),
            values=mapping.meter_values(self.id, connector_id, payload["meterValue"]))
        return {}

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> call_result.DataTransfer:
        log.info("%s: DataTransfer from vendor %s (%s)", self.id, vendor_id,
                 kwargs.get("message_id"))
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    @on(Action.diagnostics_status_notification)
    async def on_diagnostics_status(self, status: str,
                                    ) -> call_result.DiagnosticsStatusNotification:
        self.context.diagnostics_status = status
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    async def on_firmware_status(self, status: str) -> call_result.FirmwareStatusNotification:
        self.context.firmware_status = status
        return call_result.FirmwareStatusNotification()


ROUTES = routes_of(Handlers)
