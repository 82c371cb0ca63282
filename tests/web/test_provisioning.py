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
