"""Messages between nodes over Redis pub/sub: one channel per node (calls, replies, drops)
and one the whole cluster hears (presence changes, live events).

Pub/sub delivers to whoever listens now, and nothing is kept: a message to a node that is
gone reaches nobody (PUBLISH says so: 0 receivers), and the sender's own timeout covers a
node that dies while it works. That is the contract routing needs; nothing durable goes here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from csms.background import stop_if_cancelled

log = logging.getLogger(__name__)

Message = dict[str, Any]
# A handler that returns an awaitable runs in a task of its own (a call to a station); one that
# returns None runs in line (a live event: cheap, and in order).
Handler = Callable[[Message], Awaitable[None] | None]
CLUSTER_CHANNEL = "csms:cluster"
RESUBSCRIBE_DELAY = 1.0  # seconds between attempts while Redis is unreachable


NODE_PREFIX = "csms:node:"


def node_channel(node_id: str) -> str:
    return NODE_PREFIX + node_id


class Bus:
    def __init__(self, redis: Redis, node_id: str) -> None:
        self.redis = redis
        self.node_id = node_id
        self.handlers: dict[str, Handler] = {}
        self._listener: asyncio.Task[None] | None = None
        self._work: set[asyncio.Task[None]] = set()
        self._subscribed = asyncio.Event()

    def on(self, kind: str, handler: Handler) -> None:
        self.handlers[kind] = handler

    async def send(self, node_id: str, message: Message) -> int:
        """Publish to one node's channel; the number of nodes that heard it (0: gone)."""
        return int(await self.redis.publish(node_channel(node_id), json.dumps(message)))

    async def broadcast(self, message: Message) -> None:
        await self.redis.publish(CLUSTER_CHANNEL, json.dumps({**message, "node": self.node_id}))

    async def start(self, timeout: float = 10) -> None:
        """Subscribe (and keep subscribing across Redis restarts) until `stop`."""
        self._listener = asyncio.create_task(self._listen(), name="cluster-bus")
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def stop(self) -> None:
        tasks = [t for t in (self._listener, *self._work) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(node_channel(self.node_id), CLUSTER_CHANNEL)
                self._subscribed.set()
                async for raw in pubsub.listen():
                    self._dispatch(raw)
                    stop_if_cancelled()
            except (RedisError, OSError) as exc:
                log.warning("cluster bus: Redis unreachable (%s); subscribing again", exc)
                await asyncio.sleep(RESUBSCRIBE_DELAY)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _dispatch(self, raw: dict[str, Any]) -> None:
        try:
            message = json.loads(raw["data"])
            handler = self.handlers.get(message.get("type", ""))
        except (ValueError, AttributeError, TypeError):
            log.warning("cluster bus: dropped an unreadable message")
            return
        if handler is None:
            return
        try:
            result = handler(message)
        except Exception:
            log.exception("cluster bus: handling a %s message failed", message.get("type"))
            return
        if result is None:
            return
        task = asyncio.create_task(self._run(result, message), name="cluster-message")
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    async def _run(self, work: Awaitable[None], message: Message) -> None:
        try:
            await work
        except Exception:
            log.exception("cluster bus: handling a %s message failed", message.get("type"))
