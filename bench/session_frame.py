"""CPU cost per frame of the OCPP session's receive path alone, store and socket stubbed.

The load benchmark (ocpp_load.py) is paced, so its tails are dominated by noise on a shared
2-core machine; this isolates what the session, schemas and a version's handlers cost per frame.

    taskset -c 0 .venv/bin/python bench/session_frame.py [--version 2.0.1] [--profile]

2.0.1 measures MeterValues, TransactionEvent Updated (the 2.0.1 meter path) and Heartbeat.
`--profile` prints the top of a cProfile of the mixed run instead of timing it.
`--instructions` counts CPU instructions per frame with callgrind (valgrind), which a shared,
loaded machine does not disturb: each batch runs under callgrind with N frames and with none,
and the difference is divided by N.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from csms.charging import ChargingService
from csms.domain import Transaction
from csms.metrics import Metrics
from csms.ocpp import v16, v201
from csms.ocpp.session import Session
from csms.ocpp.version import StationContext
from csms.station_transactions import EventOutcome, TransactionEvent, apply_event
from web.settings import load_settings

NOW = datetime(2026, 11, 22, 10, tzinfo=UTC)


class Store:
    def __init__(self) -> None:
        self.tx = Transaction(7, "CP", 1, "T", 0, NOW, ocpp_version="2.0.1",
                              station_transaction_id="CP-tx")

    async def touch_station(self, *args: Any) -> None: ...

    async def append_meter_values(self, values: Any, newest: Any = None) -> None: ...

    async def get_transaction(self, transaction_id: int) -> Transaction:
        return Transaction(transaction_id, "CP", 1, "T", 0, NOW)

    async def record_event(self, event: TransactionEvent) -> EventOutcome:
        self.tx.seq_nos = self.tx.seq_nos[-1:]  # a long transaction's list, kept short here
        return apply_event(self.tx, event)


class Conn:
    async def recv(self) -> str:
        raise ConnectionError

    async def send(self, message: str) -> None: ...


class Sink:
    def frame(self, *args: Any) -> None: ...

    def logs(self, *args: Any) -> bool:
        return True


def frames_16() -> dict[str, list[str]]:
    mv = json.dumps([2, "m", "MeterValues", {"connectorId": 1, "transactionId": 7, "meterValue": [
        {"timestamp": "2026-11-22T10:00:00Z", "sampledValue": [
            {"value": "1500", "measurand": "Energy.Active.Import.Register", "unit": "Wh",
             "context": "Sample.Periodic"},
            {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW",
             "context": "Sample.Periodic"}]}]}])
    hb = '[2,"h","Heartbeat",{}]'
    return {"MeterValues": [mv] * 10000, "Heartbeat": [hb] * 10000, "mixed": [mv, hb] * 10000}


def frames_201() -> dict[str, list[str]]:
    def value(energy: int) -> dict[str, Any]:
        return {"timestamp": "2026-11-22T10:00:00Z", "sampledValue": [
            {"value": energy, "measurand": "Energy.Active.Import.Register",
             "unitOfMeasure": {"unit": "Wh"}},
            {"value": 7200, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}}]}

    mv = json.dumps([2, "m", "MeterValues", {"evseId": 1, "meterValue": [value(1500)]}])
    te = [json.dumps([2, "t", "TransactionEvent", {
        "eventType": "Updated", "timestamp": "2026-11-22T10:00:00Z",
        "triggerReason": "MeterValuePeriodic", "seqNo": seq,
        "transactionInfo": {"transactionId": "CP-tx"}, "meterValue": [value(1500 + seq)]}])
        for seq in range(1, 10001)]
    hb = '[2,"h","Heartbeat",{}]'
    return {"MeterValues": [mv] * 10000, "TransactionEvent": te, "Heartbeat": [hb] * 10000,
            "mixed": [f for pair in zip(te, [hb] * 10000, strict=True) for f in pair]}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", choices=("1.6", "2.0.1"), default="1.6")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime", help="cProfile sort key (--profile)")
    parser.add_argument("--instructions", action="store_true",
                        help="instructions per frame under callgrind instead of time")
    parser.add_argument("--only", help="run this batch once (used by --instructions)")
    parser.add_argument("--count", type=int, default=0, help="frames for --only")
    args = parser.parse_args()
    if args.instructions:
        count_instructions(args.version)
        return
    version, batches = (v16.VERSION, frames_16()) if args.version == "1.6" \
        else (v201.VERSION, frames_201())
    settings = load_settings(None, {}).ocpp
    store = Store()
    service = ChargingService(store, settings)  # type: ignore[arg-type]
    context = StationContext("CP")
    session = Session(context, Conn(), version, version.handlers(context, service, settings),
                      metrics=Metrics(), sink=Sink(), response_timeout=5)  # type: ignore[arg-type]
    if args.only is not None:  # 20 frames to warm caches and compile schemas, then `count`
        for f in batches[args.only][:20 + args.count]:
            await session.receive(f)
        return
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for f in batches["mixed"]:
            await session.receive(f)
        profiler.disable()
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(40)
        return
    best: dict[str, float] = {}
    for _ in range(5):
        for label, batch in batches.items():
            store.tx.seq_nos = []
            t = time.perf_counter()
            for f in batch:
                await session.receive(f)
            us = (time.perf_counter() - t) / len(batch) * 1e6
            best[label] = min(best.get(label, 1e9), us)
    print(args.version, {k: round(v, 1) for k, v in best.items()}, "us/frame")

def count_instructions(version: str, count: int = 2000) -> None:
    labels = [label for label in (frames_16() if version == "1.6" else frames_201())
              if label != "mixed"]
    result = {}
    for label in labels:
        ir = [_callgrind(["--version", version, "--only", label, "--count", str(n)])
              for n in (0, count)]
        result[label] = round((ir[1] - ir[0]) / count)
    print(version, result, "instructions/frame")


def _callgrind(args: list[str]) -> int:
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, *args], capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    assert found, done.stderr[-2000:]
    return int(found.group(1))


if __name__ == "__main__":
    asyncio.run(main())
