"""A hand-written aiohttp OCPP-J echo: the cost of websockets and JSON in Python, nothing else.

It answers every CALL with a canned CALLRESULT for its action (no validation, no storage, no
logging), for 1.6 and 2.0.1 stations alike. It is the ceiling a Python server on aiohttp could
reach; `bench/side_by_side.py` compares `csms serve` with it.

    python bench/echo_server.py --port 9003
"""

from __future__ import annotations

import argparse
import itertools
import json
from datetime import UTC, datetime

from aiohttp import WSMsgType, web

_transaction_ids = itertools.count(1)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reply(action: str) -> dict[str, object]:
    if action == "BootNotification":
        return {"status": "Accepted", "interval": 300, "currentTime": _now()}
    if action == "Heartbeat":
        return {"currentTime": _now()}
    if action == "StartTransaction":
        return {"transactionId": next(_transaction_ids), "idTagInfo": {"status": "Accepted"}}
    if action in ("Authorize", "StopTransaction"):
        return {"idTagInfo": {"status": "Accepted"}}
    return {}


async def ocpp(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=("ocpp2.0.1", "ocpp1.6"), autoping=True)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        frame = json.loads(msg.data)
        if frame[0] == 2:
            await ws.send_str(json.dumps([3, frame[1], _reply(frame[2])]))
    return ws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9003)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/ocpp/{station_id}", ocpp)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
