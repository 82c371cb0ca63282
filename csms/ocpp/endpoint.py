"""`GET /ocpp/{stationId}`: authenticate the station, negotiate the version, hand over.

Subprotocol policy (OCPP-J 1.6 §3.1.2): a station offering several subprotocols gets the newest
version we speak among them, whatever the order it listed them in. A client offering
subprotocols none of which we speak gets the handshake completed without a
Sec-WebSocket-Protocol header and the connection closed at once. A client offering none at all
is accepted as OCPP 1.6 (some real chargers send no header), unless `ocpp.require_subprotocol`
is true, in which case it is treated like a mismatch.

Security profiles: each station connects with its own profile when it was provisioned with one,
else with `ocpp.security_profile`. 1 and 2 authenticate a station with its password (when it has
one) by HTTP Basic; 2 also refuses a connection that is not TLS (`csms serve` provides TLS); 3
takes the verified client certificate instead, whose subject CN must be the station id, so one
station's certificate never opens another's connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import BasicAuth, WSCloseCode, web

from csms.domain import valid_station_id
from csms.keys import HUB, METRICS, OCPP_SETTINGS, STORE
from csms.metrics import Metrics
from csms.ocpp import v16, v201
from csms.ocpp.hub import WebSocketConnection
from csms.ocpp.version import OcppVersion
from csms.passwords import verify_password
from csms.settings import OcppSettings
from csms.store import Store

log = logging.getLogger(__name__)

# The versions we speak, newest first (the order of preference); a station that offers no
# subprotocol speaks the default, 1.6.
VERSIONS: tuple[OcppVersion, ...] = (v201.VERSION, v16.VERSION)
DEFAULT_VERSION = v16.VERSION
SUPPORTED_SUBPROTOCOLS = tuple(version.subprotocol for version in VERSIONS)
MAX_MESSAGE_BYTES = 1024 * 1024  # a longer message closes the connection (1009)


# scrypt costs ~40 ms of CPU: run it in threads (hashlib releases the GIL), a few at a time,
# so a burst of reconnects or of wrong passwords cannot stall the event loop.
_PASSWORD_CHECKS = asyncio.Semaphore(4)


async def _verify(password: str, encoded: str) -> bool:
    async with _PASSWORD_CHECKS:
        return await asyncio.to_thread(verify_password, password, encoded)


class Refusal(Exception):
    """An upgrade we refuse: its HTTP status, the message and any headers to send."""

    def __init__(self, status: int, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class Upgrade:
    """A station's websocket upgrade request, whoever parsed it: aiohttp's route or the lean
    station port (`web/station_port.py`). `headers` looks names up case-insensitively."""

    station_id: str
    headers: Mapping[str, str]
    transport: asyncio.BaseTransport | None

    @property
    def offered(self) -> list[str]:
        header = self.headers.get("Sec-WebSocket-Protocol", "")
        return [p.strip() for p in header.split(",") if p.strip()]


@dataclass(frozen=True, slots=True)
class Admission:
    """An upgrade that passed: the version agreed on, or None when the station offered none we
    speak (the handshake completes without a subprotocol and the connection closes at once,
    OCPP-J 1.6 §3.1.2: see `refused_subprotocol`)."""

    version: OcppVersion | None
    offered: list[str]

    @property
    def subprotocols(self) -> tuple[str, ...]:
        return (self.version.subprotocol,) if self.version else ()


def _basic_credentials(upgrade: Upgrade) -> BasicAuth | None:
    try:
        return BasicAuth.decode(upgrade.headers.get("Authorization", ""), encoding="utf-8")
    except ValueError:  # missing, not Basic, bad base64, not UTF-8, no colon
        return None


def _certificate_cn(upgrade: Upgrade) -> str | None:
    """The subject CN of the client certificate the TLS layer verified (None: none offered)."""
    transport = upgrade.transport
    peer = transport.get_extra_info("peercert") if transport is not None else None
    for rdn in (peer or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


def _over_tls(upgrade: Upgrade) -> bool:
    """The connection itself is TLS (not a header a proxy or a client could set)."""
    transport = upgrade.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


def negotiate(offered: list[str]) -> OcppVersion | None:
    """Our preferred version among those offered (see VERSIONS); None when there is none."""
    return next((v for v in VERSIONS if v.subprotocol in offered), None)


async def authenticate(upgrade: Upgrade, metrics: Metrics, profile: int,
                       password_hash: str | None) -> None:
    """Raise the refusal unless the upgrade meets the station's security profile."""
    station_id = upgrade.station_id
    if profile == 3:  # the certificate is the credential
        if _certificate_cn(upgrade) != station_id:
            metrics.connections.labels("certificate").inc()
            log.warning("%s: refused, no client certificate issued to this station", station_id)
            raise Refusal(403, "a client certificate issued to this station is required")
        return
    if profile == 2 and not _over_tls(upgrade):
        metrics.connections.labels("not_tls").inc()
        log.warning("%s: refused, security profile 2 needs TLS (wss://)", station_id)
        raise Refusal(403, "this station must connect over TLS (wss://)")
    if password_hash:
        credentials = _basic_credentials(upgrade)
        if credentials is None or credentials.login != station_id or \
                not await _verify(credentials.password, password_hash):
            metrics.connections.labels("unauthorized").inc()
            log.warning("%s: refused, wrong or missing credentials", station_id)
            raise Refusal(401, "station credentials required",
                          {"WWW-Authenticate": 'Basic realm="ocpp", charset="UTF-8"'})


async def admit(upgrade: Upgrade, *, store: Store, settings: OcppSettings,
                metrics: Metrics) -> Admission:
    """Check a station's upgrade: its id, that we know it (or take unknown stations), its
    credentials for its security profile; then the version. Raises `Refusal`."""
    station_id = upgrade.station_id
    if not valid_station_id(station_id):
        metrics.connections.labels("bad_id").inc()
        raise Refusal(400, "invalid station id")
    station = await store.get_station(station_id)
    provisioned = station is not None and station.provisioned
    if not provisioned and not settings.allow_unknown_stations:
        metrics.connections.labels("unknown").inc()
        log.warning("%s: refused, station is not provisioned", station_id)
        raise Refusal(404, "unknown station")
    if station is None:
        await authenticate(upgrade, metrics, settings.security_profile, None)
    else:
        await authenticate(upgrade, metrics, station.profile(settings.security_profile),
                           station.password_hash)
    offered = upgrade.offered
    return Admission(negotiate(offered), offered)


def refused_subprotocol(admission: Admission, station_id: str, settings: OcppSettings,
                        metrics: Metrics) -> bool:
    """Whether the handshake just completed must be closed at once (1002): the station offered
    subprotocols, none ours, or offered none where one is required. Counts the outcome."""
    if admission.version is None and (admission.offered or settings.require_subprotocol):
        metrics.connections.labels("subprotocol").inc()
        log.warning("%s: refused, offered subprotocols %s", station_id,
                    admission.offered or "none")
        return True
    metrics.connections.labels("accepted").inc()
    return False


_REFUSALS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 403: web.HTTPForbidden,
    404: web.HTTPNotFound}


async def ocpp_websocket(request: web.Request) -> web.StreamResponse:
    """The upgrade through aiohttp's router: what a station gets when its connection did not go
    through the lean station port (an HTTP keep-alive connection reused for the upgrade,
    permessage-deflate on, or an app served by plain aiohttp as in some tests)."""
    app = request.config_dict
    settings, metrics = app[OCPP_SETTINGS], app[METRICS]
    upgrade = Upgrade(request.match_info["station_id"], request.headers, request.transport)
    try:
        admission = await admit(upgrade, store=app[STORE], settings=settings, metrics=metrics)
    except Refusal as refusal:
        raise _REFUSALS[refusal.status](text=refusal.message, headers=refusal.headers) \
            from None
    # aiohttp picks the first offered protocol it knows; offer it only the one we agreed on.
    ws = web.WebSocketResponse(protocols=admission.subprotocols,
                               autoping=True, max_msg_size=MAX_MESSAGE_BYTES,
                               compress=settings.websocket_compression)
    await ws.prepare(request)
    if refused_subprotocol(admission, upgrade.station_id, settings, metrics):
        await ws.close(code=WSCloseCode.PROTOCOL_ERROR, message=b"unsupported subprotocol")
        return ws
    await app[HUB].serve(upgrade.station_id, WebSocketConnection(ws),
                         admission.version or DEFAULT_VERSION)
    return ws
