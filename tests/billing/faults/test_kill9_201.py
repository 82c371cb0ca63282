"""kill -9 at each billing step of a paid card session on an OCPP 2.0.1 station (issue 11).

The same rig as test_kill9 (a real `csms serve` on the fake Pagar.me, SIGKILLed at one step and
restarted on the same data), with the `ocpp` library's v201 client as the charger: it starts on
RequestStartTransaction with a Started TransactionEvent (idToken and remoteStartId), meters with
Updated and stops with Ended; a TransactionEvent that was never answered is sent again with
the same seqNo after the reconnect, as a 2.0.1 station's queue of transaction messages does.
The session must bill exactly once, with the cost of the register readings: the hold, the
capture of 17.00 for 10 kWh, nothing PENDING, no second capture or void at the gateway.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ocpp.charge_point import ChargePoint
from ocpp.v201 import call_result

from tests.billing.faults.test_kill9 import (
    COST,
    Rig,
    begin_card_session,
    effects,
    no_pending_anywhere,
    open_rig,
)
from tests.billing.flows import start_body
from tests.support.stations201 import Station201, station201

STATION = "EVSE-001"  # start_body's chargePointId


class Rig201(Rig):
    start_action = "RequestStartTransaction"

    async def connect(self) -> ChargePoint:
        self.stack = contextlib.AsyncExitStack()
        cp = await self.stack.enter_async_context(station201(self.csms.ws_url, STATION))
        self.cp = cp
        cp.received = self.received
        await cp.boot()
        await cp.status(1, 1, "Available")
        return cp

    async def event(self, step: str, event_type: str, seq_no: int, at: str, wh: int,
                    **extra: Any) -> call_result.TransactionEvent:
        """One TransactionEvent of transaction TX-K9 as step `step`; sent again (same seqNo)
        on the new connection when the server died before answering it."""
        for name in (step, f"{step}_resent"):
            answer = await self.step(name, self._send(event_type, seq_no, at, wh, extra))
            if answer is not None:
                return answer
        raise AssertionError(f"{event_type} was never answered")

    async def _send(self, event_type: str, seq_no: int, at: str, wh: int,
                    extra: dict[str, Any]) -> call_result.TransactionEvent:
        assert isinstance(self.cp, Station201)
        return await self.cp.event(event_type, "TX-K9", seq_no, timestamp=at, wh=wh, **extra)


@pytest.fixture
async def rig(request: pytest.FixtureRequest, tmp_path: Path,
              aiohttp_server: Any) -> AsyncIterator[Rig201]:
    async with open_rig(request, tmp_path, aiohttp_server, Rig201) as opened:
        yield opened


# started: after /charge/start answered; tx_started, metering, ended: after the station's
# Started, Updated and Ended were answered; capture: the gateway captured, its answer never
# arrived; capture_unsent: killed just before the capture left.
POINTS = ["hold", "started", "tx_started", "metering", "ended", "capture_unsent", "capture"]


@pytest.mark.parametrize("rig", POINTS, indirect=True)
async def test_a_card_session_on_a_2_0_1_station_survives_kill9(rig: Rig201) -> None:
    begun_session = await begin_card_session(rig)
    if begun_session is None:
        return
    sid, request = begun_session

    begun = await rig.event("tx_started", "Started", 0, "2026-11-22T10:00:00Z", 0,
                            id_token=request["id_token"]["id_token"],
                            remote_start_id=request["remote_start_id"],
                            evse_id=request["evse_id"], trigger_reason="RemoteStart")
    assert begun.id_token_info["status"] == "Accepted"
    await rig.event("metering", "Updated", 1, "2026-11-22T10:10:00Z", 5000)
    await rig.event("ended", "Ended", 2, "2026-11-22T10:30:00Z", 10000,
                    trigger_reason="EVCommunicationLost", stopped_reason="EVDisconnected")

    body = await rig.settled(sid)
    no_pending_anywhere(rig, body)
    assert (body["status"], body["payment"]["status"]) == ("COMPLETED", "CAPTURED"), body
    assert (body["energyWh"], body["costCents"]) == (10000, COST)
    assert [(o["type"], o["amount"], o["status"]) for o in body["payment"]["operations"]] == [
        ("AUTHORIZE", 5000, "SUCCEEDED"), ("CAPTURE", COST, "SUCCEEDED")]
    assert effects(rig.fake) == {"orders": 1, "capture": 1, "cancel": 0}
    (charge,) = rig.fake.charges.values()
    assert charge["paid_amount"] == COST
    tx = await rig.get(f"/api/transactions/TX-K9?stationId={STATION}")
    assert (tx["ocppVersion"], tx["sessionId"], tx["energyWh"]) == ("2.0.1", sid, 10000)


@pytest.mark.parametrize("rig", ["started"], indirect=True)
async def test_a_remote_start_link_survives_a_restart_before_the_started(rig: Rig201) -> None:
    """The server dies after RequestStartTransaction was accepted; the station's Started names
    the remoteStartId alone (no idToken, as 2.0.1 allows). The link from remoteStartId to the
    session's idToken is in the store, so the restarted server still links the session and
    bills it; held only in memory, it was lost and the session voided while the car charged."""
    started = await rig.step("started", rig.post("/charge/start", start_body()))
    assert started is not None and started[0] == 200, started
    sid = started[1]["sessionId"]
    request = await rig.remote_start()
    assert request is not None and rig.csms.kills == ["started"]

    begun = await rig.event("tx_started", "Started", 0, "2026-11-22T10:00:00Z", 0,
                            remote_start_id=request["remote_start_id"],
                            evse_id=request["evse_id"], trigger_reason="RemoteStart")
    assert begun.id_token_info is None  # no idToken in the request: none in the answer
    await rig.event("ended", "Ended", 1, "2026-11-22T10:30:00Z", 10000,
                    trigger_reason="EVCommunicationLost", stopped_reason="EVDisconnected")

    body = await rig.settled(sid)
    assert (body["status"], body["payment"]["status"]) == ("COMPLETED", "CAPTURED"), body
    assert (body["energyWh"], body["costCents"]) == (10000, COST)
    assert effects(rig.fake) == {"orders": 1, "capture": 1, "cancel": 0}
