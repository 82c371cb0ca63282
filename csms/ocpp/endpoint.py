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

from aiohttp import BasicAuth, WSCloseCode, web

from csms.domain import valid_station_id
from csms.keys import HUB, METRICS, OCPP_SETTINGS, STORE
from csms.ocpp import v16, v201
from csms.ocpp.version import OcppVersion
from csms.passwords import verify_password

log = logging.getLogger(__name__)

# The versions we speak, newest first (the order of preference); a station that offers no
# subprotocol speaks the default, 1.6.
VERSIONS: tuple[OcppVersion, ...] = (v201.VERSION, v16.VERSION)
DEFAULT_VERSION = v16.VERSION
SUPPORTED_SUBPROTOCOLS = tuple(version.subprotocol for version in VERSIONS)


# scrypt costs ~40 ms of CPU: run it in threads (hashlib releases the GIL), a few at a time,
# so a burst of reconnects or of wrong passwords cannot stall the event loop.
_PASSWORD_CHECKS = asyncio.Semaphore(4)


async def _verify(password: str, encoded: str) -> bool:
    async with _PASSWORD_CHECKS:
        return await asyncio.to_thread(verify_password, password, encoded)


def _basic_credentials(request: web.Request) -> BasicAuth | None:
    try:
        return BasicAuth.decode(request.headers.get("Authorization", ""), encoding="utf-8")
    except ValueError:  # missing, not Basic, bad base64, not UTF-8, no colon
        return None


def _certificate_cn(request: web.Request) -> str | None:
    """The subject CN of the client certificate the TLS layer verified (None: none offered)."""
    transport = request.transport
    peer = transport.get_extra_info("peercert") if transport is not None else None
    for rdn in (peer or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


def _over_tls(request: web.Request) -> bool:
    """The connection itself is TLS (not a header a proxy or a client could set)."""
    transport = request.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


def _offered(request: web.Request) -> list[str]:
    header = request.headers.get("Sec-WebSocket-Protocol", "")
    return [p.strip() for p in header.split(",") if p.strip()]


def negotiate(offered: list[str]) -> OcppVersion | None:
    """Our preferred version among those offered (see VERSIONS); None when there is none."""
    return next((v for v in VERSIONS if v.subprotocol in offered), None)


async def authenticate(request: web.Request, station_id: str, profile: int,
                       password_hash: str | None) -> None:
    """Raise the HTTP refusal unless the upgrade meets the station's security profile."""
    metrics = request.config_dict[METRICS]
    if profile == 3:  # the certificate is the credential
        if _certificate_cn(request) != station_id:
            metrics.connections.labels("certificate").inc()
            log.warning("%s: refused, no client certificate issued to this station", station_id)
            raise web.HTTPForbidden(text="a client certificate issued to this station is required")
        return
    if profile == 2 and not _over_tls(request):
        metrics.connections.labels("not_tls").inc()
        log.warning("%s: refused, security profile 2 needs TLS (wss://)", station_id)
        raise web.HTTPForbidden(text="this station must connect over TLS (wss://)")
    if password_hash:
        credentials = _basic_credentials(request)
        if credentials is None or credentials.login != station_id or \
                not await _verify(credentials.password, password_hash):
            metrics.connections.labels("unauthorized").inc()
            log.warning("%s: refused, wrong or missing credentials", station_id)
            raise web.HTTPUnauthorized(
                text="station credentials required",
                headers={"WWW-Authenticate": 'Basic realm="ocpp", charset="UTF-8"'})


async def ocpp_websocket(request: web.Request) -> web.StreamResponse:
    app = request.config_dict
    settings = app[OCPP_SETTINGS]
    metrics = app[METRICS]
    station_id = request.match_info["station_id"]
    if not valid_station_id(station_id):
        metrics.connections.labels("bad_id").inc()
        raise web.HTTPBadRequest(text="invalid station id")

    station = await app[STORE].get_station(station_id)
    provisioned = station is not None and station.provisioned
    if not provisioned and not settings.allow_unknown_stations:
        metrics.connections.labels("unknown").inc()
        log.warning("%s: refused, station is not provisioned", station_id)
        raise web.HTTPNotFound(text="unknown station")
    if station is None:
        await authenticate(request, station_id, settings.security_profile, None)
    else:
        await authenticate(request, station_id, station.profile(settings.security_profile),
                           station.password_hash)

    offered = _offered(request)
    agreed = negotiate(offered)
    # aiohttp picks the first offered protocol it knows; offer it only the one we agreed on.
    ws = web.WebSocketResponse(protocols=(agreed.subprotocol,) if agreed else (),
                               autoping=True, max_msg_size=1024 * 1024,
                               compress=settings.websocket_compression)
    await ws.prepare(request)
    if agreed is None and (offered or settings.require_subprotocol):
        metrics.connections.labels("subprotocol").inc()
        log.warning("%s: refused, offered subprotocols %s", station_id, offered or "none")
        await ws.close(code=WSCloseCode.PROTOCOL_ERROR, message=b"unsupported subprotocol")
        return ws
    metrics.connections.labels("accepted").inc()
    await app[HUB].serve(station_id, ws, agreed or DEFAULT_VERSION)
    return ws
