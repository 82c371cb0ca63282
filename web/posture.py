"""What is left open: the checks behind `server.mode = "production"`.

Development defaults (open APIs, unknown stations accepted, the sandbox gateway with an open
webhook) are exactly what an install gets when nobody changes them. At start-up every open key is
listed once, with every station whose security profile leaves it open or the server's TLS cannot
serve: production mode refuses to start with that list; development logs it as one warning.
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
    return found + open_terminal_settings(settings)


def open_terminal_settings(settings: Settings) -> list[str]:
    """What leaves terminal payments (CCV, on once `billing.ccv.api_key` is set) open."""
    ccv = settings.billing.ccv
    if not ccv.configured:
        return []
    found = []
    if not settings.api.terminal_keys:
        found.append("api.terminal_keys: empty, the terminal API at /terminal is open to anyone")
    if not ccv.webhook_secret:
        found.append("billing.ccv.webhook_secret: empty, CCV's webhooks cannot be "
                     "authenticated")
    if not settings.server.public_url.startswith("https://"):
        found.append("server.public_url: CCV posts webhooks to https:// URLs only")
    if not ccv.base_url.startswith("https://"):
        found.append("billing.ccv.base_url: not https://, the API key would travel in clear")
    if not ccv.management_system_id:
        found.append("billing.ccv.management_system_id: empty, terminals bound without one "
                     "cannot be reached")
    return found


def _provisioned(settings: Settings, stations: Iterable[Station]) -> list[tuple[Station, int]]:
    """Provisioned stations, each with its effective security profile."""
    default = settings.ocpp.security_profile
    return [(s, s.profile(default)) for s in stations if s.provisioned]


def open_stations(settings: Settings, stations: Iterable[Station]) -> list[str]:
    """Provisioned stations that would connect without any credential at their effective
    profile: at 1 and 2 the password is the credential; at 3 the client certificate."""
    return [f"station {station.id}: provisioned without a password "
            f"(csms station add {station.id} --password ...)"
            for station, profile in _provisioned(settings, stations)
            if profile < 3 and not station.password_hash]


def unservable_stations(settings: Settings, stations: Iterable[Station]) -> list[str]:
    """Provisioned stations whose effective profile the server's TLS cannot serve: they could
    never connect (a station's own profile is not checked against the settings on load)."""
    server, found = settings.server, []
    for station, profile in _provisioned(settings, stations):
        if profile >= 2 and not server.tls_cert_file:
            found.append(f"station {station.id}: security profile {profile} needs TLS, "
                         "server.tls_cert_file is empty")
        elif profile == 3 and not server.tls_client_ca_file:
            found.append(f"station {station.id}: security profile 3 needs client certificates, "
                         "server.tls_client_ca_file is empty")
    return found


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
