"""OCPP 1.6J: one `ChargePoint` per connected station.

Handlers map payloads to the `ChargingService` and return the library's call_result dataclasses.
We run our own receive loop (`route_message`) so that every bad frame gets a CALLERROR with the
1.6 error code, and so frames are logged and counted once, in one place.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from ocpp.charge_point import (
    remove_nones,
    serialize_as_dict,
)
from ocpp.messages import Call, CallError, CallResult, MessageType
from ocpp.routing import on
from ocpp.v16 import ChargePoint as BaseChargePoint
from ocpp.v16 import call_result, datatypes
from ocpp.v16.enums import Action, DataTransferStatus, RegistrationStatus

from csms.charging import ChargingService
from csms.commands import CommandInvalid, CommandRejected, CommandTimeout, StationNotConnected
from csms.domain import InvalidTimestamp, isoformat, utcnow
from csms.events import Authorization
from csms.metrics import Metrics
from csms.ocpp.protocol import (
    FrameError,
    camel_keys,
    error_from_exception,
    parse_frame,
    schema_violation,
    snake_keys,
)

log = logging.getLogger(__name__)


def id_tag_info(auth: Authorization) -> datatypes.IdTagInfo:
    return datatypes.IdTagInfo(status=auth.status, parent_id_tag=auth.parent_id_tag,
                               expiry_date=isoformat(auth.expiry_date))


class FrameSink:
    """Where a connection reports its frames (the hub's message log and metrics)."""

    def frame(self, station_id: str, direction: str, frame: str) -> None: ...


class StationChargePoint(BaseChargePoint):
    def __init__(self, station_id: str, connection: Any, *, service: ChargingService,
                 metrics: Metrics, sink: FrameSink, heartbeat_interval: int,
                 response_timeout: float) -> None:
        super().__init__(station_id, connection, response_timeout=response_timeout)
        self.service = service
        self.metrics = metrics
        self.sink = sink
        self.heartbeat_interval = heartbeat_interval
        self.firmware_status: str | None = None
        self.diagnostics_status: str | None = None

    # message loop --------------------------------------------------------------------------
    async def start(self) -> None:
        while True:
            raw = await self._connection.recv()
            await self.route_message(raw)

    async def route_message(self, raw_msg: str) -> None:
        self.sink.frame(self.id, "in", raw_msg)
        try:
            msg = parse_frame(raw_msg)
        except FrameError as error:
            self.metrics.messages.labels("invalid", "in").inc()
            log.warning("%s: bad frame %r: %s", self.id, raw_msg[:200], error)
            await self._send_error(error.call_error())
            return
        if msg.message_type_id != MessageType.Call:
            self.metrics.messages.labels("CallResult" if msg.message_type_id ==
                                         MessageType.CallResult else "CallError", "in").inc()
            self._response_queue.put_nowait(msg)
            return
        started = time.perf_counter()
        action = msg.action
        known = action in self.route_map
        self.metrics.messages.labels(action if known else "unknown", "in").inc()
        try:
            if known:
                violation = schema_violation(action, msg.payload)
                if violation is not None:
                    raise FrameError(msg.unique_id, violation[0], violation[1])
            await self._handle_call(msg)
        except FrameError as error:
            await self._send_error(error.call_error())
        except Exception as exc:  # OCPPError from the library, or a bug in a handler
            if not hasattr(exc, "code"):
                log.exception("%s: %s handler failed", self.id, action)
            await self._send_error(error_from_exception(msg.unique_id, exc))
        finally:
            if known:
                self.metrics.handler_seconds.labels(action).observe(
                    time.perf_counter() - started)

    async def _send_error(self, error: CallError) -> None:
        self.metrics.errors.labels(error.error_code).inc()
        await self._send(error.to_json())

    async def _handle_call(self, msg: Call) -> None:
        """Run the handler; an exception inside it becomes InternalError (logged by us with the
        station id), never a dropped connection."""
        handlers = self.route_map.get(msg.action)
        if handlers is None or "_on_action" not in handlers:
            await super()._handle_call(msg)  # raises NotImplemented / NotSupported
            return
        try:
            response = await handlers["_on_action"](**snake_keys(msg.payload))
        except InvalidTimestamp as exc:
            raise FrameError(msg.unique_id, "PropertyConstraintViolation", str(exc)) from exc
        except TypeError as exc:
            log.exception("%s: %s handler rejected its arguments", self.id, msg.action)
            raise FrameError(msg.unique_id, "InternalError", "An internal error occurred") \
                from exc
        payload = camel_keys(remove_nones(serialize_as_dict(response)))
        await self._send(msg.create_call_result(payload).to_json())

    async def _send(self, message: str) -> None:
        self.sink.frame(self.id, "out", message)
        await self._connection.send(message)

    # calls to the station ------------------------------------------------------------------
    async def send_call(self, action: str, payload: dict[str, Any],
                        timeout: float | None = None) -> dict[str, Any]:
        """Send a CALL with a camelCase payload and return the CALLRESULT payload."""
        violation = schema_violation(action, payload)
        if violation is not None:
            raise CommandInvalid(f"{violation[0]}: {violation[1]}")
        call = Call(str(uuid.uuid4()), action, payload)
        wait = self._response_timeout if timeout is None else timeout
        async with self._call_lock:
            self.metrics.messages.labels(action, "out").inc()
            try:
                await self._send(call.to_json())
            except (ConnectionError, RuntimeError) as exc:  # the socket closed under us
                raise StationNotConnected(f"{self.id} disconnected: {exc}") from exc
            try:
                response = await self._get_specific_response(call.unique_id, wait)
            except TimeoutError as exc:
                raise CommandTimeout(f"{self.id} did not answer {action} within {wait}s") \
                    from exc
        if isinstance(response, CallError):
            raise CommandRejected(response.error_code, response.error_description,
                                  response.error_details)
        assert isinstance(response, CallResult)
        violation = schema_violation(action, response.payload, MessageType.CallResult)
        if violation is not None:
            raise CommandRejected("FormationViolation",
                                  f"invalid {action} response: {violation[1]}", {})
        return response.payload

    # handlers ------------------------------------------------------------------------------
    @on(Action.boot_notification, skip_schema_validation=True)
    async def on_boot_notification(self, charge_point_vendor: str, charge_point_model: str,
                                   **kwargs: Any) -> call_result.BootNotification:
        await self.service.boot(
            self.id, vendor=charge_point_vendor, model=charge_point_model,
            serial_number=kwargs.get("charge_point_serial_number")
            or kwargs.get("charge_box_serial_number"),
            firmware_version=kwargs.get("firmware_version"))
        return call_result.BootNotification(current_time=isoformat(utcnow()),
                                            interval=self.heartbeat_interval,
                                            status=RegistrationStatus.accepted)

    @on(Action.heartbeat, skip_schema_validation=True)
    async def on_heartbeat(self) -> call_result.Heartbeat:
        await self.service.heartbeat(self.id)
        return call_result.Heartbeat(current_time=isoformat(utcnow()))

    @on(Action.status_notification, skip_schema_validation=True)
    async def on_status_notification(self, connector_id: int, error_code: str, status: str,
                                     **kwargs: Any) -> call_result.StatusNotification:
        await self.service.connector_status(
            self.id, connector_id, status=status, error_code=error_code,
            info=kwargs.get("info"), vendor_error_code=kwargs.get("vendor_error_code"),
            timestamp=kwargs.get("timestamp"))
        return call_result.StatusNotification()

    @on(Action.authorize, skip_schema_validation=True)
    async def on_authorize(self, id_tag: str) -> call_result.Authorize:
        auth = await self.service.authorize(self.id, id_tag)
        return call_result.Authorize(id_tag_info=id_tag_info(auth))

    @on(Action.start_transaction, skip_schema_validation=True)
    async def on_start_transaction(self, connector_id: int, id_tag: str, meter_start: int,
                                   timestamp: str, reservation_id: int | None = None,
                                   ) -> call_result.StartTransaction:
        transaction, auth = await self.service.start_transaction(
            self.id, connector_id=connector_id, id_tag=id_tag, meter_start=meter_start,
            timestamp=timestamp, reservation_id=reservation_id)
        return call_result.StartTransaction(transaction_id=transaction.transaction_id,
                                            id_tag_info=id_tag_info(auth))

    @on(Action.stop_transaction, skip_schema_validation=True)
    async def on_stop_transaction(self, meter_stop: int, timestamp: str, transaction_id: int,
                                  reason: str | None = None, id_tag: str | None = None,
                                  transaction_data: list | None = None,
                                  ) -> call_result.StopTransaction:
        auth = await self.service.stop_transaction(
            self.id, transaction_id=transaction_id, meter_stop=meter_stop, timestamp=timestamp,
            reason=reason, id_tag=id_tag, transaction_data=transaction_data)
        return call_result.StopTransaction(id_tag_info=id_tag_info(auth) if auth else None)

    @on(Action.meter_values, skip_schema_validation=True)
    async def on_meter_values(self, connector_id: int, meter_value: list,
                              transaction_id: int | None = None) -> call_result.MeterValues:
        await self.service.meter_values(self.id, connector_id=connector_id,
                                        transaction_id=transaction_id, meter_value=meter_value)
        return call_result.MeterValues()

    @on(Action.data_transfer, skip_schema_validation=True)
    async def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> call_result.DataTransfer:
        log.info("%s: DataTransfer from vendor %s (%s)", self.id, vendor_id,
                 kwargs.get("message_id"))
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    @on(Action.diagnostics_status_notification, skip_schema_validation=True)
    async def on_diagnostics_status(self, status: str,
                                    ) -> call_result.DiagnosticsStatusNotification:
        self.diagnostics_status = status
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification, skip_schema_validation=True)
    async def on_firmware_status(self, status: str) -> call_result.FirmwareStatusNotification:
        self.firmware_status = status
        return call_result.FirmwareStatusNotification()

