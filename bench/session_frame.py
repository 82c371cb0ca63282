"""CPU cost per frame of the OCPP session's receive path alone, store and socket stubbed.

The load benchmark (ocpp_load.py) is paced, so its tails are dominated by noise on a shared
2-core machine; this isolates what the session, schemas and 1.6 handlers cost per frame.

    taskset -c 0 .venv/bin/python bench/session_frame.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from csms.charging import ChargingService
from csms.domain import Transaction
from csms.metrics import Metrics
from csms.ocpp.session import Session
from csms.ocpp.v16 import VERSION
from csms.ocpp.version import StationContext
from web.settings import load_settings


class Store:
    async def touch_station(self, *args: Any) -> None: ...

    async def append_meter_values(self, values: Any) -> None: ...

    async def get_transaction(self, transaction_id: int) -> Transaction:
        return Transaction(transaction_id, "CP", 1, "T", 0, datetime.now(UTC))


class Conn:
    async def recv(self) -> str:
        raise ConnectionError

    async def send(self, message: str) -> None: ...


class Sink:
    def frame(self, *args: Any) -> None: ...


async def main() -> None:
    settings = load_settings(None, {}).ocpp
    service = ChargingService(Store(), settings)  # type: ignore[arg-type]
    context = StationContext("CP")
    session = Session(context, Conn(), VERSION, VERSION.handlers(context, service, settings),
                      metrics=Metrics(), sink=Sink(), response_timeout=5)
    mv = json.dumps([2, "m", "MeterValues", {"connectorId": 1, "transactionId": 7, "meterValue": [
        {"timestamp": "2026-11-22T10:00:00Z", "sampledValue": [
            {"value": "1500", "measurand": "Energy.Active.Import.Register", "unit": "Wh",
             "context": "Sample.Periodic"},
            {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW",
             "context": "Sample.Periodic"}]}]}])
    hb = '[2,"h","Heartbeat",{}]'
    frames = [mv, hb] * 10000
    best = {}
    for _ in range(5):
        for label, batch in (("MeterValues", [mv] * 10000), ("Heartbeat", [hb] * 10000),
                             ("mixed", frames)):
            t = time.perf_counter()
            for f in batch:
                await session.receive(f)
            us = (time.perf_counter() - t) / len(batch) * 1e6
            best[label] = min(best.get(label, 1e9), us)
    print({k: round(v, 1) for k, v in best.items()}, "us/frame")

if __name__ == "__main__":
    asyncio.run(main())
