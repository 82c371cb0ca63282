"""What an operator sees in a real browser: sign-in, live stations and sessions, a command
round trip, the ledger after a capture, a refund. Screenshots go to test-artifacts/dashboard."""

from __future__ import annotations

import re

from ocpp.v16 import call
from playwright.async_api import expect

from tests.billing.flows import Env, charge, hijacked, ready_station, start_body, stop_tx
from tests.support.held_connects import hold_connects
from tests.support.stations import station
from tests.web.dashboard.conftest import TOKEN, Browser

ENERGY = "Energy.Active.Import.Register"


async def test_sign_in_refuses_a_wrong_token_and_sets_a_strict_httponly_cookie(
        env: Env, browser: Browser) -> None:
    page = browser.page
    await browser.goto("/sessions")
    await expect(page).to_have_url(re.compile(r"/login\?next=/sessions$"))
    await browser.shot("login")

    await page.fill("input[name=token]", "not-the-token")
    await page.click("button[type=submit]")
    await expect(page.get_by_role("alert")).to_contain_text("not the operator token")
    assert browser.errors == ["Failed to load resource: the server responded with a status of "
                              "401 (Unauthorized)"]  # the refused sign-in itself
    browser.errors.clear()

    await page.fill("input[name=token]", TOKEN)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Sessions")
    cookie, = [c for c in await page.context.cookies() if c["name"] == "csms_dashboard"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert await page.evaluate("document.cookie") == ""

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    await browser.goto("/")
    await expect(page).to_have_url(re.compile(r"/login\?next=/$"))


async def test_a_station_appears_live_and_answers_a_command(env: Env, browser: Browser) -> None:
    page = browser.page
    await browser.sign_in()
    await browser.goto("/stations")
    await expect(page.locator(".empty")).to_contain_text("point a charger at")
    await browser.shot("stations-empty")
    await browser.mark()

    async with station(env.ws_url, "CP-LIVE") as cp:
        await ready_station(env, cp)
        row = page.locator("tr[data-station='CP-LIVE']")
        await expect(row).to_contain_text("online")
        await expect(row).to_contain_text("TestVendor")
        await expect(row).to_contain_text("Available")
        assert await browser.not_reloaded()
        await browser.shot("stations")

        await row.get_by_role("link", name="CP-LIVE").click()
        await expect(page.locator("h1")).to_have_text("Station CP-LIVE")
        await page.get_by_role("button", name="Reset").click()
        answer = page.get_by_test_id("answer")
        await expect(answer).to_contain_text('Reset → {"status": "Accepted"}')
        assert (await cp.wait_for("Reset"))["type"] == "Soft"
        await expect(page.locator("#frames-table")).to_contain_text('"Reset"')
        await browser.shot("station")


async def test_a_new_station_appears_live_before_its_connect_is_written(
        env: Env, browser: Browser) -> None:
    """The list is fetched again on the station's connect event, which comes before the
    batched write of the connect creates its row (`csms.connection_writer`): it is shown
    online from the hub meanwhile, not missing."""
    held = hold_connects(env.server.app)
    try:
        page = browser.page
        await browser.sign_in()
        await browser.goto("/stations")
        await expect(page.locator(".empty")).to_be_visible()
        await browser.mark()
        async with station(env.ws_url, "CP-NEW"):
            row = page.locator("tr[data-station='CP-NEW']")
            await expect(row).to_contain_text("online")
            assert held.noted == {"CP-NEW": True}
            assert await held.store.get_station("CP-NEW") is None  # not stored yet
            assert await browser.not_reloaded()
            await browser.shot("stations-new-unwritten")
            await row.get_by_role("link", name="CP-NEW").click()
            await expect(page.locator("h1")).to_have_text("Station CP-NEW")
    finally:
        held.release.set()  # the app's stop waits for a held write


async def test_running_cost_moves_live_then_the_capture_and_a_refund_show_in_the_ledger(
        env: Env, browser: Browser) -> None:
    page = browser.page
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        status, started = await env.post("/charge/start", start_body())
        assert status == 200, started
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid)

        await browser.sign_in()
        await browser.goto(f"/sessions/{sid}")
        await expect(page.get_by_test_id("cost")).to_contain_text("0.00")
        await browser.mark()
        # 2,000 Wh at 1.50/kWh plus the 2.00 fee: 5.00
        await cp.call(call.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=[
            {"timestamp": "2026-11-22T10:10:00Z", "sampledValue": [
                {"value": "2000", "measurand": ENERGY, "unit": "Wh"},
                {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"}]}]))
        await expect(page.get_by_test_id("cost")).to_contain_text("5.00 BRL")
        await expect(page.get_by_test_id("energy")).to_have_text("2.000 kWh")
        await browser.shot("session-charging")

        # 4,000 Wh: 8.00 captured from the 50.00 hold, the rest released
        await cp.call(stop_tx(tx_id, 4000))
        capture = page.locator("#ledger tr[data-op=CAPTURE]")
        await expect(capture).to_contain_text("8.00")
        await expect(capture).to_contain_text("SUCCEEDED")
        await expect(page.get_by_test_id("captured")).to_have_text("8.00")
        await expect(page.get_by_test_id("payment-status")).to_have_text("CAPTURED")
        assert await browser.not_reloaded()

        await page.fill("#refund-amount", "3.00")
        await page.get_by_role("button", name="Refund").click()
        await expect(page.locator(".flash.ok")).to_contain_text("Refund of 3.00")
        refund = page.locator("#ledger tr[data-op=REFUND]")
        await expect(refund).to_contain_text("3.00")
        await expect(refund).to_contain_text("SUCCEEDED")
        await expect(page.get_by_test_id("refunded")).to_have_text("3.00")
        await expect(page.get_by_test_id("payment-status")).to_have_text("PARTIALLY REFUNDED")
        await browser.shot("session")
        assert (await env.session(sid))["payment"]["refundedAmount"] == 300

        await page.get_by_role("link", name=str(tx_id), exact=True).click()
        await expect(page.locator("h1")).to_have_text(f"Transaction {tx_id}")
        await expect(page.locator("#chart canvas")).to_have_count(1)
        await expect(page.locator("#meter-values")).to_contain_text("7.2")
        await browser.shot("transaction")

        for path, name in (("/", "overview"), ("/sessions?show=all", "sessions"),
                           ("/jobs", "jobs"), ("/tariffs", "tariffs"), ("/id-tags", "id-tags")):
            await browser.goto(path)
            await expect(page.locator("main h1")).to_be_visible()
            await browser.shot(name)
        await browser.goto("/")
        await expect(page.get_by_test_id("captured-today")).to_contain_text("8.00")
        await page.set_viewport_size({"width": 390, "height": 844})
        await browser.shot("overview-phone")


async def test_an_operator_decides_a_session_in_review(env: Env, browser: Browser) -> None:
    """Implausible energy: the overview lists the session; its page charges what is owed."""
    sid, _ = await hijacked(env)
    await env.wait_session(sid, "REVIEW")
    await browser.sign_in()
    await browser.goto("/")
    await expect(browser.page.locator("#review-sessions")).to_contain_text(sid[:10])
    await browser.shot("overview-review")
    await browser.goto(f"/sessions/{sid}")
    review = browser.page.get_by_test_id("review")
    await expect(review).to_contain_text("implausible energy")
    await browser.shot("session-review")
    await review.locator("input[name=amount]").fill("5.00")
    await review.get_by_role("button", name="Charge", exact=True).click()
    await expect(browser.page.locator(".flash")).to_contain_text("completed")
    done = await env.wait_session(sid, "COMPLETED", "CAPTURED")
    assert done["payment"]["capturedAmount"] == 500
