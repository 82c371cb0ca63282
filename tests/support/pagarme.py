"""The real Pagar.me adapter pointed at the fake Pagar.me server (`fake_pagarme`)."""

from __future__ import annotations

from typing import Any

from billing.settings import PagarmeSettings
from tests.support.fake_pagarme import PREFIX, FakePagarme
from tests.support.wallets import APPLE_MERCHANT

SECRET_KEY = "sk_test_4f1c2e"


def pagarme_settings(fake: FakePagarme, **overrides: object) -> PagarmeSettings:
    """Settings pointing at the running fake, with its secret key; `overrides` win."""
    values: dict[str, object] = {"base_url": fake.base_url, "secret_key": SECRET_KEY, "timeout": 5,
                                 "apple_pay_merchant_identifier": APPLE_MERCHANT}
    values.update(overrides)
    return PagarmeSettings.model_validate(values)


async def start_fake_pagarme(aiohttp_server: Any) -> FakePagarme:
    """The fake on a real port (pytest-aiohttp's `aiohttp_server` fixture runs it)."""
    fake = FakePagarme(secret_key=SECRET_KEY)
    server = await aiohttp_server(fake.app)
    fake.base_url = f"http://{server.host}:{server.port}{PREFIX}"
    return fake
