"""Security profiles 2 (TLS + Basic) and 3 (mutual TLS, CN = station id) on one port, server-wide
and per station, with certificates made here and an independent client (Python's ssl +
websockets)."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, InvalidStatus

from csms.passwords import hash_password
from csms.settings import ConfigError
from csms.store.sqlite import SqliteStore
from tests.conftest import make_settings
from tests.support.server import server_for
from web.app import create_app
from web.settings import load_settings
from web.tls import server_context

# security profiles 2 and 3 read the TLS transport's `ssl_object` and `peercert` through the
# station port, and asyncio's and uvloop's TLS transports are different code
pytestmark = pytest.mark.both_loops  # see tests/conftest.py


@dataclass
class Issued:
    cert: Path
    key: Path


class Authority:
    """A CA that issues server and station certificates into a directory."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory, self.name = directory, name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = self._build(subject, subject, self.key.public_key(), ca=True)
        self.path = directory / f"{name}.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _build(self, subject: x509.Name, issuer: x509.Name, public_key: Any, *, ca: bool,
               san: x509.SubjectAlternativeName | None = None) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            builder = builder.add_extension(
                x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        else:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False)
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue(self, common_name: str, *, server: bool = False) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]) \
            if server else None
        cert = self._build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
                           self.cert.subject, key.public_key(), ca=False, san=san)
        issued = Issued(self.directory / f"{self.name}-{common_name}.crt",
                        self.directory / f"{self.name}-{common_name}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        return issued


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    ca, rogue = Authority(tmp_path, "ca"), Authority(tmp_path, "rogue")
    return {"ca": ca, "server": ca.issue("localhost", server=True),
            "evse1": ca.issue("EVSE-001"), "evse2": ca.issue("EVSE-002"),
            "rogue1": rogue.issue("EVSE-001")}


def _client(pki: dict[str, Any], cert: Issued | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"].path))
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    return context


@pytest.fixture
async def start_tls(tmp_path: Path, pki: dict[str, Any]) -> AsyncIterator[Any]:
    """Start the app over TLS, the context built as `csms serve` builds it; returns host:port."""
    servers: list[TestServer] = []

    async def start(**env: str) -> str:
        settings = make_settings(tmp_path, CSMS_SERVER__TLS_CERT_FILE=str(pki["server"].cert),
                                 CSMS_SERVER__TLS_KEY_FILE=str(pki["server"].key), **env)
        server = server_for(create_app(settings), host="127.0.0.1")
        await server.start_server(ssl=server_context(settings.server))
        servers.append(server)
        return f"127.0.0.1:{server.port}"

    yield start
    for server in servers:
        await server.close()


async def _opens(url: str, context: ssl.SSLContext | None,
                 headers: dict[str, str] | None = None) -> bool:
    try:
        async with connect(url, ssl=context, subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           additional_headers=headers, open_timeout=5) as ws:
            return ws.subprotocol == "ocpp1.6"
    except InvalidStatus as exc:  # refused at the upgrade
        assert exc.response.status_code in (401, 403)
        return False


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_profile_2_serves_https_and_wss_with_basic(tmp_path: Path, start_tls: Any,
                                                         pki: dict[str, Any]) -> None:
    settings_db = make_settings(tmp_path).store.sqlite_path
    store = SqliteStore(settings_db)
    await store.open()
    await store.provision_station("EVSE-001", hash_password("a-long-secret"))
    await store.close()
    address = await start_tls(CSMS_OCPP__SECURITY_PROFILE="2")
    client = _client(pki)

    async with aiohttp.ClientSession() as http:
        async with http.get(f"https://{address}/healthz", ssl=client) as resp:
            assert resp.status == 200
    url = f"wss://{address}/ocpp/EVSE-001"
    assert await _opens(url, client, _basic("EVSE-001", "a-long-secret"))
    assert not await _opens(url, client, _basic("EVSE-001", "wrong"))
    assert not await _opens(url, client)


async def test_profile_3_wants_the_stations_own_certificate(start_tls: Any,
                                                            pki: dict[str, Any]) -> None:
    address = await start_tls(CSMS_OCPP__SECURITY_PROFILE="3",
                              CSMS_SERVER__TLS_CLIENT_CA_FILE=str(pki["ca"].path))
    url = f"wss://{address}/ocpp/EVSE-001"
    assert await _opens(url, _client(pki, pki["evse1"]))
    assert not await _opens(url, _client(pki, pki["evse2"]))  # another station's certificate
    assert not await _opens(url, _client(pki))  # none at all
    # Signed by a CA we do not trust: the TLS layer drops it (with TLS 1.3 the client learns it
    # only when it reads the upgrade's answer).
    with pytest.raises((ssl.SSLError, InvalidMessage, ConnectionError)):
        await _opens(url, _client(pki, pki["rogue1"]))
    # Driver apps and operators reach the same port without a client certificate.
    async with aiohttp.ClientSession() as http:
        async with http.get(f"https://{address}/healthz", ssl=_client(pki)) as resp:
            assert resp.status == 200


async def _provision(tmp_path: Path, station_id: str, password: str | None,
                     profile: int | None) -> None:
    store = SqliteStore(make_settings(tmp_path).store.sqlite_path)
    await store.open()
    try:
        await store.provision_station(station_id, password and hash_password(password),
                                      security_profile=profile)
    finally:
        await store.close()


async def test_a_station_at_profile_3_on_a_profile_2_server_needs_its_own_certificate(
        tmp_path: Path, start_tls: Any, pki: dict[str, Any]) -> None:
    await _provision(tmp_path, "EVSE-001", None, 3)
    await _provision(tmp_path, "EVSE-002", "a-long-secret", None)
    address = await start_tls(CSMS_OCPP__SECURITY_PROFILE="2",
                              CSMS_SERVER__TLS_CLIENT_CA_FILE=str(pki["ca"].path))
    url = f"wss://{address}/ocpp/EVSE-001"
    assert not await _opens(url, _client(pki))  # no certificate
    assert not await _opens(url, _client(pki), _basic("EVSE-001", "anything"))
    assert not await _opens(url, _client(pki, pki["evse2"]))  # another station's certificate
    assert await _opens(url, _client(pki, pki["evse1"]))
    # the server's default (2) for the other station: Basic over TLS, no certificate
    url = f"wss://{address}/ocpp/EVSE-002"
    assert await _opens(url, _client(pki), _basic("EVSE-002", "a-long-secret"))
    assert not await _opens(url, _client(pki, pki["evse2"]))  # a certificate is no password


async def test_a_station_at_profile_2_is_refused_over_plain_ws(tmp_path: Path,
                                                               start_server: Any) -> None:
    """`csms serve` listens either plain or TLS: a plain server at the default profile 1 is
    where a profile-2 station's upgrade arrives without TLS."""
    await _provision(tmp_path, "EVSE-TLS", "a-long-secret", 2)
    await _provision(tmp_path, "EVSE-PLAIN", "a-long-secret", None)
    server = await start_server(make_settings(tmp_path))
    url = f"ws://{server.host}:{server.port}/ocpp"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{url}/EVSE-TLS", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           additional_headers=_basic("EVSE-TLS", "a-long-secret")):
            pass
    assert refused.value.response.status_code == 403
    assert b"TLS" in refused.value.response.body
    assert await _opens(f"{url}/EVSE-PLAIN", None, _basic("EVSE-PLAIN", "a-long-secret"))


@pytest.mark.parametrize(("env", "key"), [
    ({"CSMS_OCPP__SECURITY_PROFILE": "2"}, "server.tls_cert_file"),
    ({"CSMS_OCPP__SECURITY_PROFILE": "3", "CSMS_SERVER__TLS_CERT_FILE": "c.pem",
      "CSMS_SERVER__TLS_KEY_FILE": "k.pem"}, "server.tls_client_ca_file"),
    ({"CSMS_SERVER__TLS_CERT_FILE": "c.pem"}, "server.tls_key_file"),
    ({"CSMS_OCPP__SECURITY_PROFILE": "4"}, "ocpp.security_profile"),
])
def test_a_profile_without_its_tls_files_names_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(None, environ=env)


def test_an_unreadable_certificate_names_the_key(tmp_path: Path) -> None:
    settings = load_settings(None, environ={"CSMS_SERVER__TLS_CERT_FILE": str(tmp_path / "no"),
                                            "CSMS_SERVER__TLS_KEY_FILE": str(tmp_path / "no")})
    with pytest.raises(ConfigError, match=r"server\.tls_cert_file"):
        server_context(settings.server)
