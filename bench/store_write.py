"""How many append_meter_values calls/s a store sustains under concurrency.

1000 concurrent callers (one per simulated station, each with its own open transaction) loop
appending one energy reading per call for DURATION seconds; every call awaits durability.

    PYTHONPATH=. .venv/bin/python bench/store_write.py [--callers 1000] [--duration 5]
    PYTHONPATH=. .venv/bin/python bench/store_write.py --mongodb-url mongodb://127.0.0.1:27017
                                                       (a fresh database, dropped afterwards)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from csms.domain import MeterValue, utcnow
from csms.store.mongo import MongoStore
from csms.store.ports import Store
from csms.store.sqlite import SqliteStore


async def caller(
    store: Store, station: str, tx_id: int, deadline: float, latencies: list[float]
) -> int:
    calls = 0
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        value = MeterValue(station, 1, tx_id, utcnow(), str(1000 + calls))
        began = loop.time()
        await store.append_meter_values([value])
        latencies.append(loop.time() - began)
        calls += 1
    return calls


async def main(callers: int, duration: float, mongodb_url: str | None) -> None:
    database = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        store: Store = (SqliteStore(str(Path(tmp) / "bench.db")) if mongodb_url is None
                        else MongoStore(mongodb_url, database))
        await store.open()
        try:
            started = await asyncio.gather(
                *(
                    store.open_transaction(f"CP{n:04d}", 1, "TAG", 0, utcnow())
                    for n in range(callers)
                )
            )
            latencies: list[float] = []
            loop = asyncio.get_running_loop()
            begin = time.perf_counter()
            deadline = loop.time() + duration
            counts = await asyncio.gather(
                *(
                    caller(store, opened.transaction.station_id,
                           opened.transaction.transaction_id, deadline, latencies)
                    for opened in started
                )
            )
            elapsed = time.perf_counter() - begin
        finally:
            if isinstance(store, MongoStore):
                await store.db.client.drop_database(database)
            await store.close()
    total = sum(counts)
    quantiles = statistics.quantiles(latencies, n=100)
    print(
        f"{type(store).__name__} append_meter_values: {total} calls in {elapsed:.2f}s"
        f" with {callers} callers"
        f" = {total / elapsed:.0f} calls/s"
        f" (latency p50 {quantiles[49] * 1000:.1f} ms, p99 {quantiles[98] * 1000:.1f} ms)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--mongodb-url", default=None, help="bench the MongoDB store there")
    args = parser.parse_args()
    asyncio.run(main(args.callers, args.duration, args.mongodb_url))
