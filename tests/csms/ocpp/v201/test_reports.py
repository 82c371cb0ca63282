"""GetBaseReport end to end: the operator asks through the command endpoint, an `ocpp.v201`
station answers and sends its report in NotifyReport parts over a real websocket, and
GET /api/stations/{id}/variables shows the latest complete report."""

from __future__ import annotations

from typing import Any

import aiohttp
from ocpp.v201 import call

from tests.support.commanded201 import commanded201, reported
from tests.support.raw import raw_exchange


async def get(http_url: str, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{http_url}{path}") as resp:
            return resp.status, await resp.json()


async def get_base_report(http_url: str, station_id: str, request_id: int) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{http_url}/api/stations/{station_id}/commands/GetBaseReport",
                             json={"requestId": request_id,
                                   "reportBase": "FullInventory"}) as resp:
            assert resp.status == 200, await resp.text()


def rows(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(v["component"], v["evseId"], v["variable"], v["attributeType"], v["value"])
            for v in body["variables"]]


async def test_a_base_report_in_parts_is_shown_once_complete(ws_url: str,
                                                             http_url: str) -> None:
    async with commanded201(ws_url, "CP-R1") as cp:
        assert await get(http_url, "/api/stations/CP-R1/variables") == \
            (404, {"success": False, "error": {
                "code": "no_report", "message": "station CP-R1 has not completed a report"}})
        await get_base_report(http_url, "CP-R1", 1)
        await cp.report(1, [
            [reported("OCPPCommCtrlr", "HeartbeatInterval", "300", data_type="integer",
                      unit="s"),
             reported("ChargingStation", "Model", "Model201", mutability="ReadOnly")],
            [reported("EVSE", "Power", "22000", evse_id=1, mutability="ReadOnly",
                      data_type="decimal", unit="W")],
        ])
        status, body = await get(http_url, "/api/stations/CP-R1/variables")
        assert status == 200, body
        assert (body["stationId"], body["requestId"], body["parts"]) == ("CP-R1", 1, 2)
        assert body["generatedAt"] == "2026-11-22T10:00:00.000Z"
        assert rows(body) == [
            ("OCPPCommCtrlr", None, "HeartbeatInterval", "Actual", "300"),
            ("ChargingStation", None, "Model", "Actual", "Model201"),
            ("EVSE", 1, "Power", "Actual", "22000"),
        ]
        power = body["variables"][2]
        assert (power["mutability"], power["dataType"], power["unit"]) == \
            ("ReadOnly", "decimal", "W")

        # the operator asks again (same requestId, as operators do): the old report stays
        # until the new one has its last part
        await get_base_report(http_url, "CP-R1", 1)
        await cp.call(call.NotifyReport(
            request_id=1, generated_at="2026-11-22T11:00:00Z", seq_no=0, tbc=True,
            report_data=[reported("OCPPCommCtrlr", "HeartbeatInterval", "120")]))
        assert rows((await get(http_url, "/api/stations/CP-R1/variables"))[1])[0][4] == "300"
        await cp.call(call.NotifyReport(request_id=1, generated_at="2026-11-22T11:00:01Z",
                                        seq_no=1))  # the last part may carry no data
        status, body = await get(http_url, "/api/stations/CP-R1/variables")
        assert rows(body) == [("OCPPCommCtrlr", None, "HeartbeatInterval", "Actual", "120")]
        assert (body["parts"], body["generatedAt"]) == (2, "2026-11-22T11:00:00.000Z")


async def test_an_unfinished_report_leaves_the_last_complete_one(ws_url: str,
                                                                 http_url: str) -> None:
    async with commanded201(ws_url, "CP-R2") as cp:
        await cp.report(4, [[reported("OCPPCommCtrlr", "HeartbeatInterval", "300")]])
        await cp.report(5, [[reported("OCPPCommCtrlr", "HeartbeatInterval", "60")]])
        # report 6 sends only the first of its parts
        await cp.call(call.NotifyReport(request_id=6, generated_at="2026-11-22T11:00:00Z",
                                        seq_no=0, tbc=True,
                                        report_data=[reported("X", "Y", "Z")]))
        status, body = await get(http_url, "/api/stations/CP-R2/variables")
    assert (status, body["requestId"], rows(body)) == \
        (200, 5, [("OCPPCommCtrlr", None, "HeartbeatInterval", "Actual", "60")])


async def test_variables_of_an_unknown_station_are_404(http_url: str) -> None:
    status, body = await get(http_url, "/api/stations/NOBODY/variables")
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_a_hostile_limit_is_a_constraint_violation_not_an_internal_error(
        ws_url: str) -> None:
    template = ('[2,"nN","NotifyReport",{"requestId":1,"generatedAt":"2026-11-22T10:00:00Z",'
                '"seqNo":0,"reportData":[{"component":{"name":"C"},"variable":{"name":"V"},'
                '"variableAttribute":[{}],"variableCharacteristics":{"dataType":"decimal",'
                '"minLimit":LIMIT,"supportsMonitoring":false}}]}]')
    frames = [template.replace("nN", f"n{n}").replace("LIMIT", limit)
              for n, limit in enumerate(("1" + "0" * 400, "NaN", "1e999", "-2.5"))]
    frames.append('[2,"hb","Heartbeat",{}]')
    replies = await raw_exchange(ws_url, "CP-R3", frames, "ocpp2.0.1")
    assert [r[:3] for r in replies[:3]] == [
        [4, f"n{n}", "PropertyConstraintViolation"] for n in range(3)]
    assert replies[3] == [3, "n3", {}]
    assert replies[4][:2] == [3, "hb"]  # the connection stays usable
