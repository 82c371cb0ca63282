"""What an operator sees of an unattended terminal (CCV, the fake server on its own port): the
station page names its bound terminal and shows the terminal session charging there; the
session page says TERMINAL. Screenshots go to test-artifacts/dashboard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.billing.flows import Env, charge, ready_station
from tests.billing.terminal_flows import TerminalEnv, terminal_env
from tests.support.fake_ccv import DEFAULT_CARD_TOKEN
from tests.support.stations import station
from tests.web.dashboard.conftest import TOKEN, Browser


@pytest.fixture
async def terminal(tmp_path: Path, aiohttp_server: Any) -> AsyncIterator[TerminalEnv]:
    async with terminal_env(tmp_path, aiohttp_server, CSMS_API__OPERATOR_TOKEN=TOKEN) as t:
        yield t


@pytest.fixture
def env(terminal: TerminalEnv) -> Env:
    """The dashboard's browser fixture opens this app: the one with CCV configured."""
    return terminal.env


async def test_the_station_page_shows_its_terminal_and_the_terminal_session(
        terminal: TerminalEnv, browser: Browser) -> None:
    t, page = terminal, browser.page
    async with station(t.env.ws_url, "EVSE-001") as cp:
        await ready_station(t.env, cp)
        await browser.sign_in()
        await browser.goto("/stations/EVSE-001")
        await expect(page.get_by_test_id("terminal")).to_contain_text(
            "none (bind one: PUT /api/stations/EVSE-001/terminal)")

        async with t.env.http.put(f"{t.env.url}/api/stations/EVSE-001/terminal",
                                  headers={"Authorization": f"Bearer {TOKEN}"},
                                  json={"terminalId": "IM30-1",
                                        "managementSystemId": "000103030"}) as resp:
            assert resp.status == 200, await resp.text()
        await browser.goto("/stations/EVSE-001")
        shown = page.get_by_test_id("terminal")
        await expect(shown).to_contain_text("IM30-1")
        await expect(shown).to_contain_text("management system 000103030")

        t.ccv.terminal("IM30-1").queue("approve", DEFAULT_CARD_TOKEN)
        sid = await t.start()
        tx_id = await charge(t.env, cp, sid)
        await browser.goto("/stations/EVSE-001")
        current = page.get_by_test_id("current-transaction")
        await expect(current).to_contain_text(f"Transaction {tx_id}")
        await browser.shot("station-terminal")

        await current.get_by_role("link", name="session").click()
        await expect(page.locator("h1")).to_contain_text(sid[:8])
        await expect(page.locator("dl.facts")).to_contain_text("TERMINAL")
        await expect(page.get_by_test_id("card")).to_have_text("•••• " + DEFAULT_CARD_TOKEN[-4:])
        await expect(page.get_by_test_id("payment-status")).to_have_text("AUTHORIZED")
        await browser.shot("session-terminal")
