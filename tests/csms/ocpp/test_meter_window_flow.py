"""`ocpp.meter_commit_window` with real 1.6 and 2.0.1 stations over real websockets.

MeterValues are answered before their values are committed; the operator API, a stop and a
shutdown each find them stored; 2.0.1 TransactionEvents stay stored before they are answered.
"Committed" is read from the SQLite file by another connection, as a restart would see it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from tests.conftest import make_settings
from tests.support.stations import station
from tests.support.stations201 import station201
from tests.support.wait import eventually

T0 = "2026-11-22T10:00:00Z"
LONG = "3600"  # no test reaches it: only reads, stops and the shutdown write


def committed(path: str) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT value FROM meter_values ORDER BY rowid")]


def reading(wh: int, minute: int) -> dict[str, Any]:
    return {"timestamp": f"2026-11-22T10:{minute:02d}:00Z", "sampledValue": [
        {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}


async def api(server: TestServer, path: str) -> Any:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{server.host}:{server.port}/api{path}") as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def test_1_6_values_are_stored_before_any_read_or_stop_and_at_shutdown(
        tmp_path: Path, start_server: Callable[..., Any]) -> None:
    settings = make_settings(tmp_path, CSMS_OCPP__METER_COMMIT_WINDOW=LONG)
    db = settings.store.sqlite_path
    server = await start_server(settings)
    url = f"ws://{server.host}:{server.port}/ocpp"
    async with station(url, "CP-W16") as cp:
        await cp.boot()
        start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="TAG",
                                                      meter_start=1000, timestamp=T0))
        tx = start.transaction_id
        for minute, wh in ((1, 1100), (2, 1250), (3, 1400)):
            await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx,
                                             meter_value=[reading(wh, minute)]))
        assert committed(db) == []  # all three answered, none committed yet

        running = await api(server, f"/transactions/{tx}")
        assert running["energyWh"] == 400
        assert [v["value"] for v in running["meterValues"]] == ["1100", "1250", "1400"]
        assert committed(db) == ["1100", "1250", "1400"]

        await cp.call(call16.MeterValues(connector_id=1, transaction_id=tx,
                                         meter_value=[reading(1600, 4)]))
        await cp.call(call16.StopTransaction(meter_stop=1700, timestamp="2026-11-22T10:05:00Z",
                                             transaction_id=tx, reason="Local"))
        assert committed(db) == ["1100", "1250", "1400", "1600"]  # before the stop

        await cp.call(call16.MeterValues(connector_id=1, meter_value=[reading(5, 6)]))
        assert committed(db)[-1] == "1600"
    await server.close()
    assert committed(db) == ["1100", "1250", "1400", "1600", "5"]  # the shutdown wrote it


async def test_2_0_1_meter_values_wait_and_transaction_events_do_not(
        tmp_path: Path, start_server: Callable[..., Any]) -> None:
    settings = make_settings(tmp_path, CSMS_OCPP__METER_COMMIT_WINDOW=LONG)
    db = settings.store.sqlite_path
    server = await start_server(settings)
    url = f"ws://{server.host}:{server.port}/ocpp"
    async with station201(url, "CP-W201") as cp:
        await cp.boot()
        await cp.call(call201.MeterValues(evse_id=1, meter_value=[{
            "timestamp": T0, "sampled_value": [{"value": 7.5, "measurand": "Power.Active.Import",
                                                "unit_of_measure": {"unit": "kW"}}]}]))
        assert committed(db) == []
        await cp.event("Started", "tx-w", 0, timestamp=T0, wh=2000, id_token="RFID-W")
        await cp.event("Updated", "tx-w", 1, timestamp="2026-11-22T10:10:00Z", wh=2600)
        # each event's values are committed before its answer; the earlier MeterValues first
        assert committed(db) == ["7.5", "2000", "2600"]
        await cp.call(call201.MeterValues(evse_id=1, meter_value=[{
            "timestamp": "2026-11-22T10:11:00Z", "sampled_value": [{"value": 3.25}]}]))
        await cp.event("Ended", "tx-w", 2, timestamp="2026-11-22T10:20:00Z", wh=3000,
                       stopped_reason="EVDisconnected", trigger_reason="EVCommunicationLost")
        tx = await api(server, "/transactions/tx-w?stationId=CP-W201")
        assert (tx["energyWh"], [v["value"] for v in tx["meterValues"]]) == \
            (1000, ["2000", "2600", "3000"])
        await cp.call(call201.MeterValues(evse_id=1, meter_value=[{
            "timestamp": "2026-11-22T10:21:00Z", "sampled_value": [{"value": 4.5}]}]))
    await server.close()
    assert committed(db) == ["7.5", "2000", "2600", "3.25", "3000", "4.5"]


async def test_values_are_written_within_the_window_without_any_read(
        tmp_path: Path, start_server: Callable[..., Any]) -> None:
    settings = make_settings(tmp_path, CSMS_OCPP__METER_COMMIT_WINDOW="0.05")
    db = settings.store.sqlite_path
    server = await start_server(settings)
    url = f"ws://{server.host}:{server.port}/ocpp"
    async with station(url, "CP-WT") as cp:
        await cp.boot()
        start = await cp.call(call16.StartTransaction(connector_id=1, id_tag="TAG",
                                                      meter_start=0, timestamp=T0))
        for minute in range(1, 6):
            await cp.call(call16.MeterValues(connector_id=1, transaction_id=start.transaction_id,
                                             meter_value=[reading(minute * 100, minute)]))
        await eventually(lambda: committed(db), lambda rows: len(rows) == 5)
        assert committed(db) == ["100", "200", "300", "400", "500"]
