"""A session in REVIEW that no operator decides is settled by the reconciliation sweep once its
deadline passes (before the gateway lets the card hold lapse): the plausible part is charged,
the rest given back, and the session says why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.billing.flows import Env, charge, ops, ready_station, start_body, stop_at
from tests.billing.flows import open_env as open_flow_env
from tests.support.stations import station

DEADLINE = {"CSMS_BILLING__REVIEW_DEADLINE_HOURS": "0.0003",  # about a second
            "CSMS_BILLING__RECONCILE_INTERVAL": "0.2"}


@pytest.fixture(params=["sandbox", "pagarme"])
async def env(request: pytest.FixtureRequest, tmp_path: Path, aiohttp_server: Any,
              ) -> AsyncIterator[Env]:
    async with open_flow_env(request.param, tmp_path, aiohttp_server, DEADLINE) as env:
        yield env


async def test_an_undecided_review_is_settled_with_the_plausible_part(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body(amount=10_000))
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid)  # 10:00:00 by the station's clock
        # 900 kWh in ten minutes: at most 58,333 Wh (350 kW x 600 s) is plausible
        await cp.call(stop_at(tx_id, 900_000, "2026-11-22T10:10:00Z"))
    waiting = await env.wait_session(sid, "REVIEW")
    listed = await env.get("/api/sessions?status=REVIEW")
    assert [(s["sessionId"], s["reviewDueAt"]) for s in listed] == [
        (sid, waiting["reviewDueAt"])]
    assert waiting["reviewDueAt"] is not None
    done = await env.wait_session(sid, "COMPLETED", "CAPTURED", timeout=15)
    # 2.00 + 58.333 kWh x 1.50 = 89.4995 -> 89.50, well under the metered cost and the hold
    assert done["payment"]["capturedAmount"] == 8950 and done["costCents"] == 8950
    assert [o[:2] for o in ops(done)] == [("AUTHORIZE", 10_000), ("CAPTURE", 8950)]
    assert done["reason"].startswith("review deadline passed with no operator decision: "
                                     "charged 8950 cents")
    assert done["reviewDueAt"] is None
    assert await env.get("/api/sessions?status=REVIEW") == []
    if env.fake is not None:
        assert env.gateway_count("capture") == 1
    status, refused = await env.post(f"/api/sessions/{sid}/review", {"decision": "release"})
    assert status == 409 and refused["error"]["code"] == "not_in_review"
