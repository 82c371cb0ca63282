"""Provisioning stations over the operator API and the CLI (issue 8 items 7 and 11)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from web import cli


async def provision(http_url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{http_url}/api/stations", json=body) as resp:
            return resp.status, await resp.json()


@pytest.mark.parametrize("station_id", ["NL-TEST\n", "..", ".", "CP..1", "", "x" * 49])
async def test_provisioning_refuses_ids_a_station_could_not_connect_with(
        http_url: str, station_id: str) -> None:
    status, body = await provision(http_url, {"id": station_id})
    assert (status, body["error"]["field"]) == (422, "id")


def test_the_cli_refuses_them_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CSMS_STORE__SQLITE_PATH", str(tmp_path / "cli.db"))
    assert cli.main(["station", "add", "CP..1"]) == 2
    assert "station id" in capsys.readouterr().err
    assert cli.main(["station", "add", "CP.1"]) == 0


async def station_view(http_url: str, station_id: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{http_url}/api/stations/{station_id}") as resp:
            return await resp.json()


async def test_reprovisioning_keeps_the_password_unless_told(http_url: str) -> None:
    assert (await provision(http_url, {"id": "CP-PW", "password": "a-long-secret"}))[0] == 201
    assert (await provision(http_url, {"id": "CP-PW"}))[0] == 201
    assert (await station_view(http_url, "CP-PW"))["passwordSet"] is True

    status, body = await provision(http_url, {"id": "CP-PW", "password": "another-secret",
                                              "clearPassword": True})
    assert (status, body["error"]["field"]) == (422, "clearPassword")
    assert (await provision(http_url, {"id": "CP-PW", "clearPassword": True}))[0] == 201
    assert (await station_view(http_url, "CP-PW"))["passwordSet"] is False


def test_the_cli_keeps_the_password_unless_told(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CSMS_STORE__SQLITE_PATH", str(tmp_path / "cli.db"))
    assert cli.main(["station", "add", "CP-PW", "--password", "a-long-secret"]) == 0
    assert cli.main(["station", "add", "CP-PW"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        "station CP-PW provisioned with a password"
    assert cli.main(["station", "add", "CP-PW", "--clear-password"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        "station CP-PW provisioned without a password"


async def test_the_api_sets_keeps_and_clears_a_stations_own_profile(http_url: str) -> None:
    status, body = await provision(http_url, {"id": "CP-PR", "securityProfile": 3})
    assert status == 201
    assert (body["securityProfile"], body["securityProfileSource"]) == (3, "station")
    assert (await provision(http_url, {"id": "CP-PR", "password": "a-long-secret"}))[0] == 201
    view = await station_view(http_url, "CP-PR")
    assert (view["securityProfile"], view["securityProfileSource"], view["passwordSet"]) == \
        (3, "station", True)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{http_url}/api/stations") as resp:
            listed = {s["id"]: s for s in await resp.json()}
    assert listed["CP-PR"]["securityProfile"] == 3

    status, body = await provision(http_url, {"id": "CP-PR", "securityProfile": None})
    assert (body["securityProfile"], body["securityProfileSource"]) == (1, "default")
    assert (await station_view(http_url, "CP-PR"))["passwordSet"] is True
    for bad in (0, 4, "3", True, 2.5):
        status, body = await provision(http_url, {"id": "CP-PR", "securityProfile": bad})
        assert (status, body["error"]["field"]) == (422, "securityProfile")


def test_the_cli_sets_keeps_and_lists_a_stations_own_profile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CSMS_STORE__SQLITE_PATH", str(tmp_path / "cli.db"))
    assert cli.main(["station", "add", "CP-PR", "--profile", "3"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "station CP-PR provisioned without a password, " \
        "security profile 3"
    assert "security profile 3 needs TLS" in err  # this server has no TLS configured
    assert cli.main(["station", "add", "CP-PR", "--password", "a-long-secret"]) == 0
    assert cli.main(["station", "add", "CP-DEF"]) == 0
    capsys.readouterr()
    assert cli.main(["station", "list"]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert rows["ID"][:3] == ["PROVISIONED", "PASSWORD", "PROFILE"]
    assert rows["CP-PR"][:3] == ["yes", "yes", "3"]
    assert rows["CP-DEF"][:4] == ["yes", "no", "1", "(default)"]
    assert cli.main(["station", "add", "CP-PR", "--profile", "default"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "station CP-PR provisioned with a password"
    with pytest.raises(SystemExit):  # argparse: an invalid choice, listing the choices
        cli.main(["station", "add", "CP-PR", "--profile", "4"])
    assert "choose from '1', '2', '3', 'default'" in capsys.readouterr().err
