"""`csms` command line: serve, worker, simulate, station and idtag administration."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from csms import simulator
from csms.domain import STATION_ID_RULE, IdTag, Station, isoformat, valid_station_id
from csms.settings import ConfigError
from csms.store import KEEP, Keep, Store, StoreError
from csms.store.factory import make_store
from web import posture
from web.settings import Settings, load_settings
from web.tls import server_context

T = TypeVar("T")

DEFAULT_CONFIG = "config.toml"


def _settings(args: argparse.Namespace) -> Settings:
    import os

    path = args.config
    if path == DEFAULT_CONFIG and not os.path.exists(path):
        path = None  # no file: built-in defaults plus environment
    return load_settings(path)


def _serve(args: argparse.Namespace) -> int:
    from web import serving
    from web.app import create_app

    settings = _settings(args)
    tls = server_context(settings.server)
    host = args.host or settings.server.host
    port = args.port if args.port is not None else settings.server.port
    sock = _listen(host, port)  # before anything opens: a busy port costs nothing
    port = sock.getsockname()[1]
    settings.server.port = port  # the port it listens on names a cluster node by default
    app = create_app(settings)
    http, ws = ("https", "wss") if tls else ("http", "ws")
    loop = None
    if settings.server.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    serving.run(app, sock, tls, loop=loop,
                ready=lambda: print(f"csms listening on {http}://{host}:{port} "
                                    f"(OCPP at {ws}://{host}:{port}/ocpp/<stationId>, "
                                    f"security profile {settings.ocpp.security_profile})",
                                    flush=True))
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, or a one-line error naming the key to change."""
    try:
        return socket.create_server((host, port), backlog=1024)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"server.port: {port} is already in use on {host}") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(f"server.port: not allowed to listen on {host}:{port}") from None
        raise ConfigError(f"server.host: cannot listen on {host}:{port}: "
                          f"{exc.strerror or exc}") from None


def _worker(args: argparse.Namespace) -> int:
    from billing.worker import main as worker_main

    return worker_main(_settings(args))


async def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:

    store = make_store(settings.store)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


def _station_add(args: argparse.Namespace) -> int:
    from csms.passwords import hash_password

    if not valid_station_id(args.id):
        print(f"csms: {args.id!r} is not a station id ({STATION_ID_RULE})", file=sys.stderr)
        return 2
    settings = _settings(args)
    hashed = hash_password(args.password) if args.password else None
    profile: int | Keep | None = KEEP if args.profile is None else \
        None if args.profile == "default" else int(args.profile)

    async def work(store: Store) -> Station:
        return await store.provision_station(
            args.id, hashed, keep_password=hashed is None and not args.clear_password,
            security_profile=profile)

    station = asyncio.run(_with_store(settings, work))
    for finding in posture.unservable_stations(settings, [station]):
        print(f"csms: warning: {finding}", file=sys.stderr)
    print(f"station {station.id} provisioned"
          + (" with a password" if station.password_hash else " without a password")
          + ("" if station.security_profile is None
             else f", security profile {station.security_profile}"))
    return 0


def _profile(station: Station, default: int) -> str:
    """`3` for a station's own profile, `1 (default)` for the server's."""
    return f"{default} (default)" if station.security_profile is None \
        else str(station.security_profile)


def _station_list(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(store: Store) -> list[Station]:
        return await store.list_stations()

    stations = asyncio.run(_with_store(settings, work))
    default = settings.ocpp.security_profile
    print(f"{'ID':<24} {'PROVISIONED':<11} {'PASSWORD':<8} {'PROFILE':<11} {'VENDOR':<16} "
          f"{'MODEL':<16} LAST SEEN")
    for s in stations:
        print(f"{s.id:<24} {'yes' if s.provisioned else 'no':<11} "
              f"{'yes' if s.password_hash else 'no':<8} {_profile(s, default):<11} "
              f"{s.vendor or '-':<16} {s.model or '-':<16} {isoformat(s.last_seen) or '-'}")
    return 0


def _idtag_add(args: argparse.Namespace) -> int:
    settings = _settings(args)
    expiry = None
    if args.expiry:
        expiry = datetime.fromisoformat(args.expiry.replace("Z", "+00:00"))
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)

    async def work(store: Store) -> IdTag:
        return await store.upsert_id_tag(IdTag(args.id_tag, args.status, expiry, args.parent))

    tag = asyncio.run(_with_store(settings, work))
    print(f"idTag {tag.id_tag}: {tag.status}")
    return 0


def _idtag_list(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(store: Store) -> list[IdTag]:
        return await store.list_id_tags()

    tags = asyncio.run(_with_store(settings, work))
    print(f"{'ID TAG':<22} {'STATUS':<9} {'EXPIRES':<26} PARENT")
    for t in tags:
        print(f"{t.id_tag:<22} {t.status:<9} {isoformat(t.expiry_date) or '-':<26} "
              f"{t.parent_id_tag or '-'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csms", description="OCPP central system")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", default=DEFAULT_CONFIG, help="TOML config file")
        return p

    serve = with_config(sub.add_parser("serve", help="HTTP + OCPP on one port"))
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=_serve)

    worker = with_config(sub.add_parser("worker", help="run money jobs from the redis broker"))
    worker.set_defaults(func=_worker)

    station = sub.add_parser("station", help="provision stations")
    station_sub = station.add_subparsers(dest="station_command", required=True)
    add = with_config(station_sub.add_parser("add", help="provision a station"))
    add.add_argument("id")
    password = add.add_mutually_exclusive_group()
    password.add_argument("--password", help="HTTP Basic password the station must send "
                          "(without it or --clear-password, a station keeps its password)")
    password.add_argument("--clear-password", action="store_true",
                          help="remove the station's password")
    add.add_argument("--profile", choices=["1", "2", "3", "default"],
                     help="the station's own security profile (1 Basic, 2 TLS + Basic, 3 mutual "
                     "TLS), or default: the server's ocpp.security_profile (without it, a "
                     "station keeps its own)")
    add.set_defaults(func=_station_add)
    with_config(station_sub.add_parser("list", help="list stations")).set_defaults(
        func=_station_list)

    idtag = sub.add_parser("idtag", help="manage id tags (RFID cards)")
    idtag_sub = idtag.add_subparsers(dest="idtag_command", required=True)
    tag_add = with_config(idtag_sub.add_parser("add", help="add or update an id tag"))
    tag_add.add_argument("id_tag")
    tag_add.add_argument("--status", default="Accepted",
                         choices=["Accepted", "Blocked", "Expired", "Invalid"])
    tag_add.add_argument("--expiry", help="ISO 8601 expiry date-time")
    tag_add.add_argument("--parent", help="parent id tag")
    tag_add.set_defaults(func=_idtag_add)
    with_config(idtag_sub.add_parser("list", help="list id tags")).set_defaults(
        func=_idtag_list)

    simulator.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"csms: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:  # the store cannot be opened (a bad or unreachable MongoDB)
        print(f"csms: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
