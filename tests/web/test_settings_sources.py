"""Where settings come from: the environment over the TOML file over the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from csms.settings import ConfigError
from web.settings import load_settings


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text('[server]\nport = 9000\nhost = "10.0.0.1"\n[api]\ndriver_keys = ["file"]\n')
    return path


def test_environment_over_file_over_defaults(config: Path) -> None:
    settings = load_settings(config, environ={"CSMS_SERVER__HOST": "0.0.0.0"})
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 9000)
    assert settings.api.driver_keys == ["file"]
    assert settings.ocpp.heartbeat_interval == 300


def test_the_given_environ_replaces_the_process_environment(
        config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSMS_SERVER__PORT", "7777")
    assert load_settings(config, environ={}).server.port == 9000
    assert load_settings(config).server.port == 7777


@pytest.mark.parametrize(("raw", "keys"), [
    ("a,b", ["a", "b"]), (" a , ,b ", ["a", "b"]), ("", []), ('["k1", "k2"]', ["k1", "k2"]),
])
def test_driver_keys_as_comma_or_json_list(config: Path, raw: str, keys: list[str]) -> None:
    assert load_settings(config, environ={"CSMS_API__DRIVER_KEYS": raw}).api.driver_keys == keys


@pytest.mark.parametrize(("env", "message"), [
    ({"CSMS_NOSECTION__KEY": "1"}, "nosection: unknown configuration key"),
    ({"CSMS_BILLING__TARIFF__WHAT": "1"}, "billing.tariff.what: unknown configuration key"),
    ({"CSMS_TASKS__RETRY_DELAYS": "1,2"}, "tasks.retry_delays"),
    ({"CSMS_OCPP__": "1"}, "CSMS_OCPP__: malformed configuration variable name"),
])
def test_bad_environment_is_refused_by_name(config: Path, env: dict[str, str],
                                            message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(config, environ=env)


def test_other_variables_are_ignored(config: Path) -> None:
    settings = load_settings(config, environ={"CSMS_TEST_MONGODB_URL": "mongodb://x",
                                              "csms_server__port": "1", "OTHER__X": "1"})
    assert settings.server.port == 9000


def test_unknown_key_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "extra.toml"
    path.write_text("[billing.pagarme]\nwhat = 1\n")
    with pytest.raises(ConfigError, match=r"billing\.pagarme\.what: unknown configuration key"):
        load_settings(path, environ={})
