"""Which node holds which station: `csms:station:<id>` in Redis, a small JSON value (node,
connection id, OCPP version) with a TTL that the holding node refreshes while the socket
lives. A node that dies stops refreshing, and its stations are free after `presence_ttl`.

One connection per station cluster-wide: a node that accepts a station swaps the key in one
`SET ... GET`, and when the old value names another node it tells that node to close that
connection (by its id, so a newer one there is never closed by mistake). A closing connection
deletes the key only while the key still names it (a Lua compare-and-delete), and only then
is the station recorded as disconnected: a late close on node A cannot undo the connect that
node B recorded a moment before.

Every node also keeps a mirror of the stations held elsewhere (from the presence changes
broadcast on the bus, reloaded from Redis on every refresh), so `is_connected` stays a plain
lookup; a command always reads the key itself before it is routed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from csms.background import stop_if_cancelled
from csms.charging import ChargingService
from csms.cluster.bus import NODE_PREFIX, Bus, Message, node_channel
from csms.ocpp.hub import Hub
from csms.ocpp.version import OcppVersion
from csms.store import Store

log = logging.getLogger(__name__)

PREFIX = "csms:station:"

# Delete the key when it still names this connection (or has expired): True = it was ours.
_RELEASE = """
local v = redis.call('GET', KEYS[1])
if (not v) or cjson.decode(v)['conn'] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""
# Keep the key alive while it names this connection; put it back if it expired meanwhile
# (1). A key that names another connection is returned: the station connected again
# elsewhere while this node could not hear of it (it stalled past the TTL, or the drop was
# lost with a Redis restart), so this connection is stale.
_REFRESH = """
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
if cjson.decode(v)['conn'] == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return v
"""


@dataclass(frozen=True, slots=True)
class Where:
    node: str
    connection: str
    version: str  # OcppVersion.name of the connection

    def dumps(self) -> str:
        return json.dumps({"node": self.node, "conn": self.connection, "version": self.version})

    @classmethod
    def loads(cls, text: str | bytes) -> Where:
        data = json.loads(text)
        return cls(str(data["node"]), str(data["conn"]), str(data["version"]))


def key(station_id: str) -> str:
    return PREFIX + station_id


class RedisPresence:
    """The hub's `Presence` for a cluster node."""

    def __init__(self, redis: Redis, bus: Bus, hub: Hub, charging: ChargingService,
                 store: Store, ttl: float) -> None:
        self.redis = redis
        self.bus = bus
        self.hub = hub
        self.charging = charging
        self.store = store
        self.ttl_ms = int(ttl * 1000)
        self.elsewhere: dict[str, Where] = {}  # stations other nodes hold (a mirror)
        self.dead: dict[str, Where] = {}  # presences left by nodes that died
        self._release = redis.register_script(_RELEASE)
        self._refresh = redis.register_script(_REFRESH)
        bus.on("presence", self._heard)
        bus.on("drop", self._drop)

    @property
    def node_id(self) -> str:
        return self.bus.node_id

    # the hub's Presence port -----------------------------------------------------------------
    async def claim(self, station_id: str, connection: str, version: OcppVersion) -> None:
        where = Where(self.node_id, connection, version.name)
        self.elsewhere.pop(station_id, None)
        try:
            old = await self.redis.set(key(station_id), where.dumps(), px=self.ttl_ms, get=True)
            await self.bus.broadcast({"type": "presence", "station": station_id,
                                      "where": where.dumps()})
            if old is not None:
                before = Where.loads(old)
                if before.node != self.node_id:
                    await self.bus.send(before.node, {"type": "drop", "station": station_id,
                                                      "conn": before.connection})
        except RedisError as exc:  # served here all the same; other nodes cannot route to it
            log.error("%s: could not record its presence in Redis: %s", station_id, exc)

    async def release(self, station_id: str, connection: str) -> bool:
        try:
            ours = bool(await self._release(keys=[key(station_id)], args=[connection]))
            if ours:
                await self.bus.broadcast({"type": "presence", "station": station_id,
                                          "where": None})
            return ours
        except RedisError as exc:
            log.error("%s: could not clear its presence in Redis: %s", station_id, exc)
            return True

    # where is a station ---------------------------------------------------------------------
    async def lookup(self, station_id: str) -> Where | None:
        value = await self.redis.get(key(station_id))
        return None if value is None else Where.loads(value)

    def held_elsewhere(self, station_id: str) -> bool:
        return station_id in self.elsewhere

    def _heard(self, message: Message) -> None:
        if message.get("node") == self.node_id:
            return
        station_id, where = str(message["station"]), message.get("where")
        if where is None:
            self.elsewhere.pop(station_id, None)
        else:
            self.elsewhere[station_id] = Where.loads(where)

    async def _drop(self, message: Message) -> None:
        await self.hub.drop(str(message["station"]), str(message["conn"]))

    # keeping it true -------------------------------------------------------------------------
    async def run(self) -> None:
        """Refresh this node's stations, reload the mirror, record departed stations."""
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                await self.refresh()
                await self.reload()
                await self.sweep_departed()
            except RedisError as exc:
                log.warning("cluster presence: Redis unreachable (%s)", exc)
            except Exception:
                log.exception("cluster presence refresh failed")
            stop_if_cancelled()

    async def refresh(self) -> None:
        """Keep this node's presences alive; close a connection whose station connected
        again elsewhere meanwhile (one connection per station, even when the drop was
        never heard)."""
        lives = [(sid, live) for sid in self.hub.connected_ids()
                 if (live := self.hub.live(sid)) is not None]
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid, live in lives:
                where = Where(self.node_id, live.connection, live.version.name)
                await self._refresh(keys=[key(sid)],
                                    args=[live.connection, where.dumps(), self.ttl_ms],
                                    client=pipe)
            results = await pipe.execute()
        for (sid, live), result in zip(lives, results, strict=True):
            if isinstance(result, bytes | str) and \
                    (holder := Where.loads(result).node) != self.node_id:
                log.info("%s: held by %s now; closing this node's stale connection", sid,
                         holder)
                await self.hub.drop(sid, live.connection)

    async def reload(self) -> None:
        """Read every presence again; a node that no longer listens on its channel (its
        process died: Redis dropped its subscription with the connection) holds nothing,
        whatever its keys say until they expire."""
        found: dict[str, Where] = {}
        names = [name async for name in self.redis.scan_iter(match=PREFIX + "*", count=1000)]
        for start in range(0, len(names), 1000):
            chunk = names[start:start + 1000]
            for name, value in zip(chunk, await self.redis.mget(chunk), strict=True):
                if value is not None:
                    sid = name.decode() if isinstance(name, bytes) else name
                    found[sid.removeprefix(PREFIX)] = Where.loads(value)
        nodes = {where.node for where in found.values()} - {self.node_id}
        live = await self.listening(nodes)
        self.dead = {sid: where for sid, where in found.items()
                     if where.node != self.node_id and where.node not in live}
        self.elsewhere = {sid: where for sid, where in found.items()
                          if where.node != self.node_id and where.node in live}

    async def listening(self, nodes: set[str]) -> set[str]:
        if not nodes:
            return set()
        counts = await self.redis.pubsub_numsub(*(node_channel(node) for node in nodes))
        return {(name.decode() if isinstance(name, bytes) else name).removeprefix(NODE_PREFIX)
                for name, count in counts if count}

    def node_gone(self, node_id: str) -> None:
        """A call to `node_id` reached nobody: its stations are not connected anywhere."""
        for sid in [sid for sid, where in self.elsewhere.items() if where.node == node_id]:
            self.dead[sid] = self.elsewhere.pop(sid)

    async def sweep_departed(self) -> None:
        """Stations the store shows connected that no living node holds (theirs died) are
        recorded as disconnected, so the operator sees them offline; a dead node's presence
        is deleted (unless the station connected again meanwhile)."""
        for sid, where in list(self.dead.items()):
            await self._release(keys=[key(sid)], args=[where.connection])
        self.dead = {}
        stored = [s.id for s in await self.store.list_stations() if s.connected]
        candidates = [sid for sid in stored if not self.hub.is_connected(sid)]
        if not candidates:
            return
        held = await self.redis.mget([key(sid) for sid in candidates])
        for sid, value in zip(candidates, held, strict=True):
            if value is None and await self.redis.exists(key(sid)) == 0:
                log.info("%s: its node is gone; recorded as disconnected", sid)
                await self.charging.disconnected(sid)
