"""One simulated station's life on the network: connect with its OCPP version's subprotocol,
run its session beside the library's receive loop, and (idle stations, like hardware)
reconnect when the connection fails or drops."""

from __future__ import annotations

import asyncio
import base64
import contextlib

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from csms.simulator.hardware import CountingConnection
from csms.simulator.results import CONNECT_FAILED, DISCONNECTED, SimulationConfig, Stats
from csms.simulator.station import SimulatedChargePoint
from csms.simulator.station201 import SimulatedStation201


async def run_station(
    config: SimulationConfig, index: int, start_at: float, end_at: float, stats: Stats
) -> None:
    """One station's run; idle stations reconnect when the connection fails or drops, as
    hardware does (an open transaction is then lost with the connection)."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start_at - loop.time()))
    station_id = config.station_id(index)
    meter_wh: float | None = None
    backoff = 1.0
    while True:
        connected_at = loop.time()
        meter_wh = await _connect_and_run(config, station_id, config.ocpp_version(index),
                                          end_at, stats, meter_wh)
        if not config.idle or loop.time() >= end_at:
            return
        if loop.time() - connected_at > 30:
            backoff = 1.0
        if config.verbose:
            print(f"{station_id}: reconnecting in {backoff:g} s", flush=True)
        await asyncio.sleep(min(backoff, max(0.0, end_at - loop.time())))
        backoff = min(backoff * 2, 30.0)


async def _connect_and_run(
    config: SimulationConfig, station_id: str, version: str, end_at: float, stats: Stats,
    meter_wh: float | None,
) -> float | None:
    """Connect once (offering only `version`) and run the session; returns the energy
    register to carry on with."""
    url = config.url.rstrip("/") + "/" + station_id
    headers = None
    if config.password is not None:
        token = base64.b64encode(f"{station_id}:{config.password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}"}
    try:
        websocket = await connect(
            url,
            subprotocols=[f"ocpp{version}"],
            additional_headers=headers,
            compression=None,
            open_timeout=config.connect_timeout,
        )
    except Exception as exc:  # refused, HTTP 401/404, timeout, bad handshake...
        stats.error(CONNECT_FAILED, f"{station_id}: {type(exc).__name__}: {exc}")
        if config.verbose:
            print(f"{station_id}: cannot connect to {url}: {exc}", flush=True)
        return meter_wh
    stats.stations_connected += 1
    stats.connected += 1
    kind = SimulatedStation201 if version == "2.0.1" else SimulatedChargePoint
    charge_point = kind(station_id, CountingConnection(websocket, stats), config, stats)
    if meter_wh is not None:
        charge_point.meter_wh = meter_wh
    charge_point.say(f"connected to {url}")
    reader = asyncio.create_task(charge_point.start())
    session = asyncio.create_task(charge_point.run_session(end_at))
    try:
        await asyncio.wait({reader, session}, return_when=asyncio.FIRST_COMPLETED)
        if session.done():
            exc = session.exception()
            if isinstance(exc, ConnectionClosed):
                stats.error(DISCONNECTED, f"{station_id}: {exc}")
            elif exc is not None:
                stats.error(type(exc).__name__, f"{station_id}: {exc!r}")
        else:  # the connection closed under a running session
            session.cancel()
            exc = reader.exception()
            stats.error(DISCONNECTED, f"{station_id}: {exc or 'reader ended'}")
            charge_point.say(f"disconnected: {exc or 'closed by the central system'}")
    finally:
        for task in (reader, session):
            task.cancel()
        await asyncio.gather(reader, session, return_exceptions=True)
        with contextlib.suppress(Exception):
            await websocket.close()
        stats.connected -= 1
    return charge_point.meter_wh
