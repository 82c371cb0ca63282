"""Lists of transactions name billing's session of each (read in one store call), and the
overview's money tiles sum the ledger (one aggregate read per tile)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ocpp.v16 import call

from tests.billing.flows import T0, card_session, open_env, stop_tx
from tests.support.stations import station


async def test_transactions_list_their_sessions_and_the_overview_sums_the_ledger(
        tmp_path: Path, aiohttp_server: Any) -> None:
    async with open_env("sandbox", tmp_path, aiohttp_server, {}) as env:
        async with station(env.ws_url, "EVSE-001") as cp:
            billed = await card_session(env, cp, energy_wh=4000)  # 8.00 captured
            rfid = await cp.call(call.StartTransaction(connector_id=1, id_tag="RFID1",
                                                       meter_start=0, timestamp=T0))
            await cp.call(stop_tx(rfid.transaction_id, 1000))
        listed = await env.get("/api/transactions")
        by_id = {tx["transactionId"]: tx["sessionId"] for tx in listed}
        session = await env.session(billed)
        assert by_id == {session["transactionId"]: billed, rfid.transaction_id: None}
        async with env.http.get(env.url + "/") as resp:
            overview = await resp.text()
    assert 'data-testid="captured-today">8.00' in overview
    assert "Authorized today</div><div class=\"value\">50.00" in overview
