"""Energy no connector can deliver in the time it reports is never captured blindly: the
session waits in REVIEW until an operator decides what is owed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.billing.flows import (
    Env,
    charge,
    hijacked,
    meter,
    ops,
    paid_pix_charging,
    ready_station,
    start_body,
    stop_at,
)
from tests.billing.flows import open_env as open_flow_env
from tests.support.stations import station
from tests.support.wait import eventually


@pytest.fixture(params=["sandbox", "pagarme"])
async def env(request: pytest.FixtureRequest, tmp_path: Path, aiohttp_server: Any,
              ) -> AsyncIterator[Env]:
    async with open_flow_env(request.param, tmp_path, aiohttp_server, {}) as env:
        yield env


async def metric(env: Env, name: str) -> str:
    async with env.http.get(env.url + "/metrics") as resp:
        text = await resp.text()
    return "\n".join(line for line in text.splitlines() if line.startswith(name))


async def test_implausible_energy_waits_for_review_and_captures_nothing(env: Env) -> None:
    sid, _ = await hijacked(env)
    body = await env.wait_session(sid, "REVIEW")
    assert body["payment"]["status"] == "AUTHORIZED"
    assert body["payment"]["capturedAmount"] == 0
    assert [o[0] for o in ops(body)] == ["AUTHORIZE"]
    listed = await env.get("/api/sessions?status=REVIEW")
    assert [s["sessionId"] for s in listed] == [sid]
    assert await metric(env, "csms_billing_implausible_energy_total") == "\n".join([
        'csms_billing_implausible_energy_total{stage="meter_sample"} 1.0',
        'csms_billing_implausible_energy_total{stage="settlement"} 1.0'])

    status, decided = await env.post(f"/api/sessions/{sid}/review",
                                     {"decision": "capture", "amountCents": 500})
    assert status == 200, decided
    assert decided["status"] == "COMPLETED"
    done = await env.wait_session(sid, "COMPLETED", "CAPTURED")
    assert done["payment"]["capturedAmount"] == 500 and done["costCents"] == 500
    again, refused = await env.post(f"/api/sessions/{sid}/review", {"decision": "release"})
    assert again == 409 and refused["error"]["code"] == "not_in_review"


async def test_an_operator_may_release_a_reviewed_session(env: Env) -> None:
    sid, _ = await hijacked(env)
    await env.wait_session(sid, "REVIEW")
    status, body = await env.post(f"/api/sessions/{sid}/review", {"decision": "capture"})
    assert status == 422 and body["error"]["field"] == "amountCents"
    status, _ = await env.post(f"/api/sessions/{sid}/review", {"decision": "release"})
    assert status == 200
    done = await env.wait_session(sid, "COMPLETED", "VOIDED")
    assert [o[0] for o in ops(done)] == ["AUTHORIZE", "VOID"]
    assert done["payment"]["capturedAmount"] == 0


async def test_a_capture_decision_never_exceeds_the_hold(env: Env) -> None:
    sid, _ = await hijacked(env, amount=800)
    await env.wait_session(sid, "REVIEW")
    await env.post(f"/api/sessions/{sid}/review", {"decision": "capture", "amountCents": 99999})
    done = await env.wait_session(sid, "COMPLETED", "CAPTURED")
    assert done["payment"]["capturedAmount"] == 800


async def test_a_reviewed_pix_session_keeps_the_payment_until_the_operator_decides(
        env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        sid, tx_id = await paid_pix_charging(env, cp)
        await cp.call(stop_at(tx_id, 900_000, "2026-11-22T10:01:00Z"))  # 900 kWh in a minute
    body = await env.wait_session(sid, "REVIEW")
    assert body["payment"]["status"] == "PAID" and body["payment"]["refundedAmount"] == 0
    await env.post(f"/api/sessions/{sid}/review", {"decision": "capture", "amountCents": 1200})
    done = await eventually(lambda: env.session(sid),
                            lambda b: b["payment"]["status"] == "PARTIALLY_REFUNDED")
    assert done["status"] == "COMPLETED"
    assert (done["payment"]["capturedAmount"], done["payment"]["refundedAmount"]) == (1200, 3800)


async def test_plausible_energy_is_captured_as_before(tmp_path: Path, aiohttp_server: Any,
                                                      ) -> None:
    # the test sends its frames within milliseconds; a real station took the 30 minutes its
    # clock says, so our receive window (plus this slack) does not bound it
    async with open_flow_env("sandbox", tmp_path, aiohttp_server,
                             {"CSMS_BILLING__RECEIVE_TIME_SLACK": "3600"}) as env:
        async with station(env.ws_url, "EVSE-001") as cp:
            await ready_station(env, cp)
            _, started = await env.post("/charge/start", start_body())
            sid = started["sessionId"]
            tx_id = await charge(env, cp, sid)
            # 175 kWh in 30 minutes is 350 kW: the most a connector may deliver, not more
            await cp.call(stop_at(tx_id, 175_000, "2026-11-22T10:30:00Z"))
        done = await env.wait_session(sid, "COMPLETED", "CAPTURED")
    assert done["payment"]["capturedAmount"] == 5000


async def test_a_station_clock_running_fast_cannot_stretch_the_time(env: Env) -> None:
    """The station's clock says two hours passed; we received its start and its stop a moment
    apart. 100 kWh is plausible in two hours (700 kWh at 350 kW), not in the ten minutes of
    slack our own receive window allows (58.3 kWh): the session waits for review."""
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body())
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid)  # stamped 10:00:00 by the station
        await cp.call(meter(tx_id, 70_000, "2026-11-22T11:00:00Z"))
        running = await env.session(sid)
        assert running["energyWh"] == 0  # not believed as the running cost either
        await cp.call(stop_at(tx_id, 100_000, "2026-11-22T12:00:00Z"))
    body = await env.wait_session(sid, "REVIEW")
    assert body["payment"]["status"] == "AUTHORIZED" and body["payment"]["capturedAmount"] == 0
    assert "implausible energy: 100000 Wh in 6" in body["reason"]  # judged on ~600 s, not 7200
    assert body["reviewDueAt"] is not None
