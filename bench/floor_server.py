"""The floor: a bare OCPP 1.6J central system built only from the `ocpp` library's example.

This is the central_system example from the `ocpp` library's README/docs (a `websockets` server
and a `ChargePoint` subclass with `@on(...)` handlers returning minimal call results), extended
with the handlers a charging session needs. No persistence, no authentication, no billing: it is
what any server built on the same library cannot beat, so the benchmark compares against it.

Deviations from the documented example, all in the direction of speed:
- frames are not logged (the example logs at INFO, which costs 10-20%);
- permessage-deflate is off (real chargers rarely negotiate it).
Schema validation keeps the library defaults (thread-executor validation) unless
`--sync-validation` is given.

Run: `python bench/floor_server.py --port 9001`
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
from datetime import UTC, datetime

import ocpp.messages
from ocpp.routing import on
from ocpp.v16 import ChargePoint as BaseChargePoint
from ocpp.v16 import call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
from websockets.asyncio.server import Server, ServerConnection, serve

LOGGER = logging.getLogger("floor_server")

_transaction_ids = itertools.count(1)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ChargePoint(BaseChargePoint):
    heartbeat_interval = 300

    @on(Action.boot_notification)
    def on_boot_notification(self, charge_point_vendor: str, charge_point_model: str, **kwargs):
        return call_result.BootNotification(
            current_time=_now(),
            interval=self.heartbeat_interval,
            status=RegistrationStatus.accepted,
        )

    @on(Action.heartbeat)
    def on_heartbeat(self, **kwargs):
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    def on_status_notification(self, **kwargs):
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str, **kwargs):
        return call_result.Authorize(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.start_transaction)
    def on_start_transaction(self, **kwargs):
        return call_result.StartTransaction(
            transaction_id=next(_transaction_ids),
            id_tag_info={"status": AuthorizationStatus.accepted},
        )

    @on(Action.stop_transaction)
    def on_stop_transaction(self, **kwargs):
        return call_result.StopTransaction(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.meter_values)
    def on_meter_values(self, **kwargs):
        return call_result.MeterValues()


async def on_connect(
    websocket: ServerConnection, charge_point_class: type[ChargePoint] = ChargePoint
) -> None:
    """One charge point: check the subprotocol (as the example does) and serve its messages."""
    if "Sec-WebSocket-Protocol" not in websocket.request.headers:
        LOGGER.info("client asked for no subprotocol; closing")
        await websocket.close()
        return
    if websocket.subprotocol != "ocpp1.6":
        LOGGER.info("subprotocols mismatched; closing")
        await websocket.close()
        return
    charge_point_id = websocket.request.path.strip("/").split("/")[-1]
    charge_point = charge_point_class(charge_point_id, websocket)
    try:
        await charge_point.start()
    except Exception:  # connection closed (normally or not): nothing to clean up
        pass


async def start_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    heartbeat_interval: int = 300,
    sync_validation: bool = False,
    charge_point_class: type[ChargePoint] = ChargePoint,
) -> Server:
    """Start the floor server and return the `websockets` Server (port 0: pick a free port).

    `charge_point_class` lets tests serve stations with a subclass (for example one that sends
    calls to the station).
    """
    if sync_validation:
        ocpp.messages.ASYNC_VALIDATION = False
    ChargePoint.heartbeat_interval = heartbeat_interval

    async def handler(websocket: ServerConnection) -> None:
        await on_connect(websocket, charge_point_class)

    return await serve(
        handler,
        host,
        port,
        subprotocols=["ocpp1.6"],
        compression=None,
        backlog=4096,
    )


def server_port(server: Server) -> int:
    """The TCP port a started server listens on."""
    return int(server.sockets[0].getsockname()[1])


async def _main(args: argparse.Namespace) -> None:
    server = await start_server(
        args.host,
        args.port,
        heartbeat_interval=args.heartbeat_interval,
        sync_validation=args.sync_validation,
    )
    print(f"floor server listening on ws://{args.host}:{server_port(server)}/ocpp", flush=True)
    await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--heartbeat-interval", type=int, default=300)
    parser.add_argument(
        "--sync-validation",
        action="store_true",
        help="set ocpp.messages.ASYNC_VALIDATION = False (validate without the thread pool)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        asyncio.run(_main(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
