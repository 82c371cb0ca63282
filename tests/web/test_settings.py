"""Configuration: defaults, environment overrides, and errors that name the key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from csms.settings import ConfigError
from tests.support.net import free_port
from web import cli
from web.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_repo_config_matches_the_documented_defaults() -> None:
    settings = load_settings(ROOT / "config.toml", environ={})
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)
    assert settings.ocpp.heartbeat_interval == 300
    assert settings.store.backend == "sqlite"
    assert settings.billing.tariff.price_per_kwh == Decimal("1.50")
    assert settings.api.driver_keys == []


def test_environment_overrides_nested_keys() -> None:
    settings = load_settings(ROOT / "config.toml", environ={
        "CSMS_STORE__BACKEND": "mongodb",
        "CSMS_BILLING__TARIFF__PRICE_PER_KWH": "0.89",
        "CSMS_OCPP__ALLOW_UNKNOWN_STATIONS": "false",
        "CSMS_API__DRIVER_KEYS": '["k1", "k2"]',
    })
    assert settings.store.backend == "mongodb"
    assert settings.billing.tariff.price_per_kwh == Decimal("0.89")
    assert settings.ocpp.allow_unknown_stations is False
    assert settings.api.driver_keys == ["k1", "k2"]


@pytest.mark.parametrize(("env", "key"), [
    ({"CSMS_SERVER__PORT": "eighty"}, "server.port"),
    ({"CSMS_SERVER__PORT": "70000"}, "server.port"),
    ({"CSMS_STORE__BACKEND": "oracle"}, "store.backend"),
    ({"CSMS_BILLING__TARIFF__PRICE_PER_KWH": "cheap"}, "billing.tariff.price_per_kwh"),
    ({"CSMS_OCPP__HEARTBEAT_INTERVAL": "0"}, "ocpp.heartbeat_interval"),
    ({"CSMS_OCPP__NO_SUCH_KEY": "1"}, "ocpp.no_such_key"),
])
def test_bad_values_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(ROOT / "config.toml", environ=env)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_cli_exits_non_zero_naming_the_key(monkeypatch, capsys, tmp_path: Path) -> None:
    monkeypatch.setenv("CSMS_SERVER__PORT", "not-a-port")
    assert cli.main(["serve", "--config", str(ROOT / "config.toml")]) == 2
    assert "server.port" in capsys.readouterr().err


def test_cli_station_and_idtag_commands(monkeypatch, capsys, tmp_path: Path) -> None:
    monkeypatch.setenv("CSMS_STORE__SQLITE_PATH", str(tmp_path / "cli.db"))
    config = str(ROOT / "config.toml")
    assert cli.main(["station", "add", "CP-CLI", "--password", "pa55word!", "--config",
                     config]) == 0
    assert cli.main(["station", "list", "--config", config]) == 0
    assert cli.main(["idtag", "add", "RFID-1", "--status", "Blocked", "--config", config]) == 0
    assert cli.main(["idtag", "list", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "CP-CLI" in out and "with a password" in out
    assert "RFID-1" in out and "Blocked" in out


def test_an_unreachable_mongodb_stops_start_up_naming_the_url(monkeypatch, capsys) -> None:
    monkeypatch.setenv("CSMS_STORE__BACKEND", "mongodb")
    monkeypatch.setenv("CSMS_STORE__MONGODB_URL", f"mongodb://127.0.0.1:{free_port()}")
    monkeypatch.setenv("CSMS_STORE__MONGODB_TIMEOUT", "1")
    assert cli.main(["serve", "--config", str(ROOT / "config.toml"), "--port", "0"]) == 3
    assert "store.mongodb_url: cannot reach MongoDB" in capsys.readouterr().err
