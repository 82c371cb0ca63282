"""kill -9 with `ocpp.meter_commit_window` on: a crash loses at most the values acknowledged in
the last window, and stores none twice.

`csms serve` runs as a real process; a real 1.6 charger sends MeterValues, each answered before
its value is committed. Values acknowledged well before the kill (many windows) must be in the
store afterwards; values acknowledged just before it may be lost, but what is stored is exactly
the oldest ones in order (each write takes the oldest pending values and commits them at once),
each once, with the transaction's register at the newest of them. The server then restarts on
the same data and the charger stops its transaction there.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import aiohttp
from ocpp.v16 import call

from tests.support.csms_process import CsmsProcess
from tests.support.net import free_port
from tests.support.stations import station

WINDOW = 0.1
SETTLED = 2.0  # seconds: twenty windows, so the older values are long past theirs
T0 = "2026-11-22T10:00:00Z"


def committed(path: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [int(row[0]) for row in db.execute(
            "SELECT value FROM meter_values WHERE measurand = 'Energy.Active.Import.Register'"
            " ORDER BY rowid")]


def meter_values(tx: int, wh: int) -> call.MeterValues:
    minute, second = divmod(wh, 60)
    return call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[{
        "timestamp": f"2026-11-22T11:{minute % 60:02d}:{second:02d}Z",
        "sampledValue": [{"value": str(wh), "measurand": "Energy.Active.Import.Register",
                          "unit": "Wh"}]}])


async def test_a_kill_9_loses_at_most_the_last_window_and_stores_nothing_twice(
        tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    csms = CsmsProcess(tmp_path, {
        "CSMS_STORE__SQLITE_PATH": str(db),
        "CSMS_MAIL__OUTBOX_DIR": str(tmp_path / "outbox"),
        "CSMS_OCPP__METER_COMMIT_WINDOW": str(WINDOW),
    }, free_port())
    assert await csms.start()
    try:
        acked: list[int] = []
        async with station(csms.ws_url, "CP-K9") as cp:
            await cp.boot()
            start = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG",
                                                        meter_start=0, timestamp=T0))
            tx = start.transaction_id
            older = list(range(1, 21))
            for wh in older:
                await cp.call(meter_values(tx, wh))
                acked.append(wh)
            await asyncio.sleep(SETTLED)  # nothing reads: only the window writes them
            for wh in range(21, 51):  # then thirty more over several windows, killed
                await cp.call(meter_values(tx, wh))  # right after the last answer
                acked.append(wh)
                await asyncio.sleep(WINDOW / 4)
            csms.kill("right after the 50th MeterValues was answered")
            await csms.wait_dead()

        stored = committed(db)
        assert stored[:20] == older  # acknowledged more than a window before the kill
        assert stored == acked[:len(stored)]  # the oldest, in order, each once
        print(f"acknowledged {len(acked)}, stored {len(stored)}: "
              f"{max(0, len(acked) - len(stored))} lost with the last window")

        assert await csms.start()  # on the same data
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{csms.url}/api/transactions/{tx}") as resp:
                running = await resp.json()
        assert running["energyWh"] == len(stored)  # the register is at the newest stored
        assert [v["value"] for v in running["meterValues"]] == [str(n) for n in stored]
        async with station(csms.ws_url, "CP-K9") as cp:
            stop = await cp.call(call.StopTransaction(
                meter_stop=acked[-1], timestamp="2026-11-22T12:00:00Z", transaction_id=tx,
                reason="PowerLoss"))
            assert stop is not None
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{csms.url}/api/transactions/{tx}") as resp:
                stopped = await resp.json()
        assert (stopped["meterStop"], stopped["energyWh"]) == (acked[-1], acked[-1])
        assert committed(db) == stored  # the restart replayed nothing
    except BaseException:
        print(csms.log()[-6000:])
        raise
    finally:
        csms.stop()
