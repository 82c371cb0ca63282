"""What is left open: the checks behind `server.mode = "production"`.

Development defaults (open APIs, unknown stations accepted, the sandbox gateway with an open
webhook) are exactly what an install gets when nobody changes them. At start-up every open key is
listed once: production mode refuses to start with that list; development logs it as one warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from csms.domain import Station
from csms.settings import ConfigError
from web.settings import Settings

log = logging.getLogger(__name__)


def open_settings(settings: Settings) -> list[str]:
    """Every key whose value leaves a surface open, as `key: why`."""
    found = []
    if not settings.api.operator_token:
        found.append("api.operator_token: empty, the operator API at /api is open to anyone")
    if not settings.api.driver_keys:
        found.append("api.driver_keys: empty, the driver API at /charge is open to anyone")
    if settings.ocpp.allow_unknown_stations:
        found.append("ocpp.allow_unknown_stations: true, any station id may connect")
    billing = settings.billing
    if billing.gateway == "sandbox":
        found.append("billing.gateway: \"sandbox\" approves every card and takes no money")
    if billing.gateway == "pagarme" and not billing.pagarme.secret_key:
        found.append("billing.pagarme.secret_key: empty")
    for key in ("webhook_user", "webhook_password"):
        if not getattr(billing.pagarme, key):
            found.append(f"billing.pagarme.{key}: empty, webhooks cannot be authenticated")
    return found


def open_stations(settings: Settings, stations: Iterable[Station]) -> list[str]:
    """Provisioned stations that would connect without any credential (profile 3: none, the
    client certificate is every station's credential)."""
    if settings.ocpp.security_profile == 3:
        return []
    return [f"station {station.id}: provisioned without a password "
            f"(csms station add {station.id} --password ...)"
            for station in stations if station.provisioned and not station.password_hash]


def enforce(settings: Settings, findings: list[str]) -> None:
    """Production: refuse to start, naming every finding. Development: one warning."""
    if not findings:
        return
    listing = "\n  - ".join(findings)
    if settings.server.mode == "production":
        raise ConfigError(f"server.mode is \"production\" and the configuration is open:"
                          f"\n  - {listing}")
    log.warning("development mode, open configuration (refused with server.mode = "
                "\"production\"):\n  - %s", listing)
