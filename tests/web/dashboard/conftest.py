"""Browser fixtures: Playwright driving Debian's chromium (Playwright's own browser download is
not reachable here), one browser per test, console errors collected and refused."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.billing.flows import Env, open_env

TOKEN = "operator-secret-token"
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "dashboard"


def chromium_path() -> str | None:
    return os.environ.get("CSMS_TEST_CHROMIUM") or shutil.which("chromium") \
        or shutil.which("chromium-browser")


@pytest.fixture
async def env(tmp_path: Path, aiohttp_server: Any) -> AsyncIterator[Env]:
    """The whole app with the sandbox gateway and an operator token set."""
    async with open_env("sandbox", tmp_path, aiohttp_server,
                        {"CSMS_API__OPERATOR_TOKEN": TOKEN}) as opened:
        yield opened


class Browser:
    """One chromium, one page; `errors` gathers console errors and uncaught exceptions."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.errors: list[str] = []
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    async def goto(self, path: str) -> None:
        await self.page.goto(self.base_url + path)

    async def sign_in(self, token: str = TOKEN) -> None:
        await self.goto("/login")
        await self.page.fill("input[name=token]", token)
        await self.page.click("button[type=submit]")

    async def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    async def mark(self) -> None:
        """Leave a mark in the page: still there later means the page was never reloaded."""
        await self.page.evaluate("window.__notReloaded = true")

    async def not_reloaded(self) -> bool:
        return bool(await self.page.evaluate("window.__notReloaded === true"))


@pytest.fixture
async def browser(env: Env) -> AsyncIterator[Browser]:
    path = chromium_path()
    if path is None:
        pytest.skip("chromium not installed (make test installs it: scripts/ensure-chromium.sh)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=path)
        context = await chromium.new_context(viewport={"width": 1280, "height": 860})
        context.set_default_timeout(10_000)
        opened = Browser(await context.new_page(), env.url)
        try:
            yield opened
        finally:
            await chromium.close()
    assert opened.errors == [], "JavaScript console errors"
