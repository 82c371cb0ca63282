"""Remote start and stop from the dashboard, on 1.6 and 2.0.1 stations alike: the pages name
our transaction id, the station gets its own version's call (RequestStopTransaction with its
own transactionId on 2.0.1). A 2.0.1 transaction's pages show the station's transactionId.

Screenshots: transaction-201-running.png, transaction-201-stopped.png, session-201.png,
station-201-remote-start.png, station-16-remote-stop.png."""

from __future__ import annotations

from typing import Any

from ocpp.v16 import call
from playwright.async_api import expect

from tests.billing.flows import Env, ready_station, start_body
from tests.support.stations import station
from tests.support.stations201 import station201
from tests.web.dashboard.conftest import TOKEN, Browser

STATION = "EVSE-001"  # start_body's chargePointId


async def test_a_paid_2_0_1_session_is_shown_and_stopped_from_the_transaction_page(
        env: Env, browser: Browser) -> None:
    page = browser.page
    await browser.sign_in()
    async with station201(env.ws_url, STATION) as cp:
        await cp.boot()
        await cp.status(1, 1, "Available")
        status, body = await env.post("/charge/start", start_body())
        assert status == 200, body
        sid = body["sessionId"]
        request = await cp.wait_for("RequestStartTransaction")
        await cp.event("Started", "TX-201-A", 0, timestamp="2026-11-22T10:00:00Z", wh=1000,
                       id_token=request["id_token"]["id_token"], trigger_reason="RemoteStart",
                       remote_start_id=request["remote_start_id"])
        await cp.event("Updated", "TX-201-A", 1, timestamp="2026-11-22T10:10:00Z", wh=4000)
        await env.wait_session(sid, "CHARGING")

        await browser.goto(f"/sessions/{sid}")
        link = page.get_by_test_id("session-transaction")
        await expect(link).to_contain_text("TX-201-A")
        await expect(link).to_contain_text("OCPP 2.0.1")
        await browser.shot("session-201")
        await link.get_by_role("link", name="TX-201-A").click()
        await expect(page.locator("h1")).to_have_text("Transaction TX-201-A")
        await expect(page.get_by_test_id("tx-version")).to_contain_text("2.0.1")
        await expect(page.get_by_test_id("tx-energy")).to_contain_text("3.000 kWh")
        await expect(page.get_by_test_id("tx-energy")).to_contain_text("meter 1000 → running")
        await expect(page.locator("#meter-values tbody tr")).to_have_count(2)
        await browser.shot("transaction-201-running")

        await page.get_by_role("button", name="Remote stop").click()
        await expect(page.locator(".flash.ok")).to_contain_text("Stop sent")
        assert await cp.wait_for("RequestStopTransaction") == {"transaction_id": "TX-201-A"}
        assert (await env.session(sid))["status"] == "STOPPING"
        await cp.event("Ended", "TX-201-A", 2, timestamp="2026-11-22T10:30:00Z", wh=13345,
                       trigger_reason="RemoteStop", stopped_reason="Remote")
        done = await env.wait_session(sid, "COMPLETED", "CAPTURED")
        assert done["costCents"] == 2052  # 12,345 Wh at 1.50/kWh + 2.00, half-up
        await expect(page.get_by_test_id("tx-stopped")).to_contain_text("(Remote)")
        await expect(page.get_by_role("button", name="Remote stop")).to_have_count(0)
        await expect(page.get_by_test_id("tx-energy")).to_contain_text("12.345 kWh")
        await browser.shot("transaction-201-stopped")

        # the station's own id addresses the page too, as in the API
        await browser.goto(f"/transactions/TX-201-A?stationId={STATION}")
        await expect(page.locator("h1")).to_have_text("Transaction TX-201-A")
    assert cp.requests("RequestStopTransaction") == [{"transaction_id": "TX-201-A"}]


async def test_an_operator_starts_and_stops_a_2_0_1_station_from_its_page(
        env: Env, browser: Browser) -> None:
    page = browser.page
    await browser.sign_in()
    async with station201(env.ws_url, "CP-201") as cp:
        await cp.boot()
        await cp.status(1, 1, "Available")
        await browser.goto("/stations/CP-201")
        await page.get_by_label("EVSE to start on").fill("1")
        await page.get_by_label("idTag to start for").fill("OPERATOR-7")
        await page.get_by_role("button", name="Start", exact=True).click()
        await expect(page.locator(".flash.ok")).to_contain_text(
            "Remote start on #1 for OPERATOR-7: the station accepted it")
        request = await cp.wait_for("RequestStartTransaction")
        assert (request["evse_id"], request["id_token"]["id_token"]) == (1, "OPERATOR-7")

        await cp.event("Started", "tx-op-7", 0, timestamp="2026-11-22T10:00:00Z", wh=500,
                       id_token="OPERATOR-7", trigger_reason="RemoteStart",
                       remote_start_id=request["remote_start_id"])
        current = page.get_by_test_id("current-transaction")
        await expect(current).to_contain_text("Transaction tx-op-7 on EVSE #1")
        await expect(current).to_contain_text("OPERATOR-7")
        await current.get_by_role("button", name="Remote stop").click()
        await expect(page.locator("h1")).to_have_text("Station CP-201")
        await expect(page.locator(".flash.ok")).to_contain_text(
            "Remote stop: the station accepted it")
        assert await cp.wait_for("RequestStopTransaction") == {"transaction_id": "tx-op-7"}
        await browser.shot("station-201-remote-start")

        cp.stop_status = "Rejected"
        await current.get_by_role("button", name="Remote stop").click()
        await expect(page.locator(".flash.error")).to_contain_text(
            "Remote stop: the station rejected it")
        await cp.event("Ended", "tx-op-7", 1, timestamp="2026-11-22T10:20:00Z", wh=2500,
                       trigger_reason="StopAuthorized", stopped_reason="Local")
        await expect(page.get_by_text("No transaction running here.")).to_be_visible()
        await expect(page.locator("#recent-transactions")).to_contain_text("tx-op-7")
    tx = await _api_transaction(env, "tx-op-7", "CP-201")
    assert (tx["energyWh"], tx["idTag"], tx["sessionId"]) == (2000, "OPERATOR-7", None)


async def test_the_same_buttons_work_on_a_1_6_station(env: Env, browser: Browser) -> None:
    page = browser.page
    await browser.sign_in()
    async with station(env.ws_url, "CP-16") as cp:
        await ready_station(env, cp)
        await browser.goto("/stations/CP-16")
        await page.get_by_label("Connector to start on").fill("1")
        await page.get_by_label("idTag to start for").fill("OPERATOR-16")
        await page.get_by_role("button", name="Start", exact=True).click()
        await expect(page.locator(".flash.ok")).to_contain_text("the station accepted it")
        remote = await cp.wait_for("RemoteStartTransaction")
        assert (remote["connector_id"], remote["id_tag"]) == (1, "OPERATOR-16")
        started = await cp.call(call.StartTransaction(
            connector_id=1, id_tag="OPERATOR-16", meter_start=0,
            timestamp="2026-11-22T10:00:00Z"))
        current = page.get_by_test_id("current-transaction")
        await expect(current).to_contain_text(f"Transaction {started.transaction_id}")
        await current.get_by_role("button", name="Remote stop").click()
        await expect(page.locator(".flash.ok")).to_contain_text(
            "Remote stop: the station accepted it")
        stop = await cp.wait_for("RemoteStopTransaction")
        assert stop == {"transaction_id": started.transaction_id}
        await browser.shot("station-16-remote-stop")


async def test_bad_start_and_stop_forms_get_a_message_not_an_error(
        env: Env, browser: Browser) -> None:
    page = browser.page
    await browser.sign_in()
    async with station201(env.ws_url, "CP-BAD") as cp:
        await cp.boot()
        await browser.goto("/stations/CP-BAD")
        await page.get_by_label("idTag to start for").fill("X" * 36)
        await page.get_by_label("EVSE to start on").fill("1")
        cp.start_status = "Rejected"
        await page.get_by_role("button", name="Start", exact=True).click()
        await expect(page.locator(".flash.error")).to_contain_text("rejected it")
    await browser.goto("/stations/CP-BAD")  # the station left: refused with a reason
    await page.get_by_label("idTag to start for").fill("LATE")
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(page.locator(".flash.error")).to_contain_text("StationNotConnected")
    for path in ("/transactions/99999999999999999999", "/transactions/-1",
                 "/transactions/%EF%BC%91", "/transactions/TX-1?stationId=CP-BAD"):
        response = await page.request.get(browser.base_url + path)  # signed in
        assert response.status == 404, path
        assert "Not found" in await response.text()


async def _api_transaction(env: Env, transaction_id: str, station_id: str) -> dict[str, Any]:
    async with env.http.get(f"{env.url}/api/transactions/{transaction_id}",
                            params={"stationId": station_id},
                            headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.status == 200
        return dict(await resp.json())
