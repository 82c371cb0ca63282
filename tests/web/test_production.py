"""Production mode: an open configuration is refused with one message; development warns;
401s carry a challenge; config errors keep secrets out; a busy port is one line."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from csms.passwords import hash_password
from csms.settings import ConfigError
from csms.store.sqlite import SqliteStore
from tests.conftest import make_settings
from web import cli
from web.settings import load_settings

OPEN_KEYS = ("api.operator_token", "api.driver_keys", "ocpp.allow_unknown_stations",
             "billing.gateway", "billing.pagarme.webhook_user", "billing.pagarme.webhook_password")

CLOSED = {
    "CSMS_SERVER__MODE": "production",
    "CSMS_API__OPERATOR_TOKEN": "op-secret",
    "CSMS_API__DRIVER_KEYS": "app-key-1",
    "CSMS_OCPP__ALLOW_UNKNOWN_STATIONS": "false",
    "CSMS_BILLING__GATEWAY": "pagarme",
    "CSMS_BILLING__PAGARME__BASE_URL": "http://127.0.0.1:9/core/v5",
    "CSMS_BILLING__PAGARME__SECRET_KEY": "sk_test_1",
    "CSMS_BILLING__PAGARME__WEBHOOK_USER": "hook",
    "CSMS_BILLING__PAGARME__WEBHOOK_PASSWORD": "hook-secret",
}


def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **values: str) -> None:
    monkeypatch.setenv("CSMS_STORE__SQLITE_PATH", str(tmp_path / "csms.db"))
    monkeypatch.setenv("CSMS_BILLING__SANDBOX_PATH", str(tmp_path / "sandbox.db"))
    monkeypatch.setenv("CSMS_MAIL__OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.setenv("CSMS_SERVER__PORT", "0")
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_production_refuses_the_default_configuration_listing_every_key(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    _env(monkeypatch, tmp_path, CSMS_SERVER__MODE="production")
    assert cli.main(["serve"]) == 2  # no config.toml in the cwd: defaults plus environment
    err = capsys.readouterr().err
    assert err.count("csms:") == 1 and "Traceback" not in err
    for key in OPEN_KEYS:
        assert key in err


async def test_production_refuses_a_provisioned_station_without_a_password(
        tmp_path: Path, start_server: Any) -> None:
    settings = make_settings(tmp_path, **CLOSED)
    store = SqliteStore(settings.store.sqlite_path)
    await store.open()
    await store.provision_station("EVSE-OPEN", None)
    await store.provision_station("EVSE-SAFE", hash_password("a-long-secret"))
    await store.close()

    with pytest.raises(ConfigError) as refused:
        await start_server(settings)
    message = str(refused.value)
    assert "station EVSE-OPEN" in message and "EVSE-SAFE" not in message
    for key in OPEN_KEYS:
        assert key not in message


# TLS keys as settings: the posture check reads the configuration, these tests serve plain HTTP.
TLS = {"CSMS_SERVER__TLS_CERT_FILE": "server.pem", "CSMS_SERVER__TLS_KEY_FILE": "server.key"}
CLIENT_CA = {"CSMS_SERVER__TLS_CLIENT_CA_FILE": "stations-ca.pem"}


async def _provision(settings: Any, *stations: tuple[str, str | None, int | None]) -> None:
    store = SqliteStore(settings.store.sqlite_path)
    await store.open()
    for station_id, password, profile in stations:
        await store.provision_station(station_id, password and hash_password(password),
                                      security_profile=profile)
    await store.close()


async def test_production_checks_each_station_at_its_own_profile(
        tmp_path: Path, start_server: Any) -> None:
    """Server default 3: a station at its own profile 1 needs a password; at 3 none does."""
    settings = make_settings(tmp_path, **CLOSED, **TLS, **CLIENT_CA,
                             CSMS_OCPP__SECURITY_PROFILE="3")
    await _provision(settings, ("EVSE-OWN-1", None, 1), ("EVSE-CERT", None, None),
                     ("EVSE-OWN-3", None, 3))
    with pytest.raises(ConfigError) as refused:
        await start_server(settings)
    message = str(refused.value)
    assert "station EVSE-OWN-1: provisioned without a password" in message
    assert "EVSE-CERT" not in message and "EVSE-OWN-3" not in message


async def test_production_refuses_a_profile_3_station_without_a_client_ca(
        tmp_path: Path, start_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(tmp_path, **CLOSED, **TLS)
    await _provision(settings, ("EVSE-MTLS", None, 3), ("EVSE-BASIC", "a-long-secret", 2))
    with pytest.raises(ConfigError) as refused:
        await start_server(settings)
    message = str(refused.value)
    assert "station EVSE-MTLS: security profile 3" in message
    assert "server.tls_client_ca_file" in message and "EVSE-BASIC" not in message
    # development starts, with the same finding in its one warning
    settings = make_settings(tmp_path, **{**CLOSED, "CSMS_SERVER__MODE": "development"}, **TLS)
    with caplog.at_level(logging.WARNING, logger="web.posture"):
        await start_server(settings)
    warnings = [r.getMessage() for r in caplog.records if r.name == "web.posture"]
    assert len(warnings) == 1 and "station EVSE-MTLS: security profile 3" in warnings[0]
    # with the CA that signs station certificates, nothing is left to refuse
    await start_server(make_settings(tmp_path, **CLOSED, **TLS, **CLIENT_CA))


async def test_production_starts_when_nothing_is_open(tmp_path: Path, start_server: Any) -> None:
    server = await start_server(make_settings(tmp_path, **CLOSED))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{server.host}:{server.port}/healthz") as resp:
            assert resp.status == 200


async def test_development_warns_once_listing_the_same_keys(
        settings: Any, start_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="web.posture"):
        await start_server(settings)
    warnings = [r.getMessage() for r in caplog.records if r.name == "web.posture"]
    assert len(warnings) == 1
    for key in OPEN_KEYS:
        assert key in warnings[0]


@pytest.mark.parametrize(("path", "headers", "scheme"), [
    ("/api/stations", {}, "Bearer"),
    ("/charge/start", {"Content-Type": "application/json"}, "ApiKey"),
    ("/webhooks/pagarme", {"Content-Type": "application/json"}, "Basic"),
])
async def test_401s_carry_a_challenge(tmp_path: Path, start_server: Any, path: str,
                                      headers: dict[str, str], scheme: str) -> None:
    settings = make_settings(tmp_path, CSMS_API__OPERATOR_TOKEN="op-secret",
                             CSMS_API__DRIVER_KEYS="app-key-1",
                             CSMS_BILLING__PAGARME__WEBHOOK_USER="hook",
                             CSMS_BILLING__PAGARME__WEBHOOK_PASSWORD="hook-secret")
    server = await start_server(settings)
    url = f"http://{server.host}:{server.port}{path}"
    async with aiohttp.ClientSession() as http:
        method = http.get if path.startswith("/api") else http.post
        async with method(url, data="{}", headers=headers) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith(scheme)
            assert (await resp.json())["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(("toml", "key", "secret"), [
    ('[api]\noperator_token = 424242\n', "api.operator_token", "424242"),
    ('[api]\ndriver_keys = 90210\n', "api.driver_keys", "90210"),
    ('[billing.pagarme]\nsecret_key = ["sk_live_77"]\n', "billing.pagarme.secret_key",
     "sk_live_77"),
    ('[mail]\nsmtp_password = 31337\n', "mail.smtp_password", "31337"),
])
def test_config_errors_name_the_key_and_never_echo_a_secret(
        tmp_path: Path, toml: str, key: str, secret: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={})
    assert key in str(refused.value)
    assert secret not in str(refused.value)


def test_a_secret_given_in_the_environment_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(None, environ={"CSMS_API__DRIVER_KEYS": '{"k": "sk-live-env"}'})
    assert "api.driver_keys" in str(refused.value)
    assert "sk-live-env" not in str(refused.value)


def test_a_busy_port_is_one_line_naming_server_port(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        _env(monkeypatch, tmp_path, CSMS_SERVER__PORT=str(taken.getsockname()[1]))
        assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0
    assert "server.port" in err and "already in use" in err


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`csms serve` without --config reads ./config.toml when it exists: start in an empty dir."""
    monkeypatch.chdir(tmp_path)
