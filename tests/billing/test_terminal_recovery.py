"""Terminal sessions after a crash, a hostile CCV answer, and an operator refund: the whole
app on a real port, a 1.6 station over real websockets, the fake CCV server on its own.

A crash between recording the AUTHORIZE and sending it is seeded in the store exactly as
`TerminalPayments.start` leaves it (as tests/billing/faults seeds the states a kill -9 leaves),
then the reconciliation sweep runs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from billing.gateways.ccv import idempotency_reference
from billing.ledger import Request, context_of, key_for
from billing.models import Method, OperationStatus, OperationType
from billing.sessions import description, new_id_tag, new_session
from billing.terminal import hint_url
from tests.billing.flows import charge, ops, stop_tx
from tests.billing.terminal_flows import (
    COST,
    ENERGY_WH,
    MANAGEMENT_SYSTEM_ID,
    SECRET,
    TerminalEnv,
    bound_station,
    charging,
    terminal_env,
)
from tests.support.fake_ccv import DEFAULT_CARD_TOKEN
from tests.support.stations import station
from tests.support.wait import eventually
from web.keys import BILLING, BILLING_STORE

OpT = OperationType


async def crashed_before_sending(t: TerminalEnv, *, request_kept: bool) -> str:
    """A terminal start cut by a crash after its AUTHORIZE was recorded, before CCV was
    asked: with its request kept (the ledger writes it just before the call) or not yet."""
    app = t.env.server.app
    store, terminal = app[BILLING_STORE], app[BILLING].terminal
    tariff = await terminal.sessions.check_connector("EVSE-001", 1)
    session = new_session("EVSE-001", 1, Method.TERMINAL, new_id_tag(), 5000, tariff, None,
                          None)
    sid = session.session_id
    await store.create_session(session)
    key = key_for(sid, OpT.AUTHORIZE)
    await store.begin_operation(sid, OpT.AUTHORIZE, 5000, key)
    if request_kept:
        request = Request(OpT.AUTHORIZE, 5000, description=description(session),
                          terminal_id="IM30-1", management_system_id=MANAGEMENT_SYSTEM_ID,
                          webhook_url=hint_url(terminal.webhook_url, session=sid))
        await store.finish_operation(key, OperationStatus.PENDING, raw=context_of(request))
    return sid


async def test_a_start_whose_request_was_kept_is_sent_again_with_its_reference(
        tmp_path: Path, aiohttp_server: Any) -> None:
    """It may have reached CCV: the sweep sends the same body with the same
    Idempotency-Reference (CCV would answer a repeat with its first answer); here it never
    had, so the terminal asks for the card now and the session goes on."""
    async with terminal_env(tmp_path, aiohttp_server) as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        await bound_station(t, cp)
        sid = await crashed_before_sending(t, request_kept=True)
        t.ccv.terminal("IM30-1").queue("approve", DEFAULT_CARD_TOKEN)
        await t.env.server.app[BILLING].reconcile()
        payment = t.ccv.mutating_requests()[0]
        assert payment["headers"]["Idempotency-Reference"] == \
            idempotency_reference(key_for(sid, OpT.AUTHORIZE))
        assert payment["body"]["merchantOrderReference"] == sid
        tx_id = await charge(t.env, cp, sid)  # the approval's hint started it
        await t.env.server.app[BILLING].reconcile()  # a later sweep sends nothing again
        assert t.ccv.counts["payment"] == 1
        await cp.call(stop_tx(tx_id, ENERGY_WH))
        done = await t.env.wait_session(sid, "COMPLETED", "CAPTURED")
        assert ops(done) == [("AUTHORIZE", 5000, "SUCCEEDED"), ("CAPTURE", COST, "SUCCEEDED")]


async def test_a_start_that_never_sent_its_request_fails_without_a_call(
        tmp_path: Path, aiohttp_server: Any) -> None:
    """No request kept: it provably never left (the ledger keeps it before the call). Past
    the remote start timeout the sweep ends the AUTHORIZE and the session FAILED, CCV is
    never called, and the connector takes the next driver."""
    async with terminal_env(tmp_path, aiohttp_server,
                            CSMS_OCPP__REMOTE_START_TIMEOUT="0.3") as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        await bound_station(t, cp)
        sid = await crashed_before_sending(t, request_kept=False)

        async def swept() -> dict[str, Any]:
            await t.env.server.app[BILLING].reconcile()
            return await t.env.session(sid)

        failed = await eventually(swept, lambda s: s["status"] != "PENDING_PAYMENT")
        assert (failed["status"], failed["payment"]["status"]) == ("FAILED", "FAILED")
        assert ops(failed) == [("AUTHORIZE", 5000, "FAILED")]
        assert t.ccv.counts["payment"] == 0
        # the ledger never sends an operation given up meanwhile
        done = await t.env.server.app[BILLING].ledger.run(sid, Request(
            OpT.AUTHORIZE, 5000, terminal_id="IM30-1",
            management_system_id=MANAGEMENT_SYSTEM_ID))
        assert not done.result.success and t.ccv.counts["payment"] == 0
        t.ccv.terminal("IM30-1").queue("approve")
        next_sid = await t.start()
        await t.env.wait_session(next_sid, "STARTING")


async def test_a_non_ascii_card_token_from_ccv_is_another_card_not_an_error(
        tmp_path: Path, aiohttp_server: Any) -> None:
    """A hostile or broken CCV answer with a non-ASCII token: the stop request says
    TOKEN_MISMATCH (nothing stops), the hint is answered 200, never a 500."""
    async with terminal_env(tmp_path, aiohttp_server) as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        sid, _ = await charging(t, cp)
        t.ccv.terminal("IM30-1").queue("approve", "99ÄÖÜ€ßçñ漢字😀1234")
        await t.stop_at_terminal("TOKEN_MISMATCH")
        await t.ccv.settled()
        assert [hook["status"] for hook in t.ccv.webhooks] == [200, 200]
        assert (await t.env.session(sid))["status"] == "CHARGING"
        url = f"{t.env.url}/webhooks/ccv"
        async with t.env.http.post(url, params={"key": SECRET, "session": "ÄÖ"},
                                   json={"id": "TLÄÖ.1"}) as resp:
            assert resp.status == 422


async def test_an_operator_refunds_a_terminal_session_at_ccv(
        tmp_path: Path, aiohttp_server: Any) -> None:
    """The operator refund API on a TERMINAL session: CCV refunds the capture (not the
    authorisation it captured), partly then the rest, each once, never above the capture."""
    async with terminal_env(tmp_path, aiohttp_server) as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        sid, tx_id = await charging(t, cp)
        await cp.call(stop_tx(tx_id, ENERGY_WH))
        await t.env.wait_session(sid, "COMPLETED", "CAPTURED")
        capture = next(r for r in t.ccv.requests if r["path"] == "/api/v1/capture")
        capture_ref = next(ref for ref, txn in t.ccv.transactions.items()
                           if txn["type"] == "capture")
        assert capture["body"]["amount"] == "20.52"

        refund_url = f"/api/sessions/{sid}/refund"
        status, body = await t.env.post(refund_url, {"amount": 500, "reason": "slow charger"},
                                        headers={"Idempotency-Key": "r-1"})
        assert status == 202, body
        partly = await t.env.wait_session(sid, "COMPLETED", "PARTIALLY_REFUNDED")
        assert partly["payment"]["refundedAmount"] == 500
        status, _ = await t.env.post(refund_url, {"amount": 500, "reason": "slow charger"},
                                     headers={"Idempotency-Key": "r-1"})
        assert status == 202  # a replay: nothing new at CCV
        status, body = await t.env.post(refund_url, {"amount": COST - 499})
        assert (status, body["error"]["code"]) == (422, "refund_exceeds_charged")
        status, _ = await t.env.post(refund_url, {"amount": COST - 500})
        assert status == 202
        done = await t.env.wait_session(sid, "COMPLETED", "REFUNDED")
        assert done["payment"]["refundedAmount"] == COST
        assert ops(done)[-2:] == [("REFUND", 500, "SUCCEEDED"),
                                  ("REFUND", COST - 500, "SUCCEEDED")]
        refunds = [r for r in t.ccv.mutating_requests() if r["path"] == "/api/v1/refund"]
        assert [r["body"] for r in refunds] == [
            {"reference": capture_ref, "amount": "5.00"},
            {"reference": capture_ref, "amount": "15.52"}]
        assert t.ccv.counts["refund"] == 2
        assert t.ccv.transactions[capture_ref]["_refunded"] == Decimal("20.52")
