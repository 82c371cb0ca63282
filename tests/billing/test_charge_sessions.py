"""Money follows the session end to end: an OCPP station over a real websocket, the driver API
over HTTP, and both gateways (the sandbox, and Pagar.me V5 played by a fake server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from ocpp.v16 import call

from tests.billing.flows import (
    T0,
    Env,
    charge,
    open_env,
    ops,
    ready_station,
    start_body,
    stop_tx,
)
from tests.support.mongo import backend_environ
from tests.support.stations import basic_auth, station
from web.app import create_app


@pytest.fixture(params=["sandbox", "pagarme", "pagarme-mongodb"])
async def env(request: pytest.FixtureRequest, tmp_path, aiohttp_server,
              ) -> AsyncIterator[Env]:
    """The production gateway also runs on the production store (MongoDB)."""
    gateway, _, backend = request.param.partition("-")
    extra: dict[str, str] = dict(getattr(request, "param_env", {}))
    extra.update(backend_environ(request, backend or "sqlite"))
    marker = request.node.get_closest_marker("env")
    if marker:
        extra.update(marker.kwargs)
    async with open_env(gateway, tmp_path, aiohttp_server, extra) as env:
        yield env


async def test_card_session_captures_exactly_the_cost_once(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        status, started = await env.post("/charge/start", start_body())
        assert status == 200, started
        assert started["success"] is True
        assert started["paymentData"]["status"] == "authorized"
        sid = started["sessionId"]
        assert len(sid) >= 22
        tx_id = await charge(env, cp, sid, meter_start=1000)
        await cp.call(call.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=[
            {"timestamp": "2026-11-22T10:10:00Z", "sampledValue": [{"value": "6000"}]}]))
        running = await env.session(sid)
        assert (running["energyWh"], running["costCents"]) == (5000, 950)

        status, stopped = await env.post("/charge/stop", {"sessionId": sid})
        assert status == 200 and stopped["session"]["status"] == "STOPPING"
        assert (await cp.wait_for("RemoteStopTransaction"))["transaction_id"] == tx_id
        # 12,345 Wh at 1.50/kWh plus 2.00 = 20.5175 -> 2052 cents; the stop arrives twice
        first = await cp.call(stop_tx(tx_id, 13345))
        second = await cp.call(stop_tx(tx_id, 13345))
        assert first == second
        done = await env.wait_session(sid, "COMPLETED", "CAPTURED")
        await cp.call(stop_tx(tx_id, 13345))
        await asyncio.sleep(0.2)

    done = await env.session(sid)
    assert done["transactionId"] == tx_id
    assert (done["energyWh"], done["costCents"]) == (12345, 2052)
    assert done["payment"]["authorizedAmount"] == 5000
    assert done["payment"]["capturedAmount"] == 2052
    assert ops(done) == [("AUTHORIZE", 5000, "SUCCEEDED"), ("CAPTURE", 2052, "SUCCEEDED")]
    if env.fake is not None:
        assert env.gateway_count("capture") == 1
    tx = await env.get(f"/api/transactions/{tx_id}")
    assert tx["sessionId"] == sid


async def test_stop_before_charging_voids(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body())
        sid = started["sessionId"]
        await cp.wait_for("RemoteStartTransaction")
        status, body = await env.post("/charge/stop", {"sessionId": sid})
        assert status == 200
        assert body["session"]["status"] == "CANCELED"
        assert body["session"]["payment"]["status"] == "VOIDED"
        status, again = await env.post("/charge/stop", {"sessionId": sid})
        assert status == 200 and again["session"]["status"] == "CANCELED"
        # a StartTransaction that arrives after the void is refused
        remote = await cp.wait_for("RemoteStartTransaction")
        late = await cp.call(call.StartTransaction(connector_id=1, id_tag=remote["id_tag"],
                                                   meter_start=0, timestamp=T0))
        assert late.id_tag_info["status"] == "Invalid"
    assert ops(await env.session(sid)) == [("AUTHORIZE", 5000, "SUCCEEDED"),
                                           ("VOID", 5000, "SUCCEEDED")]
    if env.fake is not None:
        assert env.gateway_count("cancel") == 1


@pytest.mark.env(CSMS_OCPP__REMOTE_START_TIMEOUT="0.3")
async def test_no_start_transaction_in_time_voids(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body())
        body = await env.wait_session(started["sessionId"], "CANCELED", "VOIDED")
    assert [o[0] for o in ops(body)] == ["AUTHORIZE", "VOID"]


async def test_rejected_remote_start_voids(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        cp.remote_start_status = "Rejected"
        status, body = await env.post("/charge/start", start_body())
        assert status == 409
        assert body["error"]["code"] == "remote_start_rejected"
        session = await env.session(body["error"]["sessionId"])
    assert (session["status"], session["payment"]["status"]) == ("FAILED", "VOIDED")


async def test_zero_energy_stop_voids(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body())
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid, meter_start=500)
        await cp.call(stop_tx(tx_id, 500))
        body = await env.wait_session(sid, "CANCELED", "VOIDED")
    assert [o[0] for o in ops(body)] == ["AUTHORIZE", "VOID"]
    if env.fake is not None:
        assert env.gateway_count("capture") == 0


async def test_budget_guard_stops_and_never_captures_past_the_hold(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body(amount=500))
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid)
        await cp.call(call.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=[
            {"timestamp": "2026-11-22T10:05:00Z", "sampledValue": [{"value": "1000"}]}]))
        assert (await env.session(sid))["status"] == "CHARGING"  # 3.50 < 5.00
        await cp.call(call.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=[
            {"timestamp": "2026-11-22T10:10:00Z", "sampledValue": [{"value": "2000"}]}]))
        assert (await cp.wait_for("RemoteStopTransaction"))["transaction_id"] == tx_id
        assert (await env.session(sid))["status"] == "STOPPING"
        await cp.call(stop_tx(tx_id, 2100))  # a little more flowed before the relay opened
        body = await env.wait_session(sid, "COMPLETED", "CAPTURED")
    assert body["costCents"] == 515
    assert body["payment"]["capturedAmount"] == 500


async def test_refusals_touch_no_money(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        status, body = await env.post("/charge/start", start_body(cardToken="tok_decline_1"))
        assert status == 402 and body["success"] is False
        assert body["error"]["code"] == "payment_declined"
        status, body = await env.post("/charge/start", start_body(
            charger={"price": 1.49, "fixed_connection_cost": 2.00}))
        assert status == 409 and body["error"]["code"] == "price_mismatch"
        status, body = await env.post("/charge/start", start_body(connectorId=7))
        assert status == 404
        status, body = await env.post("/charge/start", start_body(amount=-5))
        assert status == 422 and body["error"]["field"] == "amount"
        status, body = await env.post("/charge/start", start_body(method="BITCOIN"))
        assert status == 422 and body["error"]["field"] == "method"
        status, body = await env.post("/charge/start", start_body(cardToken=None))
        assert status == 422 and body["error"]["field"] == "cardToken"
        status, body = await env.post("/charge/start", start_body(cpf="123"))
        assert status == 422 and body["error"]["field"] == "cpf"
        async with env.http.post(env.url + "/charge/start", data="{oops",
                                 headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 400
        await cp.status(1, "Faulted", "GroundFailure")
        status, body = await env.post("/charge/start", start_body())
        assert status == 409 and body["error"]["code"] == "connector_unavailable"
        assert [name for name, _ in cp.received] == []
    status, body = await env.post("/charge/start", start_body())
    assert status == 409 and body["error"]["code"] == "station_offline"
    status, body = await env.post("/charge/start", start_body(chargePointId="NOWHERE"))
    assert status == 404
    if env.fake is not None:
        # the one decline reached the gateway; nothing else did
        assert [r["method"] for r in env.fake.mutating_requests()] == ["POST"]


async def test_pix_paid_by_webhook_starts_and_refunds_the_unused_part(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        status, started = await env.post("/charge/start", start_body(
            method="PIX", cardToken=None))
        assert status == 200, started
        sid = started["sessionId"]
        payment = started["paymentData"]
        assert payment["status"] == "pending" and payment["pixQrCode"]
        assert payment["pixExpiresAt"]
        assert (await env.session(sid))["status"] == "PENDING_PAYMENT"
        assert cp.received == []

        status, ack = await env.pay_pix(payment["chargeId"])
        assert status == 200 and ack["sessionId"] == sid
        status, dup = await env.pay_pix(payment["chargeId"])
        assert status == 200 and dup["duplicate"] is True

        tx_id = await charge(env, cp, sid)
        await cp.call(stop_tx(tx_id, 12345))
        body = await env.wait_session(sid, "COMPLETED", "PARTIALLY_REFUNDED")
    assert body["payment"]["authorizedAmount"] == 5000
    assert body["payment"]["capturedAmount"] == 2052
    assert body["payment"]["refundedAmount"] == 2948
    assert ops(body) == [("CHARGE", 5000, "SUCCEEDED"), ("REFUND", 2948, "SUCCEEDED")]
    if env.fake is not None:
        assert env.gateway_count("cancel") == 1


async def test_pix_stopped_before_charging_is_refunded_in_full(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body(method="PIX", cardToken=None))
        sid = started["sessionId"]
        await env.pay_pix(started["paymentData"]["chargeId"])
        await cp.wait_for("RemoteStartTransaction")
        await env.wait_session(sid, "STARTING")
        await env.post("/charge/stop", {"sessionId": sid})
        body = await env.wait_session(sid, "CANCELED", "REFUNDED")
    assert body["payment"]["refundedAmount"] == 5000


async def test_vip_is_waived(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        status, started = await env.post("/charge/start", start_body(
            method="VIP", cardToken=None, amount=0))
        assert status == 200 and started["paymentData"]["status"] == "waived"
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid)
        await cp.call(stop_tx(tx_id, 12345))
        body = await env.wait_session(sid, "COMPLETED")
    assert body["payment"]["status"] == "WAIVED"
    assert body["costCents"] == 2052 and body["payment"]["operations"] == []
    if env.fake is not None:
        assert env.fake.mutating_requests() == []


async def test_another_card_cannot_take_over_a_paid_session(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body())
        await charge(env, cp, started["sessionId"])
        remote = await cp.wait_for("RemoteStartTransaction")
        other = await cp.call(call.Authorize(id_tag="SOMEONE-ELSE"))
        assert other.id_tag_info["status"] == "Invalid"
        own = await cp.call(call.Authorize(id_tag=remote["id_tag"]))
        assert own.id_tag_info["status"] == "Accepted"


async def test_saved_card_is_held_when_the_driver_starts_at_the_station(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body(saveCard=True, idTag="RFID-9"))
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid)
        await cp.call(stop_tx(tx_id, 1000))
        await env.wait_session(sid, "COMPLETED", "CAPTURED")
        await cp.status(1, "Available")

        start = await cp.call(call.StartTransaction(connector_id=1, id_tag="RFID-9",
                                                    meter_start=0, timestamp=T0))
        assert start.id_tag_info["status"] == "Accepted"
        sessions = await env.get("/api/sessions?stationId=EVSE-001&status=CHARGING")
        assert len(sessions) == 1
        held = sessions[0]
        assert held["transactionId"] == start.transaction_id
        assert held["payment"]["authorizedAmount"] == 5000
        # the driver taps the same card to stop; another card is refused
        mine = await cp.call(call.Authorize(id_tag="RFID-9"))
        assert mine.id_tag_info["status"] == "Accepted"
        other = await cp.call(call.Authorize(id_tag="RFID-OTHER"))
        assert other.id_tag_info["status"] == "Invalid"
        await cp.call(stop_tx(start.transaction_id, 12345))
        done = await env.wait_session(held["sessionId"], "COMPLETED", "CAPTURED")
    assert done["payment"]["capturedAmount"] == 2052


async def test_openapi_is_generated(env: Env) -> None:
    spec = await env.get("/api/openapi.json")
    assert set(spec["paths"]) >= {"/charge/start", "/charge/stop", "/charge/{sessionId}",
                                  "/webhooks/sandbox", "/webhooks/pagarme"}
    start = spec["components"]["schemas"]["ChargeStartRequest"]
    assert {"chargePointId", "connectorId", "method", "amount", "charger"} <= \
        set(start["properties"])


async def test_a_declined_saved_card_blocks_the_station_start(env: Env) -> None:
    from billing.models import SavedCard
    from csms.domain import utcnow
    from web.keys import BILLING_STORE

    await env.server.app[BILLING_STORE].save_card(SavedCard(
        "RFID-EXPIRED", "tok_decline_saved_card", "driver@company.com", "12345678900",
        utcnow()))
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        start = await cp.call(call.StartTransaction(connector_id=1, id_tag="RFID-EXPIRED",
                                                    meter_start=0, timestamp=T0))
        assert start.id_tag_info["status"] == "Blocked"
        # the station retries the same StartTransaction: same answer, no second hold
        again = await cp.call(call.StartTransaction(connector_id=1, id_tag="RFID-EXPIRED",
                                                    meter_start=0, timestamp=T0))
        assert again.id_tag_info["status"] == "Blocked"
        assert again.transaction_id == start.transaction_id
    failed = await env.get("/api/sessions?status=FAILED")
    assert len(failed) == 1 and failed[0]["payment"]["status"] == "FAILED"
    if env.fake is not None:
        assert env.fake.counts["orders"] == 1


async def test_a_station_tariff_override_prices_the_session(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        async with env.http.put(env.url + "/api/stations/EVSE-001/tariff", json={
                "pricePerKwh": "0.89", "fixedConnectionFee": "1.00"}) as resp:
            assert resp.status == 200
            assert (await resp.json())["default"] is False
        status, body = await env.post("/charge/start", start_body())
        assert status == 409 and body["error"]["code"] == "price_mismatch"
        status, started = await env.post("/charge/start", start_body(
            charger={"price": 0.89, "fixed_connection_cost": 1.0}))
        assert status == 200
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid)
        await cp.call(stop_tx(tx_id, 12345))
        done = await env.wait_session(sid, "COMPLETED", "CAPTURED")
    # 1.00 + 12.345 kWh x 0.89 = 11.98705 -> 1199 cents
    assert done["costCents"] == 1199 and done["payment"]["capturedAmount"] == 1199
    async with env.http.put(env.url + "/api/stations/NOWHERE/tariff", json={
            "pricePerKwh": "1", "fixedConnectionFee": "1"}) as resp:
        assert resp.status == 404
    async with env.http.put(env.url + "/api/stations/EVSE-001/tariff", json={
            "pricePerKwh": "-1", "fixedConnectionFee": "1"}) as resp:
        assert resp.status == 422


@pytest.mark.env(CSMS_API__DRIVER_KEYS='["app-key-1"]')
async def test_driver_api_requires_a_key_when_configured(env: Env) -> None:
    status, body = await env.post("/charge/start", start_body())
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await env.post("/charge/start", start_body(),
                                  headers={"X-Api-Key": "app-key-1"})
    assert status == 404  # past the key: the station is unknown
    async with env.http.get(env.url + "/charge/whatever") as resp:
        assert resp.status == 401


async def test_a_stop_recorded_before_a_crash_is_billed_at_start_up(
        env: Env, tmp_path, aiohttp_server) -> None:
    """The CSMS stored the StopTransaction and died before billing it: the next start's
    reconciliation pass captures it, once."""
    from csms.domain import parse_timestamp
    from csms.store.factory import make_store
    from web.keys import SETTINGS

    settings = env.server.app[SETTINGS]
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body())
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid)
    await env.server.close()  # the crash

    store = make_store(settings.store)
    await store.open()
    await store.stop_transaction("EVSE-001", tx_id, meter_stop=12345,
                                 stopped_at=parse_timestamp("2026-11-22T10:30:00Z"),
                                 reason="PowerLoss", id_tag=None)
    await store.close()

    restarted = await aiohttp_server(create_app(settings))
    env.server = restarted
    body = await env.wait_session(sid, "COMPLETED", "CAPTURED")
    assert body["payment"]["capturedAmount"] == 2052
    if env.fake is not None:
        assert env.fake.counts["capture"] == 1


async def test_two_starts_on_one_connector_do_not_both_take_money(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        first, second = await asyncio.gather(env.post("/charge/start", start_body()),
                                             env.post("/charge/start", start_body()))
    statuses = sorted([first[0], second[0]])
    assert statuses == [200, 409], (first, second)
    refused = first[1] if first[0] == 409 else second[1]
    assert refused["error"]["code"] == "connector_busy"
    assert len([name for name, _ in cp.received if name == "RemoteStartTransaction"]) == 1
    if env.fake is not None:
        assert env.fake.counts["orders"] == 1


async def test_free_charging_releases_the_hold(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        async with env.http.put(env.url + "/api/stations/EVSE-001/tariff", json={
                "pricePerKwh": "0", "fixedConnectionFee": "0"}) as resp:
            assert resp.status == 200
        _, started = await env.post("/charge/start", start_body(
            charger={"price": 0, "fixed_connection_cost": 0}))
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid)
        await cp.call(stop_tx(tx_id, 12345))
        body = await env.wait_session(sid, "COMPLETED", "VOIDED")
    assert body["costCents"] == 0 and body["payment"]["capturedAmount"] == 0
    assert [o[0] for o in ops(body)] == ["AUTHORIZE", "VOID"]


async def test_a_webhook_is_a_hint_not_the_truth(env: Env) -> None:
    if env.fake is None:
        pytest.skip("the sandbox webhook stands in for the payer; Pagar.me's is a hint")
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body(method="PIX", cardToken=None))
        sid, charge_id = started["sessionId"], started["paymentData"]["chargeId"]
        forged = {"id": "hook_forged", "type": "charge.paid",
                  "data": {"id": charge_id, "status": "paid", "amount": 5000}}
        status, _ = await env.post("/webhooks/pagarme", forged)
        assert status == 401
        status, _ = await env.post("/webhooks/pagarme", forged,
                                   headers=basic_auth("hook", "wrong"))
        assert status == 401
        # authenticated, but the gateway says the charge is still pending: nothing changes
        status, _ = await env.post("/webhooks/pagarme", forged,
                                   headers=basic_auth("hook", "hookpw"))
        assert status == 200
        body = await env.session(sid)
        assert (body["status"], body["payment"]["status"]) == ("PENDING_PAYMENT", "PENDING")
        assert cp.received == []
        status, body = await env.post("/webhooks/pagarme", {"type": "charge.paid"},
                                      headers=basic_auth("hook", "hookpw"))
        assert status == 422 and body["error"]["field"] == "data"


async def test_a_pix_payment_whose_webhook_was_lost_is_found_by_reconciliation(env: Env) -> None:
    if env.fake is None:
        pytest.skip("in the sandbox the webhook itself is the payment")
    from web.keys import BILLING

    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body(method="PIX", cardToken=None))
        sid, charge_id = started["sessionId"], started["paymentData"]["chargeId"]
        env.fake.mark_pix_paid(charge_id)  # the driver paid; no webhook ever arrives
        await env.server.app[BILLING].reconcile()
        await cp.wait_for("RemoteStartTransaction")
        body = await env.session(sid)
    assert body["payment"]["status"] == "PAID"


@pytest.mark.env(CSMS_BILLING__PIX_EXPIRES_IN="1")
async def test_an_unpaid_pix_is_canceled_when_its_qr_code_expires(env: Env) -> None:
    from web.keys import BILLING

    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body(method="PIX", cardToken=None))
        sid = started["sessionId"]
        await asyncio.sleep(1.2)
        await env.server.app[BILLING].reconcile()
        body = await env.session(sid)
        assert cp.received == []
    assert (body["status"], body["payment"]["status"]) == ("CANCELED", "VOIDED")


@pytest.mark.env(CSMS_OCPP__REMOTE_START_TIMEOUT="0.2")
async def test_a_start_interrupted_after_the_hold_is_released_by_reconciliation(
        env: Env) -> None:
    """The process stopped between reserving the money and asking the station to start."""
    from web.keys import BILLING

    service = env.server.app[BILLING]

    async def interrupted(session_id: str) -> None:
        raise RuntimeError("process stopped here")

    service.sessions.remote_start = interrupted
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        status, _ = await env.post("/charge/start", start_body())
        assert status == 500
        stuck = await env.get("/api/sessions?status=AUTHORIZED")
        assert len(stuck) == 1 and stuck[0]["payment"]["status"] == "AUTHORIZED"
        del service.sessions.remote_start
        await asyncio.sleep(0.3)
        await service.reconcile()
        body = await env.session(stuck[0]["sessionId"])
        assert (body["status"], body["payment"]["status"]) == ("CANCELED", "VOIDED")
        status, _ = await env.post("/charge/start", start_body())  # the connector is free
        assert status == 200
