"""Unattended terminal sessions end to end: the whole app on a real port, a 1.6 station over
real websockets, and the fake CCV server (its terminal approves, declines or presents another
card; its webhooks reach POST /webhooks/ccv)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.billing.flows import charge, ops, ready_station, stop_tx
from tests.billing.terminal_flows import (
    API_KEY,
    COST,
    ENERGY_WH,
    KIOSK,
    MANAGEMENT_SYSTEM_ID,
    OTHER_CARD,
    SECRET,
    bound_station,
    charging,
    terminal_env,
)
from tests.conftest import make_settings
from tests.support.fake_ccv import DEFAULT_CARD_TOKEN
from tests.support.stations import station
from tests.support.wait import eventually
from web.keys import BILLING


async def test_a_terminal_session_charges_and_the_same_card_stops_it_once(
        tmp_path: Path, aiohttp_server: Any) -> None:
    async with terminal_env(tmp_path, aiohttp_server) as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        sid, tx_id = await charging(t, cp)
        running = await t.env.session(sid)
        assert (running["method"], running["payment"]["status"],
                running["payment"]["authorizedAmount"]) == ("TERMINAL", "AUTHORIZED", 5000)
        payment = t.ccv.mutating_requests()[0]
        assert payment["path"] == "/api/v1/payment"
        assert payment["body"]["details"] == {
            "terminalId": "IM30-1", "managementSystemId": MANAGEMENT_SYSTEM_ID,
            "accessProtocol": "OPI_NL", "operatingEnvironment": "UNATTENDED"}
        assert payment["body"]["webhookUrl"] == \
            f"{t.env.url}/webhooks/ccv?key={SECRET}&session={sid}"

        t.ccv.terminal("IM30-1").queue("approve", DEFAULT_CARD_TOKEN)
        stopped = await t.stop_at_terminal("STOPPED")
        assert stopped["error"] is None
        assert (await cp.wait_for("RemoteStopTransaction"))["transaction_id"] == tx_id
        await cp.call(stop_tx(tx_id, ENERGY_WH))
        await cp.call(stop_tx(tx_id, ENERGY_WH))  # a repeated StopTransaction
        done = await t.env.wait_session(sid, "COMPLETED", "CAPTURED")
        assert done["costCents"] == COST
        assert done["payment"]["capturedAmount"] == COST
        assert ("CAPTURE", COST, "SUCCEEDED") in ops(done)
        await t.ccv.settled()
        assert t.ccv.counts["capture"] == 1
        assert [r["body"]["amount"] for r in t.ccv.mutating_requests()
                if r["path"] == "/api/v1/capture"] == ["20.52"]
        assert t.ccv.counts["reversal"] == 0


async def test_another_card_cannot_stop_the_session(tmp_path: Path,
                                                    aiohttp_server: Any) -> None:
    async with terminal_env(tmp_path, aiohttp_server) as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        sid, _ = await charging(t, cp)
        t.ccv.terminal("IM30-1").queue("approve", OTHER_CARD)
        mismatch = await t.stop_at_terminal("TOKEN_MISMATCH")
        assert mismatch["chargePointId"] == "EVSE-001"
        await t.ccv.settled()
        assert not [name for name, _ in cp.received if name == "RemoteStopTransaction"]
        still = await t.env.session(sid)
        assert (still["status"], still["stopRequest"]) == ("CHARGING", None)
        assert t.ccv.counts["capture"] == t.ccv.counts["reversal"] == 0


async def test_a_declined_card_charges_nothing_and_starts_nothing(
        tmp_path: Path, aiohttp_server: Any) -> None:
    async with terminal_env(tmp_path, aiohttp_server) as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        await bound_station(t, cp)
        t.ccv.terminal("IM30-1").queue("decline")
        sid = await t.start()
        failed = await t.env.wait_session(sid, "FAILED", "FAILED")
        assert ops(failed) == [("AUTHORIZE", 5000, "FAILED")]
        assert failed["payment"]["authorizedAmount"] == 0
        await t.ccv.settled()
        assert not cp.received
        assert t.ccv.counts["capture"] == t.ccv.counts["reversal"] == 0
        # the connector is free for the next driver
        t.ccv.terminal("IM30-1").queue("approve")
        await t.start()


async def test_a_rejected_remote_start_releases_the_hold(tmp_path: Path,
                                                         aiohttp_server: Any) -> None:
    async with terminal_env(tmp_path, aiohttp_server) as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        await bound_station(t, cp)
        cp.remote_start_status = "Rejected"
        t.ccv.terminal("IM30-1").queue("approve")
        sid = await t.start()
        failed = await t.env.wait_session(sid, "FAILED", "VOIDED")
        assert ops(failed) == [("AUTHORIZE", 5000, "SUCCEEDED"), ("VOID", 5000, "SUCCEEDED")]
        assert t.ccv.counts["reversal"] == 1 and t.ccv.counts["capture"] == 0


async def test_a_capture_that_fails_twice_is_applied_once(tmp_path: Path,
                                                          aiohttp_server: Any) -> None:
    async with terminal_env(tmp_path, aiohttp_server, CSMS_BILLING__GATEWAY_ATTEMPTS="1",
                            CSMS_TASKS__RETRY_DELAYS="[0.1]") as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        sid, tx_id = await charging(t, cp)
        t.ccv.terminal("IM30-1").queue("approve", DEFAULT_CARD_TOKEN)
        await t.stop_at_terminal("STOPPED")
        await cp.wait_for("RemoteStopTransaction")
        await t.ccv.settled()
        # CCV carries out the capture but its answer is lost, then answers 500 once more
        t.ccv.fail_next(1, 500, after_processing=True)
        t.ccv.fail_next(1, 503)
        await cp.call(stop_tx(tx_id, ENERGY_WH))
        done = await t.env.wait_session(sid, "COMPLETED", "CAPTURED", timeout=10)
        assert done["payment"]["capturedAmount"] == COST
        captures = [r for r in t.ccv.requests if r["path"] == "/api/v1/capture"]
        assert len(captures) == 3
        assert len({r["headers"]["Idempotency-Reference"] for r in captures}) == 1
        assert t.ccv.counts["capture"] == 1 and t.ccv.counts["replays"] == 1


async def test_a_lost_webhook_is_recovered_by_reconciliation(tmp_path: Path,
                                                             aiohttp_server: Any) -> None:
    async with terminal_env(tmp_path, aiohttp_server, webhooks=False) as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        await bound_station(t, cp)
        t.ccv.terminal("IM30-1").queue("approve", DEFAULT_CARD_TOKEN)
        sid = await t.start()
        await t.ccv.settled()
        assert "error" in t.ccv.webhooks[0]  # the hint never arrived
        assert (await t.env.session(sid))["status"] == "PENDING_PAYMENT"
        await t.env.server.app[BILLING].reconcile()
        tx_id = await charge(t.env, cp, sid)
        # the card read at the stop loses its hint too: the sweep reads it
        t.ccv.terminal("IM30-1").queue("approve", DEFAULT_CARD_TOKEN)
        status, body = await t.post("/terminal/stop", {"chargePointId": "EVSE-001",
                                                       "connectorId": 1})
        assert status == 202
        await t.ccv.settled()
        assert (await t.request(body["requestId"]))["status"] == "PENDING"
        await t.env.server.app[BILLING].reconcile()
        assert (await t.request(body["requestId"]))["status"] == "STOPPED"
        await cp.wait_for("RemoteStopTransaction")
        await cp.call(stop_tx(tx_id, ENERGY_WH))
        await t.env.wait_session(sid, "COMPLETED", "CAPTURED")


async def test_webhooks_are_authenticated_deduplicated_and_fetched(
        tmp_path: Path, aiohttp_server: Any) -> None:
    async with terminal_env(tmp_path, aiohttp_server) as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        sid, _ = await charging(t, cp)
        session = await t.env.server.app[BILLING].get(sid)
        reference = session.charge_id
        assert reference and session.card_fingerprint == DEFAULT_CARD_TOKEN
        url = t.env.url + "/webhooks/ccv"
        for query in ("", "?key=wrong"):
            status, body = await t.env.post("/webhooks/ccv" + query, {"id": reference})
            assert (status, body["error"]["code"]) == (401, "unauthorized")
        gets = t.ccv.counts["get"]
        async with t.env.http.post(url, params={"key": SECRET},
                                   json={"id": reference}) as resp:
            assert resp.status == 200 and (await resp.json())["duplicate"] is True
        assert t.ccv.counts["get"] == gets  # a handled final hint is not fetched again
        async with t.env.http.post(url, params={"key": SECRET}, json={"id": "TLNOPE.1"}) as resp:
            assert resp.status == 404
        for bad in ({}, {"id": ""}, {"id": "a b"}, ["x"]):
            async with t.env.http.post(url, params={"key": SECRET}, json=bad) as resp:
                assert resp.status in (400, 422), bad


async def test_terminal_api_needs_a_terminal_key_and_a_bound_terminal(
        tmp_path: Path, aiohttp_server: Any) -> None:
    async with terminal_env(tmp_path, aiohttp_server) as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        await ready_station(t.env, cp)
        body = {"chargePointId": "EVSE-001", "connectorId": 1, "amount": 5000}
        for headers in ({}, {"X-Api-Key": "nope"}):
            status, refused = await t.post("/terminal/start", body, headers=headers)
            assert (status, refused["error"]["code"]) == (401, "unauthorized")
        status, refused = await t.post("/terminal/start", body)
        assert (status, refused["error"]["code"]) == (409, "terminal_not_bound")
        for bad, field in (({**body, "amount": 0}, "amount"),
                           ({**body, "amount": 10**9}, "amount"),
                           ({**body, "connectorId": "1"}, "connectorId")):
            status, refused = await t.post("/terminal/start", bad)
            assert (status, refused["error"]["field"]) == (422, field)
        status, refused = await t.post("/terminal/stop", {"chargePointId": "EVSE-001",
                                                          "connectorId": 1})
        assert (status, refused["error"]["code"]) == (409, "terminal_not_bound")
        status, refused = await t.env.post("/charge/start", {
            "chargePointId": "EVSE-001", "connectorId": 1, "method": "TERMINAL",
            "amount": 5000, "charger": {"price": 1.5, "fixed_connection_cost": 2}})
        assert (status, refused["error"]["field"]) == (422, "method")
        async with t.env.http.get(f"{t.env.url}/terminal/requests/nope",
                                  headers=KIOSK) as resp:
            assert resp.status == 404


async def test_terminal_binding_api(tmp_path: Path, aiohttp_server: Any) -> None:
    async with terminal_env(tmp_path, aiohttp_server,
                            CSMS_API__OPERATOR_TOKEN="op-token") as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        await ready_station(t.env, cp)
        api, auth = f"{t.env.url}/api/stations", {"Authorization": "Bearer op-token"}
        async with t.env.http.put(f"{api}/EVSE-001/terminal",
                                  json={"terminalId": "IM30-1"}) as resp:
            assert resp.status == 401
        async with t.env.http.put(f"{api}/NOPE/terminal", json={"terminalId": "IM30-1"},
                                  headers=auth) as resp:
            assert resp.status == 404
        for bad in ({}, {"terminalId": ""}, {"terminalId": "a b"}, {"terminalId": 7}):
            async with t.env.http.put(f"{api}/EVSE-001/terminal", json=bad,
                                      headers=auth) as resp:
                assert resp.status == 422, bad
                assert (await resp.json())["error"]["field"] == "terminalId"
        async with t.env.http.put(f"{api}/EVSE-001/terminal", headers=auth, json={
                "terminalId": "IM30-7", "managementSystemId": "000999"}) as resp:
            assert resp.status == 200
            assert (await resp.json())["terminalId"] == "IM30-7"
        async with t.env.http.get(f"{api}/EVSE-001", headers=auth) as resp:
            shown = (await resp.json())["terminal"]
            assert (shown["terminalId"], shown["managementSystemId"]) == ("IM30-7", "000999")
        async with t.env.http.get(f"{t.env.url}/api/openapi.json") as resp:
            paths = (await resp.json())["paths"]
            assert {"put", "delete"} <= set(paths["/api/stations/{stationId}/terminal"])
            assert {"/terminal/start", "/terminal/stop", "/terminal/requests/{requestId}",
                    "/webhooks/ccv"} <= set(paths)
        async with t.env.http.delete(f"{api}/EVSE-001/terminal", headers=auth) as resp:
            assert resp.status == 204
        async with t.env.http.delete(f"{api}/EVSE-001/terminal", headers=auth) as resp:
            assert resp.status == 404
        async with t.env.http.get(f"{api}/EVSE-001", headers=auth) as resp:
            assert (await resp.json())["terminal"] is None


@pytest.mark.parametrize("missing", ["api_key", "webhook_secret"])
def test_production_refuses_open_terminal_settings(tmp_path: Path, missing: str) -> None:
    from web.posture import open_terminal_settings

    values = {"CSMS_BILLING__CCV__API_KEY": API_KEY,
              "CSMS_BILLING__CCV__WEBHOOK_SECRET": SECRET,
              "CSMS_BILLING__CCV__MANAGEMENT_SYSTEM_ID": MANAGEMENT_SYSTEM_ID,
              "CSMS_SERVER__PUBLIC_URL": "https://csms.example.com",
              "CSMS_API__TERMINAL_KEYS": "k1"}
    complete = make_settings(tmp_path, **values)
    assert open_terminal_settings(complete) == []
    values[f"CSMS_BILLING__CCV__{missing.upper()}"] = ""
    findings = open_terminal_settings(make_settings(tmp_path, **values))
    if missing == "api_key":
        assert findings == []  # CCV off: nothing of it is open
    else:
        assert any("billing.ccv.webhook_secret" in f for f in findings)


# Review findings (adversarial review of the CCV money paths) ---------------------------------


@pytest.mark.parametrize("http_status", [401, 404])
async def test_a_fetch_answered_with_an_http_error_does_not_fail_an_approved_card(
        tmp_path: Path, aiohttp_server: Any, http_status: int) -> None:
    """An HTTP error on GET /transaction (a rotated API key, CCV's lookup not yet consistent)
    reads nothing: the card may be approved and held. The authorisation stays pending, the
    hint is refused so it can come again, and the sweep's next read starts the session."""
    async with terminal_env(tmp_path, aiohttp_server) as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        await bound_station(t, cp)
        t.ccv.terminal("IM30-1").queue("approve", DEFAULT_CARD_TOKEN)
        sid = await t.start()
        t.ccv.fail_next(1, http_status)  # the fetch that follows the approval's hint
        await t.ccv.settled()
        assert t.ccv.webhooks[-1]["status"] >= 500  # not taken: CCV may send it again
        pending = await t.env.session(sid)
        assert (pending["status"], pending["payment"]["status"]) == \
            ("PENDING_PAYMENT", "PENDING")
        await t.env.server.app[BILLING].reconcile()
        await cp.wait_for("RemoteStartTransaction")
        started = await t.env.session(sid)
        assert started["payment"]["status"] == "AUTHORIZED"
        assert started["payment"]["authorizedAmount"] == 5000


async def test_a_card_that_never_comes_frees_the_connector_and_a_late_one_is_released(
        tmp_path: Path, aiohttp_server: Any) -> None:
    """Nobody presents a card and CCV never ends the payment: past billing.ccv.card_timeout
    the sweep ends the session FAILED (the connector takes the next driver); the payment is
    still read, and a card approved after that is reversed, never started or captured."""
    async with terminal_env(tmp_path, aiohttp_server,
                            CSMS_BILLING__CCV__CARD_TIMEOUT="0.2") as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        await bound_station(t, cp)
        t.ccv.terminal("IM30-1").queue("timeout")
        sid = await t.start()

        async def swept() -> dict[str, Any]:
            await t.env.server.app[BILLING].reconcile()
            return await t.env.session(sid)

        failed = await eventually(swept, lambda s: s["status"] != "PENDING_PAYMENT")
        assert (failed["status"], failed["payment"]["status"]) == ("FAILED", "PENDING")
        t.ccv.terminal("IM30-1").queue("approve")
        next_sid = await t.start()  # the connector is free
        await t.env.wait_session(next_sid, "STARTING")

        reference = (await t.env.server.app[BILLING].get(sid)).charge_id
        assert reference is not None
        await t.ccv.act(reference, "approve")  # the first cardholder, late
        released = await t.env.wait_session(sid, "FAILED", "VOIDED")
        assert ops(released) == [("AUTHORIZE", 5000, "SUCCEEDED"), ("VOID", 5000, "SUCCEEDED")]
        assert t.ccv.counts["reversal"] == 1 and t.ccv.counts["capture"] == 0
        assert len([n for n, _ in cp.received if n == "RemoteStartTransaction"]) == 1


async def test_an_authorisation_in_manual_intervention_is_not_taken_as_declined(
        tmp_path: Path, aiohttp_server: Any) -> None:
    """CCV's `manualintervention` is an unknown outcome (its helpdesk decides): the card may
    be held, so the authorisation stays pending and is read again; once CCV resolves it as
    approved the session goes on (it would have been FAILED with the hold never reversed)."""
    async with terminal_env(tmp_path, aiohttp_server) as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        await bound_station(t, cp)
        t.ccv.terminal("IM30-1").queue("timeout")
        sid = await t.start()
        reference = (await t.env.server.app[BILLING].get(sid)).charge_id
        assert reference is not None
        t.ccv.transactions[reference]["status"] = "manualintervention"
        await t.env.server.app[BILLING].reconcile()
        unknown = await t.env.session(sid)
        assert (unknown["status"], unknown["payment"]["status"]) == \
            ("PENDING_PAYMENT", "PENDING")
        assert ops(unknown) == [("AUTHORIZE", 5000, "PENDING")]
        t.ccv.transactions[reference]["status"] = "pending"  # the helpdesk resolves it
        await t.ccv.act(reference, "approve")
        await cp.wait_for("RemoteStartTransaction")
        assert (await t.env.session(sid))["payment"]["status"] == "AUTHORIZED"


async def test_a_hint_that_overtakes_our_own_answer_is_matched_by_our_id(
        tmp_path: Path, aiohttp_server: Any) -> None:
    """CCV posts the hint before it answers our POST (its reference is not stored yet): the
    webhookUrl names our session (or terminal request), so the hint waits for our answer and
    is followed by a fetch, with no sweep; the card read at the stop likewise."""
    async with terminal_env(tmp_path, aiohttp_server) as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        await bound_station(t, cp)
        t.ccv.hint_before_answer = 2.0
        t.ccv.terminal("IM30-1").queue("approve", DEFAULT_CARD_TOKEN)
        sid = await t.start()
        await t.ccv.settled()
        assert t.ccv.webhooks[0]["before_answer"] and t.ccv.webhooks[0]["status"] == 200
        assert f"&session={sid}" in t.ccv.webhooks[0]["url"]
        tx_id = await charge(t.env, cp, sid)  # started on the hint alone

        t.ccv.terminal("IM30-1").queue("approve", DEFAULT_CARD_TOKEN)
        status, body = await t.post("/terminal/stop", {"chargePointId": "EVSE-001",
                                                       "connectorId": 1})
        assert status == 202
        await t.ccv.settled()
        hint = t.ccv.webhooks[1]
        assert hint["status"] == 200 and f"&request={body['requestId']}" in hint["url"]
        assert (await t.request(body["requestId"]))["status"] == "STOPPED"
        await cp.wait_for("RemoteStopTransaction")
        await cp.call(stop_tx(tx_id, ENERGY_WH))
        await t.env.wait_session(sid, "COMPLETED", "CAPTURED")
        await t.ccv.settled()
        assert len([n for n, _ in cp.received if n == "RemoteStopTransaction"]) == 1
        assert t.ccv.counts["capture"] == 1


async def test_a_hint_naming_an_id_that_is_not_ours_is_refused(
        tmp_path: Path, aiohttp_server: Any) -> None:
    async with terminal_env(tmp_path, aiohttp_server) as t, \
            station(t.env.ws_url, "EVSE-001") as cp:
        sid, _ = await charging(t, cp)
        reference = (await t.env.server.app[BILLING].get(sid)).charge_id
        url = t.env.url + "/webhooks/ccv"
        for query, expected in (({"session": "nope"}, 404), ({"request": "nope"}, 404),
                                ({"session": "a b"}, 422), ({"request": "x" * 65}, 422),
                                ({"session": sid}, 404)):  # ours, but not its reference
            async with t.env.http.post(url, params={"key": SECRET, **query},
                                       json={"id": "TLNOTOURS.1"}) as resp:
                assert resp.status == expected, (query, await resp.text())
        gets = t.ccv.counts["get"]
        async with t.env.http.post(url, params={"key": SECRET, "session": sid},
                                   json={"id": reference}) as resp:
            assert resp.status == 200 and (await resp.json())["duplicate"] is True
        assert t.ccv.counts["get"] == gets
