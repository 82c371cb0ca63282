"""The real CCV adapter pointed at the fake CCV server (`fake_ccv`)."""

from __future__ import annotations

from typing import Any

from billing.settings import CcvSettings
from tests.support.fake_ccv import FakeCcv

API_KEY = "t_e40a9b36f4c1fa31f512c623bb5a315696e98cea"
MANAGEMENT_SYSTEM_ID = "000103030"


def ccv_settings(fake: FakeCcv, **overrides: object) -> CcvSettings:
    """Settings pointing at the running fake, with its API key; `overrides` win."""
    values: dict[str, object] = {"base_url": fake.base_url, "api_key": API_KEY, "timeout": 5,
                                 "management_system_id": MANAGEMENT_SYSTEM_ID}
    values.update(overrides)
    return CcvSettings.model_validate(values)


async def start_fake_ccv(aiohttp_server: Any) -> FakeCcv:
    """The fake on a real port (pytest-aiohttp's `aiohttp_server` fixture runs it)."""
    fake = FakeCcv(api_key=API_KEY, management_system_id=MANAGEMENT_SYSTEM_ID)
    server = await aiohttp_server(fake.app)
    fake.base_url = f"http://{server.host}:{server.port}"
    return fake
