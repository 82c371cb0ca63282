"""CPU per logged frame of the OCPP message log: the hub's FrameLog and the store behind it.

M stations each log F frames per flush (a MeterValues call and its CALLRESULT, alternately, as
in the closed loop), and the log is flushed, as the hub does every second. The first flushes
fill the log up to its caps (`ocpp.message_log_size` per station, `ocpp.message_log_bytes` in
all, the defaults unless given); the measured flushes after that run in the steady state, where
every flush also trims. CPU is the process's (`time.process_time`: the event loop and the
store's threads), divided by the frames logged in the measured flushes; best of --repeat runs,
each on a fresh store.

    taskset -c 0 .venv/bin/python bench/frame_log.py [--stations 1000] [--per-flush 10]
    taskset -c 0 .venv/bin/python bench/frame_log.py --mongodb-url mongodb://127.0.0.1:27017
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from csms.ocpp.hub import FrameLog
from csms.settings import OcppSettings
from csms.store.mongo import MongoStore
from csms.store.ports import Store
from csms.store.sqlite import SqliteStore

CALL = json.dumps([2, "{uid}", "MeterValues", {"connectorId": 1, "transactionId": 7,
                   "meterValue": [{"timestamp": "2026-11-22T10:00:00Z", "sampledValue": [
                       {"value": "1500", "measurand": "Energy.Active.Import.Register",
                        "unit": "Wh", "context": "Sample.Periodic"},
                       {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW",
                        "context": "Sample.Periodic"}]}]}], separators=(",", ":"))
RESULT = '[3,"{uid}",{{}}]'


def frames(per_flush: int, round_no: int) -> list[tuple[str, str]]:
    out = []
    for n in range(per_flush):
        uid = f"{round_no:06d}-{n:04d}"
        out.append(("in", CALL.replace("{uid}", uid)) if n % 2 == 0
                   else ("out", RESULT.format(uid=uid)))
    return out


async def run(store: Store, stations: int, per_flush: int, fill: int, measured: int,
              settings: OcppSettings) -> tuple[float, float]:
    """CPU us per frame while filling, and in the steady state."""
    log = FrameLog(store, settings.message_log_size, max_bytes=settings.message_log_bytes,
                   frame_bytes=settings.message_log_frame_bytes)
    ids = [f"CP{n:05d}" for n in range(stations)]
    results = []
    for rounds, first in ((fill, 0), (measured, fill)):
        cpu = time.process_time()
        for round_no in range(first, first + rounds):
            batch = frames(per_flush, round_no)
            for station in ids:
                for direction, text in batch:
                    log.frame(station, direction, text)
            await log.flush()
        results.append((time.process_time() - cpu) / (rounds * stations * per_flush) * 1e6)
    return results[0], results[1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--per-flush", type=int, default=10, help="frames per station per flush")
    parser.add_argument("--fill", type=int, default=0,
                        help="flushes before measuring (default: enough to reach both caps)")
    parser.add_argument("--flushes", type=int, default=20, help="measured flushes")
    parser.add_argument("--keep", type=int, help="ocpp.message_log_size")
    parser.add_argument("--max-bytes", type=int, help="ocpp.message_log_bytes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mongodb-url", default=None, help="bench the MongoDB store there")
    args = parser.parse_args()
    settings = OcppSettings()
    if args.keep is not None:
        settings.message_log_size = args.keep
    if args.max_bytes is not None:
        settings.message_log_bytes = args.max_bytes
    per_station_flush = sum(len(t.encode()) for _, t in frames(args.per_flush, 0))
    fill = args.fill or max(
        -(-settings.message_log_size // args.per_flush),
        -(-settings.message_log_bytes // (per_station_flush * args.stations)),
    ) + 2
    best = (1e9, 1e9)
    for _ in range(args.repeat):
        database = f"bench{uuid.uuid4().hex[:8]}"
        with tempfile.TemporaryDirectory() as tmp:
            store: Store = (SqliteStore(str(Path(tmp) / "bench.db")) if args.mongodb_url is None
                            else MongoStore(args.mongodb_url, database))
            await store.open()
            try:
                got = await run(store, args.stations, args.per_flush, fill, args.flushes,
                                settings)
            finally:
                if isinstance(store, MongoStore):
                    await store.db.client.drop_database(database)
                await store.close()
        best = (min(best[0], got[0]), min(best[1], got[1]))
    print(f"{type(store).__name__}: {args.stations} stations x {args.per_flush} frames per flush,"
          f" keep {settings.message_log_size}, max_bytes {settings.message_log_bytes};"
          f" CPU per frame: filling ({fill} flushes) {best[0]:.2f} us,"
          f" steady state ({args.flushes} flushes) {best[1]:.2f} us (best of {args.repeat})")


if __name__ == "__main__":
    asyncio.run(main())
