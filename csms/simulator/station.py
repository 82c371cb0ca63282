"""One simulated OCPP 1.6 charge point: an `ocpp` library `ChargePoint` client that boots,
charges on one connector until the run ends (or, idle, waits for RemoteStart like real
hardware), and answers the CSMS's calls. `station201` is its OCPP 2.0.1 sibling; `connect`
runs either over a websocket."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ocpp.messages
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import (
    Action,
    AuthorizationStatus,
    AvailabilityStatus,
    AvailabilityType,
    ChargePointErrorCode,
    ChargePointStatus,
    ClearCacheStatus,
    ConfigurationStatus,
    DataTransferStatus,
    MessageTrigger,
    Reason,
    RegistrationStatus,
    RemoteStartStopStatus,
    ResetStatus,
    ResetType,
    TriggerMessageStatus,
    UnlockStatus,
)

from csms.simulator.hardware import FIRMWARE, MODEL, VENDOR, CountingConnection, Hardware, now_iso
from csms.simulator.results import (
    AUTHORIZE_REJECTED,
    BOOT_REJECTED,
    START_REJECTED,
    SimulationConfig,
    Stats,
)

# Validation in the thread pool is the slowest option for both throughput and tail latency.
ocpp.messages.ASYNC_VALIDATION = False


CONNECTOR_ID = 1

# --------------------------------------------------------------------------------------------
# one simulated station
# --------------------------------------------------------------------------------------------


class SimulatedChargePoint(Hardware, ChargePoint):
    """A charge point with one connector that charges until the run ends."""

    def __init__(
        self,
        station_id: str,
        connection: CountingConnection,
        config: SimulationConfig,
        stats: Stats,
    ) -> None:
        super().__init__(station_id, connection, response_timeout=config.response_timeout)
        self.init_hardware(station_id, config, stats)
        self.transaction_id: int | None = None
        self.id_tag = config.id_tag
        self.connector_status = ChargePointStatus.available
        # Set by handlers of server calls, acted on by the session loop.
        self.wake = asyncio.Event()
        self.stop_requested: str | None = None  # stop reason
        self.start_requested: str | None = None  # id tag
        self.triggered: list[str] = []
        self.configuration: dict[str, tuple[str, bool]] = {  # key: (value, read-only)
            "HeartbeatInterval": ("300", False),
            "MeterValueSampleInterval": (str(int(config.meter_interval) or 1), False),
            "MeterValuesSampledData": (
                "Energy.Active.Import.Register,Power.Active.Import",
                False,
            ),
            "ClockAlignedDataInterval": ("0", False),
            "ConnectionTimeOut": ("60", False),
            "AuthorizeRemoteTxRequests": ("false", False),
            "LocalAuthorizeOffline": ("true", False),
            "StopTransactionOnEVSideDisconnect": ("true", False),
            "NumberOfConnectors": ("1", True),
            "SupportedFeatureProfiles": ("Core,RemoteTrigger", True),
        }

    # calls we send ---------------------------------------------------------------------------

    async def send_status(
        self, status: ChargePointStatus, connector_id: int = CONNECTOR_ID
    ) -> None:
        if connector_id == CONNECTOR_ID:
            self.connector_status = status
        await self.timed_call(
            call.StatusNotification(
                connector_id=connector_id,
                error_code=ChargePointErrorCode.no_error,
                status=status,
                timestamp=now_iso(),
            )
        )

    def _energy_sample(self, context: str) -> dict[str, str]:
        return {
            "value": str(int(self.meter_wh)),
            "context": context,
            "measurand": "Energy.Active.Import.Register",
            "location": "Outlet",
            "unit": "Wh",
        }

    async def send_meter_values(self) -> None:
        if self.transaction_id is None:
            return
        power = self.advance_meter()
        values = [
            self._energy_sample("Sample.Periodic"),
            {
                "value": str(int(power)),
                "context": "Sample.Periodic",
                "measurand": "Power.Active.Import",
                "location": "Outlet",
                "unit": "W",
            },
        ]
        self.stats.sampled_values_sent += len(values)
        response = await self.timed_call(
            call.MeterValues(
                connector_id=CONNECTOR_ID,
                transaction_id=self.transaction_id,
                meter_value=[{"timestamp": now_iso(), "sampledValue": values}],
            )
        )
        if response is not None:
            self.stats.sampled_values_acked += len(values)

    async def begin_transaction(self, id_tag: str, *, authorize: bool) -> None:
        if authorize:
            response = await self.timed_call(call.Authorize(id_tag=id_tag))
            if response is None:
                return
            status = response.id_tag_info.get("status")
            if status != AuthorizationStatus.accepted:
                self.stats.error(AUTHORIZE_REJECTED, f"{self.id} Authorize {id_tag}: {status}")
                return
        await self.send_status(ChargePointStatus.preparing)
        meter_start = int(self.meter_wh)
        response = await self.timed_call(
            call.StartTransaction(
                connector_id=CONNECTOR_ID,
                id_tag=id_tag,
                meter_start=meter_start,
                timestamp=now_iso(),
            )
        )
        if response is None:
            await self.send_status(ChargePointStatus.available)
            return
        status = response.id_tag_info.get("status")
        if status != AuthorizationStatus.accepted:
            # A real charger stops a transaction the central system did not accept.
            self.stats.error(START_REJECTED, f"{self.id} StartTransaction {id_tag}: {status}")
            self.transaction_id = response.transaction_id
            self.meter_start = meter_start
            await self.end_transaction(Reason.de_authorized)
            return
        self.transaction_id = response.transaction_id
        self.meter_start = meter_start
        self.id_tag = id_tag
        self.stats.transactions_started += 1
        self.last_sample_at = time.monotonic()
        self.say(f"transaction {self.transaction_id} started (idTag {id_tag}, "
                 f"{self.power_w / 1000:g} kW)")
        await self.send_status(ChargePointStatus.charging)

    async def end_transaction(self, reason: str) -> None:
        if self.transaction_id is None:
            return
        self.advance_meter()
        meter_stop = int(self.meter_wh)
        transaction_data = [
            {
                "timestamp": now_iso(),
                "sampledValue": [
                    {**self._energy_sample("Transaction.End"), "value": str(meter_stop)},
                    {
                        "value": str(meter_stop - self.meter_start),
                        "context": "Transaction.End",
                        "measurand": "Energy.Active.Import.Interval",
                        "location": "Outlet",
                        "unit": "Wh",
                    },
                ],
            }
        ]
        self.stats.transaction_data_values_sent += 2
        transaction_id, self.transaction_id = self.transaction_id, None
        await self.send_status(ChargePointStatus.finishing)
        response = await self.timed_call(
            call.StopTransaction(
                meter_stop=meter_stop,
                timestamp=now_iso(),
                transaction_id=transaction_id,
                reason=reason,
                id_tag=self.id_tag if reason == Reason.local else None,
                transaction_data=transaction_data,
            )
        )
        if response is not None:
            self.stats.transactions_stopped += 1
        self.say(f"transaction {transaction_id} stopped ({reason}), "
                 f"{(meter_stop - self.meter_start) / 1000:.3f} kWh")
        await self.send_status(ChargePointStatus.available)

    async def begin_requested_transaction(self) -> bool:
        if self.start_requested is None:
            return False
        id_tag, self.start_requested = self.start_requested, None
        if self.transaction_id is not None:
            return False
        await self.begin_transaction(id_tag, authorize=False)
        return True

    async def send_heartbeat(self) -> None:
        await self.timed_call(call.Heartbeat())

    async def send_triggered(self, message: str) -> None:
        if message == MessageTrigger.heartbeat:
            await self.send_heartbeat()
        elif message == MessageTrigger.status_notification:
            await self.send_status(self.connector_status)
        elif message == MessageTrigger.meter_values:
            await self.send_meter_values()
        elif message == MessageTrigger.boot_notification:
            await self.timed_call(
                call.BootNotification(
                    charge_point_model=MODEL, charge_point_vendor=VENDOR, firmware_version=FIRMWARE
                )
            )

    async def run_session(self, end_at: float) -> None:
        """The station's life on an open connection, until loop time `end_at`."""
        boot = await self.timed_call(
            call.BootNotification(
                charge_point_model=MODEL,
                charge_point_vendor=VENDOR,
                charge_point_serial_number=f"SN-{self.id}",
                firmware_version=FIRMWARE,
            )
        )
        if boot is None:
            return
        if boot.status != RegistrationStatus.accepted:
            self.stats.error(BOOT_REJECTED, f"{self.id} BootNotification: {boot.status}")
            return
        self.stats.stations_booted += 1
        heartbeat_interval = self.config.heartbeat_interval or boot.interval or 300
        await self.send_heartbeat()  # clock sync, as many chargers do after boot
        await self.send_status(ChargePointStatus.available, connector_id=0)
        await self.send_status(ChargePointStatus.available)
        if self.config.idle:
            self.say(f"connector {CONNECTOR_ID} Available, waiting for RemoteStartTransaction")
        else:
            await self.begin_transaction(self.config.id_tag, authorize=True)

        await self.charge_until(end_at, heartbeat_interval)
        await self.end_transaction(Reason.local)

    async def car_full(self) -> None:
        """The car stops drawing; the driver unplugs it: SuspendedEV, then EVDisconnected."""
        self.advance_meter()
        self.say("car full")
        await self.send_meter_values()
        await self.send_status(ChargePointStatus.suspended_ev)
        await self.end_transaction(Reason.ev_disconnected)

    # calls the central system sends us ---------------------------------------------------------

    def _request(self, action: str) -> None:
        self.stats.server_calls[action] += 1

    @on(Action.remote_stop_transaction)
    def on_remote_stop_transaction(self, transaction_id: int, **kwargs: Any):
        self._request("RemoteStopTransaction")
        if self.transaction_id is not None and transaction_id == self.transaction_id:
            return call_result.RemoteStopTransaction(status=RemoteStartStopStatus.accepted)
        return call_result.RemoteStopTransaction(status=RemoteStartStopStatus.rejected)

    @after(Action.remote_stop_transaction)
    def after_remote_stop_transaction(self, transaction_id: int, **kwargs: Any) -> None:
        if self.transaction_id is not None and transaction_id == self.transaction_id:
            self.say(f"RemoteStopTransaction {transaction_id} accepted")
            self.stop_requested = Reason.remote
            self.wake.set()

    @on(Action.remote_start_transaction)
    def on_remote_start_transaction(self, id_tag: str, **kwargs: Any):
        self._request("RemoteStartTransaction")
        connector_id = kwargs.get("connector_id", CONNECTOR_ID)
        if self.transaction_id is None and connector_id == CONNECTOR_ID:
            self.say(f"RemoteStartTransaction (idTag {id_tag}) accepted")
            self.start_requested = id_tag
            self.wake.set()
            return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted)
        self.say(f"RemoteStartTransaction on connector {connector_id} rejected")
        return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.rejected)

    @on(Action.reset)
    def on_reset(self, type: str, **kwargs: Any):
        self._request("Reset")
        if self.transaction_id is not None:
            self.stop_requested = Reason.hard_reset if type == ResetType.hard else Reason.soft_reset
            self.wake.set()
        return call_result.Reset(status=ResetStatus.accepted)

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str, **kwargs: Any):
        self._request("ChangeAvailability")
        if connector_id not in (0, CONNECTOR_ID):
            return call_result.ChangeAvailability(status=AvailabilityStatus.rejected)
        if type == AvailabilityType.inoperative and self.transaction_id is not None:
            return call_result.ChangeAvailability(status=AvailabilityStatus.scheduled)
        return call_result.ChangeAvailability(status=AvailabilityStatus.accepted)

    @on(Action.unlock_connector)
    def on_unlock_connector(self, connector_id: int, **kwargs: Any):
        self._request("UnlockConnector")
        if connector_id != CONNECTOR_ID:
            return call_result.UnlockConnector(status=UnlockStatus.not_supported)
        if self.transaction_id is not None:
            self.stop_requested = Reason.unlock_command
            self.wake.set()
        return call_result.UnlockConnector(status=UnlockStatus.unlocked)

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **kwargs: Any):
        self._request("GetConfiguration")
        wanted = key or list(self.configuration)
        known = [
            {"key": k, "readonly": self.configuration[k][1], "value": self.configuration[k][0]}
            for k in wanted
            if k in self.configuration
        ]
        unknown = [k for k in wanted if k not in self.configuration]
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, **kwargs: Any):
        self._request("ChangeConfiguration")
        if key not in self.configuration:
            return call_result.ChangeConfiguration(status=ConfigurationStatus.not_supported)
        if self.configuration[key][1]:
            return call_result.ChangeConfiguration(status=ConfigurationStatus.rejected)
        self.configuration[key] = (value, False)
        return call_result.ChangeConfiguration(status=ConfigurationStatus.accepted)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, **kwargs: Any):
        self._request("TriggerMessage")
        supported = (
            MessageTrigger.boot_notification,
            MessageTrigger.heartbeat,
            MessageTrigger.meter_values,
            MessageTrigger.status_notification,
        )
        if requested_message not in supported:
            return call_result.TriggerMessage(status=TriggerMessageStatus.not_implemented)
        return call_result.TriggerMessage(status=TriggerMessageStatus.accepted)

    @after(Action.trigger_message)
    def after_trigger_message(self, requested_message: str, **kwargs: Any) -> None:
        # The requested message goes out after the TriggerMessage answer, as the spec asks.
        if requested_message in (
            MessageTrigger.boot_notification,
            MessageTrigger.heartbeat,
            MessageTrigger.meter_values,
            MessageTrigger.status_notification,
        ):
            self.triggered.append(requested_message)
            self.wake.set()

    @on(Action.clear_cache)
    def on_clear_cache(self, **kwargs: Any):
        self._request("ClearCache")
        return call_result.ClearCache(status=ClearCacheStatus.accepted)

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **kwargs: Any):
        self._request("DataTransfer")
        if vendor_id != VENDOR:
            return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)
        return call_result.DataTransfer(status=DataTransferStatus.accepted, data=kwargs.get("data"))
