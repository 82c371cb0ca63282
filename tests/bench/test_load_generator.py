"""The side-by-side benchmark's load generator speaks OCPP that `csms` accepts, and every meter
value it has acknowledged is in the store (what `bench/side_by_side.py` relies on).

Needs Node and the bench's npm packages (`npm ci` in bench/node, done by the bench script); the
test is skipped without them. No timing is asserted."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import make_settings
from web.settings import Settings

NODE_DIR = Path(__file__).resolve().parents[2] / "bench" / "node"

METER_COMMIT_WINDOW = "0.02"  # bench/side_by_side.py's csms-window

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_DIR / "node_modules" / "ws").is_dir(),
    reason="node or bench/node/node_modules missing (run bench/side_by_side.py once)")


async def _generate(ws_url: str, *args: str) -> dict:
    process = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "load.js"), "--url", ws_url, "--stations", "4",
        "--duration", "1", *args, stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    assert process.returncode == 0
    return json.loads(out.decode().strip().splitlines()[-1])


@pytest.mark.parametrize("args", [("1.6",), ("2.0.1",), ("2.0.1", "--tx-event")],
                         ids=["1.6", "2.0.1", "2.0.1-tx-event"])
async def test_closed_loop_is_answered_and_every_value_stored(
        server: TestServer, ws_url: str, settings: Settings, args: tuple[str, ...]) -> None:
    """--tx-event: a TransactionEvent Started per station, then Updated events carrying the
    meter values; every one is answered without a CALLERROR and lands in its transaction."""
    result = await _generate(ws_url, "--version", *args)

    assert result["ready"] == 4
    assert result["errors"] == {}
    assert result["meterFramesAcked"] > 0
    await server.close()  # the store is closed: everything acknowledged is committed
    with sqlite3.connect(settings.store.sqlite_path) as db:
        stored = db.execute("SELECT count(*) FROM meter_values").fetchone()[0]
    assert stored == result["sampledValuesAcked"]
    if "--tx-event" in args:
        with sqlite3.connect(settings.store.sqlite_path) as db:
            transactions = db.execute("SELECT count(*) FROM transactions").fetchone()[0]
            loose = db.execute("SELECT count(*) FROM meter_values"
                               " WHERE transaction_id IS NULL").fetchone()[0]
        assert (transactions, loose) == (4, 0)



@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_with_the_meter_commit_window_every_acknowledged_value_is_stored_at_the_stop(
        tmp_path: Path, start_server: Callable[..., Any], version: str) -> None:
    """The bench's csms-window server: MeterValues answered before their commit, and still
    every acknowledged value in the store once the server has stopped."""
    settings = make_settings(tmp_path, CSMS_OCPP__METER_COMMIT_WINDOW=METER_COMMIT_WINDOW)
    server = await start_server(settings)
    result = await _generate(f"ws://{server.host}:{server.port}/ocpp", "--version", version)

    assert result["errors"] == {} and result["meterFramesAcked"] > 0
    await server.close()
    with sqlite3.connect(settings.store.sqlite_path) as db:
        stored = db.execute("SELECT count(*) FROM meter_values").fetchone()[0]
    assert stored == result["sampledValuesAcked"]
