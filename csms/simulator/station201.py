"""One simulated OCPP 2.0.1 charging station: an `ocpp.v201.ChargePoint` client with one EVSE
(id 1) and one connector that acts like hardware.

It boots (BootNotification, Heartbeat, StatusNotification for EVSE 1 connector 1), and either
charges at once (Authorize, then TransactionEvent Started / Updated with meter values every
`meter_interval` / Ended, seqNo counting from 0 per transaction) or, idle, waits for
RequestStartTransaction. It answers what a CSMS sends a 2.0.1 station: RequestStart/Stop,
Reset, UnlockConnector, ChangeAvailability, TriggerMessage, Get/SetVariables on a small device
model, GetBaseReport (the report follows as NotifyReport parts), ClearCache,
GetTransactionStatus and DataTransfer.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import Any

from ocpp.routing import after, on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action

from csms.simulator.hardware import FIRMWARE, MODEL, VENDOR, CountingConnection, Hardware, now_iso
from csms.simulator.results import (
    AUTHORIZE_REJECTED,
    BOOT_REJECTED,
    START_REJECTED,
    SimulationConfig,
    Stats,
)

EVSE_ID = 1
CONNECTOR_ID = 1
REPORT_PART_SIZE = 4  # variables per NotifyReport, so a report comes in several parts
# The trigger reason a TransactionEvent Ended carries for each stop reason.
STOP_TRIGGERS = {"Remote": "RemoteStop", "Local": "StopAuthorized", "EVDisconnected": "EVDeparted",
                 "ImmediateReset": "ResetCommand", "DeAuthorized": "Deauthorized"}
TRIGGERABLE = ("BootNotification", "Heartbeat", "StatusNotification", "MeterValues",
               "TransactionEvent")


@dataclass
class Variable:
    value: str
    mutability: str = "ReadWrite"
    data_type: str = "string"
    unit: str | None = None


def _energy(wh: float, context: str) -> dict[str, Any]:
    return {"value": int(wh), "context": context, "measurand": "Energy.Active.Import.Register",
            "location": "Outlet", "unit_of_measure": {"unit": "Wh"}}


class SimulatedStation201(Hardware, ChargePoint):
    """A 2.0.1 station with one EVSE that charges until the run ends (or until told)."""

    def __init__(self, station_id: str, connection: CountingConnection,
                 config: SimulationConfig, stats: Stats) -> None:
        super().__init__(station_id, connection, response_timeout=config.response_timeout)
        self.init_hardware(station_id, config, stats)
        self.transaction_id: str | None = None
        self.seq_no = 0
        self.numbers = itertools.count(1)
        self.id_token = {"id_token": config.id_tag, "type": "ISO14443"}
        self.connector_status = "Available"
        self.operative = True
        # Set by handlers of server calls, acted on by the session loop.
        self.wake = asyncio.Event()
        self.stop_requested: str | None = None  # stop reason
        self.start_requested: tuple[dict[str, Any], int] | None = None  # idToken, remoteStartId
        self.triggered: list[str] = []
        self.reports: list[int] = []  # requestIds of GetBaseReports to send
        # (component, evseId or None, variable) -> value: the device model
        self.variables: dict[tuple[str, int | None, str], Variable] = {
            ("ChargingStation", None, "Model"): Variable(MODEL, "ReadOnly"),
            ("ChargingStation", None, "VendorName"): Variable(VENDOR, "ReadOnly"),
            ("ChargingStation", None, "FirmwareVersion"): Variable(FIRMWARE, "ReadOnly"),
            ("OCPPCommCtrlr", None, "HeartbeatInterval"): Variable("300", data_type="integer",
                                                                   unit="s"),
            ("SampledDataCtrlr", None, "TxUpdatedInterval"): Variable(
                str(int(config.meter_interval) or 1), data_type="integer", unit="s"),
            ("SampledDataCtrlr", None, "TxUpdatedMeasurands"): Variable(
                "Energy.Active.Import.Register,Power.Active.Import", data_type="MemberList"),
            ("AuthCtrlr", None, "AuthorizeRemoteStart"): Variable("false", data_type="boolean"),
            ("TxCtrlr", None, "EVConnectionTimeOut"): Variable("60", data_type="integer",
                                                               unit="s"),
            ("EVSE", EVSE_ID, "Power"): Variable(str(int(self.power_w)), "ReadOnly", "decimal",
                                                 "W"),
            ("Connector", EVSE_ID, "ConnectorType"): Variable("cType2", "ReadOnly",
                                                              "OptionList"),
        }

    # calls we send ---------------------------------------------------------------------------

    async def send_status(self, status: str) -> None:
        self.connector_status = status
        await self.timed_call(call.StatusNotification(
            timestamp=now_iso(), connector_status=status, evse_id=EVSE_ID,
            connector_id=CONNECTOR_ID))

    async def transaction_event(self, event_type: str, trigger: str,
                                samples: list[dict[str, Any]], **extra: Any) -> Any | None:
        assert self.transaction_id is not None
        info = {"transaction_id": self.transaction_id, **extra.pop("info", {})}
        payload = call.TransactionEvent(
            event_type=event_type, timestamp=now_iso(), trigger_reason=trigger,
            seq_no=self.seq_no, transaction_info=info,
            meter_value=[{"timestamp": now_iso(), "sampled_value": samples}], **extra)
        self.seq_no += 1
        return await self.timed_call(payload)

    async def send_meter_values(self) -> None:
        if self.transaction_id is None:
            return
        power = self.advance_meter()
        samples = [_energy(self.meter_wh, "Sample.Periodic"),
                   {"value": int(power), "context": "Sample.Periodic",
                    "measurand": "Power.Active.Import", "location": "Outlet",
                    "unit_of_measure": {"unit": "W"}}]
        self.stats.sampled_values_sent += len(samples)
        if await self.transaction_event("Updated", "MeterValuePeriodic", samples) is not None:
            self.stats.sampled_values_acked += len(samples)

    async def begin_transaction(self, id_token: dict[str, Any], *, authorize: bool,
                                remote_start_id: int | None = None) -> None:
        if authorize:
            response = await self.timed_call(call.Authorize(id_token=id_token))
            if response is None:
                return
            status = response.id_token_info.get("status")
            if status != "Accepted":
                self.stats.error(AUTHORIZE_REJECTED,
                                 f"{self.id} Authorize {id_token['id_token']}: {status}")
                return
        await self.send_status("Occupied")
        self.transaction_id = f"{self.id}-{int(time.time())}-{next(self.numbers)}"[-36:]
        self.seq_no = 0
        self.meter_start = int(self.meter_wh)
        self.id_token = id_token
        info: dict[str, Any] = {"charging_state": "Charging"}
        if remote_start_id is not None:
            info["remote_start_id"] = remote_start_id
        response = await self.transaction_event(
            "Started", "RemoteStart" if remote_start_id is not None else "Authorized",
            [_energy(self.meter_wh, "Transaction.Begin")], info=info, id_token=id_token,
            evse={"id": EVSE_ID, "connector_id": CONNECTOR_ID})
        self.last_sample_at = time.monotonic()
        status = ((response.id_token_info or {}).get("status") if response is not None
                  else None)
        if response is not None and status not in (None, "Accepted"):
            # A real station stops a transaction the CSMS did not accept.
            self.stats.error(START_REJECTED, f"{self.id} TransactionEvent Started: {status}")
            await self.end_transaction("DeAuthorized")
            return
        self.stats.transactions_started += 1
        self.say(f"transaction {self.transaction_id} started (idToken {id_token['id_token']}, "
                 f"{self.power_w / 1000:g} kW)")

    async def end_transaction(self, reason: str) -> None:
        if self.transaction_id is None:
            return
        self.advance_meter()
        self.stats.transaction_data_values_sent += 1
        response = await self.transaction_event(
            "Ended", STOP_TRIGGERS.get(reason, "AbnormalCondition"),
            [_energy(self.meter_wh, "Transaction.End")],
            info={"charging_state": "Idle", "stopped_reason": reason},
            id_token=self.id_token if reason == "Local" else None)
        if response is not None:
            self.stats.transactions_stopped += 1
        self.say(f"transaction {self.transaction_id} ended ({reason}), "
                 f"{(int(self.meter_wh) - self.meter_start) / 1000:.3f} kWh")
        self.transaction_id = None
        await self.send_status("Available")

    async def begin_requested_transaction(self) -> bool:
        if self.start_requested is None:
            return False
        (id_token, remote_start_id), self.start_requested = self.start_requested, None
        if self.transaction_id is not None:
            return False
        await self.begin_transaction(id_token, authorize=False, remote_start_id=remote_start_id)
        return True

    async def send_heartbeat(self) -> None:
        await self.timed_call(call.Heartbeat())

    async def send_queued(self) -> None:
        await super().send_queued()
        while self.reports:
            await self.send_report(self.reports.pop(0))

    async def send_triggered(self, message: str) -> None:
        if message == "Heartbeat":
            await self.send_heartbeat()
        elif message == "StatusNotification":
            await self.send_status(self.connector_status)
        elif message in ("MeterValues", "TransactionEvent"):
            await self.send_meter_values()
        elif message == "BootNotification":
            await self.boot("Triggered")

    async def send_report(self, request_id: int) -> None:
        """The device model as NotifyReport parts of REPORT_PART_SIZE variables each."""
        items = [self._report_item(key, variable) for key, variable in self.variables.items()]
        parts = [items[i:i + REPORT_PART_SIZE] for i in range(0, len(items), REPORT_PART_SIZE)]
        for seq_no, part in enumerate(parts):
            await self.timed_call(call.NotifyReport(
                request_id=request_id, generated_at=now_iso(), seq_no=seq_no,
                tbc=seq_no < len(parts) - 1, report_data=part))

    @staticmethod
    def _report_item(key: tuple[str, int | None, str], variable: Variable) -> dict[str, Any]:
        component, evse_id, name = key
        characteristics: dict[str, Any] = {"data_type": variable.data_type,
                                           "supports_monitoring": False}
        if variable.unit:
            characteristics["unit"] = variable.unit
        return {"component": _component(component, evse_id), "variable": {"name": name},
                "variable_attribute": [{"type": "Actual", "value": variable.value,
                                        "mutability": variable.mutability}],
                "variable_characteristics": characteristics}

    async def boot(self, reason: str) -> Any | None:
        return await self.timed_call(call.BootNotification(
            charging_station={"model": MODEL, "vendor_name": VENDOR,
                              "serial_number": f"SN-{self.id}"[:25],
                              "firmware_version": FIRMWARE},
            reason=reason))

    async def run_session(self, end_at: float) -> None:
        """The station's life on an open connection, until loop time `end_at`."""
        boot = await self.boot("PowerUp")
        if boot is None:
            return
        if boot.status != "Accepted":
            self.stats.error(BOOT_REJECTED, f"{self.id} BootNotification: {boot.status}")
            return
        self.stats.stations_booted += 1
        heartbeat_interval = self.config.heartbeat_interval or boot.interval or 300
        await self.send_heartbeat()
        await self.send_status("Available")
        if self.config.idle:
            self.say(f"EVSE {EVSE_ID} Available, waiting for RequestStartTransaction")
        else:
            await self.begin_transaction(self.id_token, authorize=True)

        await self.charge_until(end_at, heartbeat_interval)
        await self.end_transaction("Local")

    async def car_full(self) -> None:
        """The car stops drawing and the driver unplugs it: EVDisconnected."""
        self.advance_meter()
        self.say("car full")
        await self.send_meter_values()
        await self.end_transaction("EVDisconnected")

    # calls the central system sends us ---------------------------------------------------------

    def _request(self, action: str) -> None:
        self.stats.server_calls[action] += 1

    def _act(self) -> None:
        self.wake.set()

    @on(Action.request_start_transaction)
    def on_request_start(self, id_token: dict[str, Any], remote_start_id: int,
                         **kwargs: Any) -> call_result.RequestStartTransaction:
        self._request("RequestStartTransaction")
        evse_id = kwargs.get("evse_id", EVSE_ID)
        if self.transaction_id is not None or evse_id != EVSE_ID or not self.operative:
            self.say(f"RequestStartTransaction on EVSE {evse_id} rejected")
            return call_result.RequestStartTransaction(status="Rejected",
                                                       transaction_id=self.transaction_id)
        self.say(f"RequestStartTransaction (idToken {id_token['id_token']}, remoteStartId "
                 f"{remote_start_id}) accepted")
        self.start_requested = (id_token, remote_start_id)
        self._act()
        return call_result.RequestStartTransaction(status="Accepted")

    @on(Action.request_stop_transaction)
    def on_request_stop(self, transaction_id: str,
                        **kwargs: Any) -> call_result.RequestStopTransaction:
        self._request("RequestStopTransaction")
        if self.transaction_id is None or transaction_id != self.transaction_id:
            return call_result.RequestStopTransaction(status="Rejected")
        self.say(f"RequestStopTransaction {transaction_id} accepted")
        self.stop_requested = "Remote"
        self._act()
        return call_result.RequestStopTransaction(status="Accepted")

    @on(Action.reset)
    def on_reset(self, type: str, **kwargs: Any) -> call_result.Reset:
        self._request("Reset")
        if self.transaction_id is not None:
            if type == "OnIdle":  # after the transaction, as the spec allows
                return call_result.Reset(status="Scheduled")
            self.stop_requested = "ImmediateReset"
            self._act()
        return call_result.Reset(status="Accepted")

    @on(Action.unlock_connector)
    def on_unlock_connector(self, evse_id: int, connector_id: int,
                            **kwargs: Any) -> call_result.UnlockConnector:
        self._request("UnlockConnector")
        if (evse_id, connector_id) != (EVSE_ID, CONNECTOR_ID):
            return call_result.UnlockConnector(status="UnknownConnector")
        if self.transaction_id is not None:
            return call_result.UnlockConnector(status="OngoingAuthorizedTransaction")
        return call_result.UnlockConnector(status="Unlocked")

    @on(Action.change_availability)
    def on_change_availability(self, operational_status: str,
                               **kwargs: Any) -> call_result.ChangeAvailability:
        self._request("ChangeAvailability")
        evse_id = (kwargs.get("evse") or {}).get("id", 0)
        if evse_id not in (0, EVSE_ID):
            return call_result.ChangeAvailability(status="Rejected")
        if operational_status == "Inoperative" and self.transaction_id is not None:
            return call_result.ChangeAvailability(status="Scheduled")
        self.operative = operational_status == "Operative"
        return call_result.ChangeAvailability(status="Accepted")

    @after(Action.change_availability)
    def after_change_availability(self, operational_status: str, **kwargs: Any) -> None:
        if self.transaction_id is None:
            self.connector_status = "Available" if self.operative else "Unavailable"
            self.triggered.append("StatusNotification")  # a station reports its new state
            self._act()

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str,
                           **kwargs: Any) -> call_result.TriggerMessage:
        self._request("TriggerMessage")
        if requested_message not in TRIGGERABLE:
            return call_result.TriggerMessage(status="NotImplemented")
        return call_result.TriggerMessage(status="Accepted")

    @after(Action.trigger_message)
    def after_trigger_message(self, requested_message: str, **kwargs: Any) -> None:
        # The requested message goes out after the TriggerMessage answer, as the spec asks.
        if requested_message in TRIGGERABLE:
            self.triggered.append(requested_message)
            self._act()

    @on(Action.get_variables)
    def on_get_variables(self, get_variable_data: list[dict[str, Any]],
                         **kwargs: Any) -> call_result.GetVariables:
        self._request("GetVariables")
        return call_result.GetVariables(
            get_variable_result=[self._get(item) for item in get_variable_data])

    def _get(self, item: dict[str, Any]) -> dict[str, Any]:
        status, variable = self._lookup(item)
        result = {"component": item["component"], "variable": item["variable"],
                  "attribute_status": status}
        if variable is not None and item.get("attribute_type", "Actual") != "Actual":
            result["attribute_status"] = "NotSupportedAttributeType"
        elif variable is not None:
            result["attribute_type"] = "Actual"
            result["attribute_value"] = variable.value
        return result

    @on(Action.set_variables)
    def on_set_variables(self, set_variable_data: list[dict[str, Any]],
                         **kwargs: Any) -> call_result.SetVariables:
        self._request("SetVariables")
        results = []
        for item in set_variable_data:
            status, variable = self._lookup(item)
            if variable is not None:
                if variable.mutability == "ReadOnly":
                    status = "Rejected"
                elif item.get("attribute_type", "Actual") != "Actual":
                    status = "NotSupportedAttributeType"
                else:
                    variable.value = item["attribute_value"]
            results.append({"component": item["component"], "variable": item["variable"],
                            "attribute_status": status})
        return call_result.SetVariables(set_variable_result=results)

    def _lookup(self, item: dict[str, Any]) -> tuple[str, Variable | None]:
        component = item["component"]
        evse_id = (component.get("evse") or {}).get("id")
        found = self.variables.get((component["name"], evse_id, item["variable"]["name"]))
        if found is not None:
            return "Accepted", found
        if any(c == component["name"] and e == evse_id for c, e, _ in self.variables):
            return "UnknownVariable", None
        return "UnknownComponent", None

    @on(Action.get_base_report)
    def on_get_base_report(self, request_id: int, report_base: str,
                           **kwargs: Any) -> call_result.GetBaseReport:
        self._request("GetBaseReport")
        return call_result.GetBaseReport(status="Accepted")

    @after(Action.get_base_report)
    def after_get_base_report(self, request_id: int, **kwargs: Any) -> None:
        self.reports.append(request_id)  # the report follows the answer
        self._act()

    @on(Action.clear_cache)
    def on_clear_cache(self, **kwargs: Any) -> call_result.ClearCache:
        self._request("ClearCache")
        return call_result.ClearCache(status="Accepted")

    @on(Action.get_transaction_status)
    def on_get_transaction_status(self, **kwargs: Any) -> call_result.GetTransactionStatus:
        self._request("GetTransactionStatus")
        asked = kwargs.get("transaction_id")
        if asked is None:
            return call_result.GetTransactionStatus(messages_in_queue=False)
        return call_result.GetTransactionStatus(
            messages_in_queue=False, ongoing_indicator=asked == self.transaction_id)

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> call_result.DataTransfer:
        self._request("DataTransfer")
        if vendor_id != VENDOR:
            return call_result.DataTransfer(status="UnknownVendorId")
        return call_result.DataTransfer(status="Accepted", data=kwargs.get("data"))


def _component(name: str, evse_id: int | None) -> dict[str, Any]:
    return {"name": name} if evse_id is None else {"name": name, "evse": {"id": evse_id}}
