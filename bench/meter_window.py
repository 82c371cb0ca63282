"""CPU per MeterValues frame through the charging service and a real SQLite store, with the
meter commit window off (each frame awaits its group commit) and on (`csms.meter_window`).

1000 concurrent stations, each with an open transaction, loop: one MeterValues frame (two
sampled values, as the closed-loop bench sends) through `ChargingService.meter_values`, then
wait --interval seconds (default 0.2: the closed loop's pace at ~10,000 msgs/s, half of them
MeterValues; with 0 the stations only yield once, and a write then carries several frames of
each transaction, whose register updates it joins, which flatters the window). Process CPU
(every thread: the loop and SQLite's) is divided by the frames answered; no socket, no
validation, so the difference is the store path alone. Best of --runs.

    taskset -c 0 .venv/bin/python bench/meter_window.py [--windows 0,0.02,0.1] [--runs 5]
                                                        [--interval 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from csms.charging import ChargingService
from csms.domain import MeterValue, utcnow
from csms.meter_window import with_meter_window
from csms.settings import OcppSettings
from csms.store.sqlite import SqliteStore


async def station(service: ChargingService, station_id: str, tx_id: int,
                  deadline: float, interval: float) -> int:
    frames = 0
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        now = utcnow()
        await service.meter_values(station_id, connector_id=1, transaction_id=tx_id, values=[
            MeterValue(station_id, 1, None, now, str(1000 + frames)),
            MeterValue(station_id, 1, None, now, "7.2", measurand="Power.Active.Import",
                       unit="kW")])
        frames += 1
        await asyncio.sleep(interval)
    return frames


async def run(window: float, stations: int, duration: float, interval: float) -> float:
    """Microseconds of process CPU per frame."""
    with tempfile.TemporaryDirectory() as tmp:
        store = with_meter_window(SqliteStore(str(Path(tmp) / "bench.db")), window)
        await store.open()
        try:
            service = ChargingService(store, OcppSettings(meter_commit_window=window))
            started = [await service.start_transaction(
                f"CP{n:04d}", connector_id=1, id_tag="TAG", meter_start=0,
                timestamp=utcnow(), reservation_id=None) for n in range(stations)]
            loop = asyncio.get_running_loop()
            cpu = time.process_time()
            deadline = loop.time() + duration
            counts = await asyncio.gather(*(
                station(service, tx.station_id, tx.transaction_id, deadline, interval)
                for tx, _ in started))
            cpu = time.process_time() - cpu
        finally:
            await store.close()  # the window's last write is outside the measured part
    return cpu / sum(counts) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", default="0,0.02")
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.2)
    args = parser.parse_args()
    windows = [float(w) for w in args.windows.split(",")]
    best: dict[float, float] = {}
    for _ in range(args.runs):  # alternated, so a busy spell hits every window alike
        for window in windows:
            us = asyncio.run(run(window, args.stations, args.duration, args.interval))
            best[window] = min(best.get(window, us), us)
    for window in windows:
        print(f"meter_commit_window {window:g}: {best[window]:.1f} us CPU per MeterValues "
              f"frame (best of {args.runs}, {args.stations} stations, one frame each every "
              f"{args.interval:g} s)")


if __name__ == "__main__":
    main()
