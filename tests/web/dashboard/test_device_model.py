"""A 2.0.1 station on the dashboard's station page: the commands speak 2.0.1, and the device
model it reports after GetBaseReport is shown (screenshot: station-201-device-model.png)."""

from __future__ import annotations

from playwright.async_api import expect

from tests.billing.flows import Env
from tests.support.commanded201 import commanded201, reported
from tests.support.wait import eventually
from tests.web.dashboard.conftest import Browser


async def test_a_2_0_1_station_reports_its_device_model_on_request(env: Env,
                                                                   browser: Browser) -> None:
    page = browser.page
    await browser.sign_in()
    async with commanded201(env.ws_url, "CP-DM") as cp:
        await cp.status(1, 1, "Available")
        await browser.goto("/stations/CP-DM")
        await expect(page.locator("h1")).to_have_text("Station CP-DM")
        await expect(page.get_by_text("No device-model report yet")).to_be_visible()

        await page.get_by_label("Reset type").select_option("OnIdle")
        await page.get_by_role("button", name="Reset").click()
        await expect(page.get_by_test_id("answer")).to_contain_text(
            'Reset → {"status": "Accepted"}')

        await page.get_by_label("Report").select_option("FullInventory")
        await page.get_by_role("button", name="Request report").click()
        await expect(page.get_by_test_id("answer")).to_contain_text("GetBaseReport → ")
        asked = await eventually(lambda: [p for a, p in cp.received if a == "GetBaseReport"])
        assert asked[0]["report_base"] == "FullInventory"
        await cp.report(asked[0]["request_id"], [
            [reported("OCPPCommCtrlr", "HeartbeatInterval", "300", unit="s"),
             reported("ChargingStation", "Model", "Model201", mutability="ReadOnly")],
            [reported("EVSE", "Power", "22000", evse_id=1, unit="W", mutability="ReadOnly")],
        ])
        await page.reload()
        await expect(page.get_by_test_id("report-summary")).to_contain_text(
            f"Report {asked[0]['request_id']}: 3 value(s) in 2 part(s)")
        table = page.locator("#device-model")
        await expect(table.locator("tbody tr")).to_have_count(3)
        await expect(table.locator("tbody tr").nth(2)).to_contain_text("EVSE")
        await expect(table.locator("tbody tr").nth(2)).to_contain_text("#1")
        await expect(table.locator("tbody tr").nth(2)).to_contain_text("22000")
        await expect(table.locator("tbody tr").nth(0)).to_contain_text("HeartbeatInterval")
        await browser.shot("station-201-device-model")
    assert [a for a, _ in cp.received] == ["Reset", "GetBaseReport"]
    assert cp.received[0][1] == {"type": "OnIdle"}
