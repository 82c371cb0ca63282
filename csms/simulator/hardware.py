"""What every simulated station shares, whatever OCPP version it speaks: the counted websocket,
timed calls, an energy meter that a car draws from, and the loop that runs a booted station."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from datetime import UTC, datetime
from typing import Any

from ocpp.exceptions import OCPPError
from websockets.asyncio.client import ClientConnection

from csms.simulator.results import CALL_ERROR, TIMEOUT, SimulationConfig, Stats

VENDOR = "CSMS-Sim"
MODEL = "SimCharger-22"
FIRMWARE = "1.0.0"
# Nominal charging powers (W) a station picks from: 1-phase 16 A, 1-phase 32 A, 3-phase 16 A / 32 A.
POWERS_W = (3_680, 7_360, 11_040, 22_080)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CountingConnection:
    """The websocket as the `ocpp` ChargePoint sees it, counting frames both ways."""

    def __init__(self, websocket: ClientConnection, stats: Stats) -> None:
        self._websocket = websocket
        self._stats = stats

    async def send(self, message: str) -> None:
        await self._websocket.send(message)
        self._stats.count_sent()

    async def recv(self) -> str | bytes:
        message = await self._websocket.recv()
        self._stats.messages_received += 1
        return message


class Hardware:
    """Mixed into a version's `ChargePoint` subclass (which provides `id` and `call`).

    The subclass speaks its OCPP version through the hooks below; `charge_until` drives them.
    """

    id: str
    call: Any
    transaction_id: Any
    # Set by the subclass's handlers of server calls, acted on by `charge_until`.
    wake: asyncio.Event
    stop_requested: str | None  # stop reason
    triggered: list[str]  # messages a TriggerMessage asked for

    def init_hardware(self, station_id: str, config: SimulationConfig, stats: Stats) -> None:
        self.config = config
        self.stats = stats
        rng = random.Random(station_id)
        self.meter_wh = float(rng.randint(0, 500_000))  # lifetime register, Wh
        self.power_w = config.power_kw * 1000 if config.power_kw else float(rng.choice(POWERS_W))
        self.rng = rng
        self.meter_start = 0
        self.last_sample_at = 0.0

    def say(self, text: str) -> None:
        if self.config.verbose:
            print(f"{self.id}: {text}", flush=True)

    @property
    def room_wh(self) -> float:
        """What the car still takes in this transaction before it is full (inf: no limit)."""
        if self.config.battery_kwh is None:
            return float("inf")
        return max(0.0, self.meter_start + self.config.battery_kwh * 1000 - self.meter_wh)

    async def timed_call(self, payload: Any) -> Any | None:
        """Send one CALL; record its latency; None (and an error counted) on failure."""
        action = type(payload).__name__
        self.stats.calls[action] += 1
        started = time.perf_counter()
        try:
            response = await self.call(
                payload,
                suppress=False,
                skip_schema_validation=not self.config.validate_messages,
            )
        except TimeoutError:
            self.stats.error(TIMEOUT, f"{self.id} {action}: no response")
            return None
        except OCPPError as exc:
            self.stats.error(CALL_ERROR, f"{self.id} {action}: {type(exc).__name__} {exc!r}")
            return None
        self.stats.latencies.setdefault(action, []).append(time.perf_counter() - started)
        return response

    def advance_meter(self) -> float:
        """Accumulate energy since the last sample; return W (0 once the car is full).

        A configured power is drawn exactly; a picked one varies slightly, like a real car's.
        """
        now = time.monotonic()
        power = self.power_w if self.config.power_kw else \
            self.power_w * self.rng.uniform(0.95, 1.02)
        if self.room_wh <= 0:
            power = 0.0
        self.meter_wh += min(self.room_wh, power * max(0.0, now - self.last_sample_at) / 3600)
        self.last_sample_at = now
        return power

    async def charge_until(self, end_at: float, heartbeat_interval: float) -> None:
        """Act on server calls, send meter values while charging, stop when the car is full and
        heartbeat, sleeping between these until something is due or loop time `end_at`."""
        loop = asyncio.get_running_loop()
        interval = self.config.meter_interval
        next_meter = loop.time() + interval
        next_heartbeat = loop.time() + heartbeat_interval
        while True:
            self.wake.clear()
            if loop.time() >= end_at:
                break
            if self.stop_requested is not None:
                reason, self.stop_requested = self.stop_requested, None
                await self.end_transaction(reason)
            if await self.begin_requested_transaction():
                next_meter = loop.time() + interval
            await self.send_queued()
            if self.transaction_id is not None and loop.time() >= next_meter:
                await self.send_meter_values()
                next_meter += interval
                if next_meter <= loop.time():  # fell behind: skip, don't burst
                    next_meter = loop.time() + interval
            if self.transaction_id is not None and self.room_wh <= 0:
                await self.car_full()
                continue
            if loop.time() >= next_heartbeat:
                await self.send_heartbeat()
                next_heartbeat = loop.time() + heartbeat_interval
            wake_at = min(end_at, next_heartbeat)
            if self.transaction_id is not None:
                full_at = self.last_sample_at + self.room_wh / max(self.power_w, 1) * 3600
                wake_at = min(wake_at, next_meter, full_at + loop.time() - time.monotonic())
            delay = wake_at - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.wake.wait()

    async def send_queued(self) -> None:
        """Send what server calls queued for after their answer: triggered messages."""
        while self.triggered:
            await self.send_triggered(self.triggered.pop(0))

    # hooks each OCPP version provides ---------------------------------------------------------

    async def begin_requested_transaction(self) -> bool:
        """Begin the transaction a remote start asked for, if any; True if one was tried."""
        raise NotImplementedError

    async def end_transaction(self, reason: str) -> None:
        raise NotImplementedError

    async def send_triggered(self, message: str) -> None:
        raise NotImplementedError

    async def send_meter_values(self) -> None:
        raise NotImplementedError

    async def send_heartbeat(self) -> None:
        raise NotImplementedError

    async def car_full(self) -> None:
        """The car stops drawing; the station ends the transaction as its version does."""
        raise NotImplementedError
