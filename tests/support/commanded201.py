"""Test peer: an OCPP 2.0.1 charge point (the `ocpp` library's v201 client) that answers every
command the operator API sends 2.0.1 stations, the way a test tells it to.

`behaviour[action]` picks the answer: absent, the accepting answer; "reject", the refusing
one; "error", a CALLERROR (GenericError); "silent", no answer until `release` is set (the CSMS
times out first). Every call received is recorded as (action, snake_case payload). The library
validates what we receive and what we answer against the official 2.0.1 schemas.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ocpp import exceptions as ocpp_exc
from ocpp.routing import on
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action
from websockets.asyncio.client import ClientConnection

from tests.support.stations import station
from tests.support.stations201 import Station201

# (component, variable) -> value: the device model the station reports and answers from.
DEVICE_MODEL: dict[tuple[str, str], str] = {
    ("OCPPCommCtrlr", "HeartbeatInterval"): "300",
    ("SampledDataCtrlr", "TxUpdatedInterval"): "60",
    ("AuthCtrlr", "AuthorizeRemoteStart"): "false",
    ("ChargingStation", "Model"): "Model201",
}


class CommandedStation201(Station201):
    def __init__(self, station_id: str, connection: ClientConnection) -> None:
        super().__init__(station_id, connection)
        self.behaviour: dict[str, str] = {}
        self.release = asyncio.Event()
        self.variables = dict(DEVICE_MODEL)

    async def _answer(self, action: str, payload: dict[str, Any], accepted: Any,
                      rejected: Any = None) -> Any:
        self.received.append((action, payload))
        how = self.behaviour.get(action)
        if how == "error":
            raise ocpp_exc.GenericError(description=f"the test station refuses {action}")
        if how == "silent":
            await self.release.wait()
        return rejected if how == "reject" and rejected is not None else accepted

    @on(Action.reset)
    async def on_reset(self, **kwargs: Any) -> call_result.Reset:
        return await self._answer("Reset", kwargs, call_result.Reset(status="Accepted"),
                                  call_result.Reset(status="Rejected"))

    @on(Action.unlock_connector)
    async def on_unlock(self, **kwargs: Any) -> call_result.UnlockConnector:
        return await self._answer("UnlockConnector", kwargs,
                                  call_result.UnlockConnector(status="Unlocked"),
                                  call_result.UnlockConnector(status="UnlockFailed"))

    @on(Action.change_availability)
    async def on_change_availability(self, **kwargs: Any) -> call_result.ChangeAvailability:
        return await self._answer("ChangeAvailability", kwargs,
                                  call_result.ChangeAvailability(status="Accepted"),
                                  call_result.ChangeAvailability(status="Rejected"))

    @on(Action.trigger_message)
    async def on_trigger(self, **kwargs: Any) -> call_result.TriggerMessage:
        return await self._answer("TriggerMessage", kwargs,
                                  call_result.TriggerMessage(status="Accepted"),
                                  call_result.TriggerMessage(status="Rejected"))

    @on(Action.get_variables)
    async def on_get_variables(self, get_variable_data: list[dict[str, Any]], **kwargs: Any,
                               ) -> call_result.GetVariables:
        results = []
        for item in get_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            result = {"component": item["component"], "variable": item["variable"],
                      "attribute_status": "Accepted" if key in self.variables
                      else "UnknownVariable"}
            if key in self.variables:
                result["attribute_value"] = self.variables[key]
            results.append(result)
        rejected = [{**r, "attribute_status": "Rejected"} for r in results]
        for r in rejected:
            r.pop("attribute_value", None)
        return await self._answer(
            "GetVariables", {"get_variable_data": get_variable_data, **kwargs},
            call_result.GetVariables(get_variable_result=results),
            call_result.GetVariables(get_variable_result=rejected))

    @on(Action.set_variables)
    async def on_set_variables(self, set_variable_data: list[dict[str, Any]], **kwargs: Any,
                               ) -> call_result.SetVariables:
        results = []
        refuse = self.behaviour.get("SetVariables") == "reject"
        for item in set_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            status = "Rejected" if refuse else \
                "Accepted" if key in self.variables else "UnknownVariable"
            if status == "Accepted":
                self.variables[key] = item["attribute_value"]
            results.append({"component": item["component"], "variable": item["variable"],
                            "attribute_status": status})
        return await self._answer(
            "SetVariables", {"set_variable_data": set_variable_data, **kwargs},
            call_result.SetVariables(set_variable_result=results))

    @on(Action.get_base_report)
    async def on_get_base_report(self, **kwargs: Any) -> call_result.GetBaseReport:
        return await self._answer("GetBaseReport", kwargs,
                                  call_result.GetBaseReport(status="Accepted"),
                                  call_result.GetBaseReport(status="NotSupported"))

    @on(Action.clear_cache)
    async def on_clear_cache(self, **kwargs: Any) -> call_result.ClearCache:
        return await self._answer("ClearCache", kwargs, call_result.ClearCache(status="Accepted"),
                                  call_result.ClearCache(status="Rejected"))

    @on(Action.get_transaction_status)
    async def on_get_transaction_status(self, **kwargs: Any,
                                        ) -> call_result.GetTransactionStatus:
        ongoing = kwargs.get("transaction_id") == "TX-1"
        return await self._answer(
            "GetTransactionStatus", kwargs,
            call_result.GetTransactionStatus(messages_in_queue=False,
                                             ongoing_indicator=ongoing))

    @on(Action.data_transfer)
    async def on_data_transfer(self, **kwargs: Any) -> call_result.DataTransfer:
        return await self._answer("DataTransfer", kwargs,
                                  call_result.DataTransfer(status="Accepted", data="pong"),
                                  call_result.DataTransfer(status="UnknownVendorId"))

    @on(Action.request_start_transaction)
    async def on_request_start(self, **kwargs: Any) -> call_result.RequestStartTransaction:
        return await self._answer("RequestStartTransaction", kwargs,
                                  call_result.RequestStartTransaction(status="Accepted"),
                                  call_result.RequestStartTransaction(status="Rejected"))

    @on(Action.request_stop_transaction)
    async def on_request_stop(self, **kwargs: Any) -> call_result.RequestStopTransaction:
        return await self._answer("RequestStopTransaction", kwargs,
                                  call_result.RequestStopTransaction(status="Accepted"),
                                  call_result.RequestStopTransaction(status="Rejected"))

    # what the station sends ------------------------------------------------------------------
    async def report(self, request_id: int, parts: list[list[dict[str, Any]]],
                     generated_at: str = "2026-11-22T10:00:00Z") -> None:
        """Send a report as NotifyReport parts (seqNo 0.., tbc on all but the last)."""
        for seq_no, report_data in enumerate(parts):
            await self.call(call.NotifyReport(
                request_id=request_id, generated_at=generated_at, seq_no=seq_no,
                tbc=seq_no < len(parts) - 1, report_data=report_data or None))


def reported(component: str, variable: str, value: str, *, mutability: str = "ReadWrite",
             evse_id: int | None = None, data_type: str = "string",
             unit: str | None = None) -> dict[str, Any]:
    """One ReportDataType item (snake_case, as the library's call dataclasses take it)."""
    item: dict[str, Any] = {
        "component": {"name": component},
        "variable": {"name": variable},
        "variable_attribute": [{"type": "Actual", "value": value, "mutability": mutability}],
        "variable_characteristics": {"data_type": data_type, "supports_monitoring": False},
    }
    if evse_id is not None:
        item["component"]["evse"] = {"id": evse_id}
    if unit is not None:
        item["variable_characteristics"]["unit"] = unit
    return item


@contextlib.asynccontextmanager
async def commanded201(url: str, station_id: str) -> AsyncIterator[CommandedStation201]:
    """Connect a CommandedStation201 over `ocpp2.0.1` and boot it."""
    async with station(url, station_id, subprotocols=["ocpp2.0.1"],
                       cls=CommandedStation201) as cp:
        assert cp._connection.subprotocol == "ocpp2.0.1"
        await cp.boot()
        yield cp
