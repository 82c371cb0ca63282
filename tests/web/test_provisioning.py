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
