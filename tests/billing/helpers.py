"""Shared test helpers for the Pagar.me adapter tests."""

from __future__ import annotations

from billing.settings import PagarmeSettings
from tests.billing.fake_pagarme import FakePagarme

SECRET_KEY = "sk_test_4f1c2e"


def pagarme_settings(fake: FakePagarme, **overrides: object) -> PagarmeSettings:
    """Settings pointing at the running fake, with its secret key; `overrides` win."""
    values: dict[str, object] = {"base_url": fake.base_url, "secret_key": SECRET_KEY, "timeout": 5}
    values.update(overrides)
    return PagarmeSettings.model_validate(values)
