"""OCPP 2.0.1 handlers: one per action the central system answers.

Each maps the payload (already schema-checked by the session) to domain values, calls the
`ChargingService`, and returns the library's 2.0.1 call_result dataclass (the hot ones return
the wire payload itself: `WireAnswer`). Handlers take the
payload as snake_case keyword arguments (the `ocpp` library's convention), except those marked
`@camel_payload` (the meter values, the hot path), which read the payload as it arrived.
NotifyReport parts are stored (the device model operators see); events and security
notifications are answered and logged, not stored (yet).
"""

from __future__ import annotations

import logging
from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action, DataTransferStatusEnumType, RegistrationStatusEnumType

from csms.domain import parse_timestamp, utcnow_text
from csms.events import Authorization
from csms.ocpp.framing import payload_of
from csms.ocpp.v201 import mapping, reports
from csms.ocpp.version import StationHandlers, WireAnswer, camel_payload, routes_of

log = logging.getLogger(__name__)


class Handlers(StationHandlers):
    """The 2.0.1 handlers of one connection, routed with the library's `@on`. One object per
    connection, the route table (`ROUTES`) shared."""

    __slots__ = ()

    @on(Action.boot_notification)
    async def on_boot_notification(self, charging_station: dict[str, Any], reason: str,
                                   **kwargs: Any) -> WireAnswer:
        await self.service.boot(
            self.id, vendor=charging_station["vendor_name"], model=charging_station["model"],
            serial_number=charging_station.get("serial_number"),
            firmware_version=charging_station.get("firmware_version"))
        log.info("%s: BootNotification (%s)", self.id, reason)
        return {"currentTime": utcnow_text(), "interval": self.heartbeat_interval,
                "status": RegistrationStatusEnumType.accepted.value}

    @on(Action.heartbeat)
    async def on_heartbeat(self, **kwargs: Any) -> WireAnswer:
        await self.service.heartbeat(self.id)
        return {"currentTime": utcnow_text()}

    @on(Action.status_notification)
    async def on_status_notification(self, timestamp: str, connector_status: str, evse_id: int,
                                     connector_id: int, **kwargs: Any,
                                     ) -> WireAnswer:
        connectors = self.context.evse_connectors.setdefault(evse_id, {})
        connectors[connector_id] = connector_status
        status = mapping.evse_status(connectors)
        await self.service.connector_status(
            self.id, evse_id, status=status, error_code=mapping.error_code(status),
            info=f"connector {connector_id}: {connector_status}" if len(connectors) > 1
            else None, vendor_error_code=None, timestamp=parse_timestamp(timestamp))
        return {}

    @on(Action.authorize)
    async def on_authorize(self, id_token: dict[str, Any], **kwargs: Any,
                           ) -> call_result.Authorize:
        if id_token["type"] == mapping.NO_AUTHORIZATION:  # nobody to check: free vend
            return call_result.Authorize(id_token_info=mapping.id_token_info(
                Authorization("Accepted")))
        auth = await self.service.authorize(self.id, id_token["id_token"])
        return call_result.Authorize(id_token_info=mapping.id_token_info(auth))

    @on(Action.meter_values)
    @camel_payload
    async def on_meter_values(self, payload: dict[str, Any]) -> WireAnswer:
        evse_id = payload["evseId"]
        await self.service.meter_values(
            self.id, connector_id=evse_id, transaction_id=None,
            values=mapping.meter_values(self.id, evse_id, payload["meterValue"]))
        return {}

    @on(Action.transaction_event)
    @camel_payload
    async def on_transaction_event(self, payload: dict[str, Any]) -> WireAnswer:
        auth = await self.service.transaction_event(mapping.transaction_event(self.id, payload))
        if auth is None:  # an Updated with no token: the usual answer, empty
            return {}
        return {"idTokenInfo": payload_of(mapping.id_token_info(auth))}

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> call_result.DataTransfer:
        log.info("%s: DataTransfer from vendor %s (%s)", self.id, vendor_id,
                 kwargs.get("message_id"))
        return call_result.DataTransfer(status=DataTransferStatusEnumType.unknown_vendor_id)

    @on(Action.firmware_status_notification)
    async def on_firmware_status(self, status: str, **kwargs: Any,
                                 ) -> call_result.FirmwareStatusNotification:
        self.context.firmware_status = status
        return call_result.FirmwareStatusNotification()

    @on(Action.log_status_notification)
    async def on_log_status(self, status: str, **kwargs: Any,
                            ) -> call_result.LogStatusNotification:
        self.context.diagnostics_status = status  # 2.0.1's log upload is 1.6's diagnostics
        return call_result.LogStatusNotification()

    @on(Action.security_event_notification)
    async def on_security_event(self, type: str, timestamp: str, **kwargs: Any,
                                ) -> call_result.SecurityEventNotification:
        log.warning("%s: security event %s at %s (%s)", self.id, type, timestamp,
                    kwargs.get("tech_info"))
        return call_result.SecurityEventNotification()

    @on(Action.notify_event)
    async def on_notify_event(self, generated_at: str, seq_no: int,
                              event_data: list[dict[str, Any]], **kwargs: Any,
                              ) -> call_result.NotifyEvent:
        log.info("%s: NotifyEvent #%d with %d event(s)", self.id, seq_no, len(event_data))
        return call_result.NotifyEvent()

    @on(Action.notify_report)
    async def on_notify_report(self, request_id: int, generated_at: str, seq_no: int,
                               **kwargs: Any) -> call_result.NotifyReport:
        await self.service.report_part(reports.report_part(
            self.id, request_id, generated_at, seq_no, kwargs.get("tbc", False),
            kwargs.get("report_data")))
        return call_result.NotifyReport()


ROUTES = routes_of(Handlers)
