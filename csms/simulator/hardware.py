"""What every simulated station shares, whatever OCPP version it speaks: the counted websocket,
timed calls, and an energy meter that a car draws from."""

from __future__ import annotations

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
    """Mixed into a version's `ChargePoint` subclass (which provides `id` and `call`)."""

    id: str
    call: Any

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
