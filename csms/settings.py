"""Settings sections the charging core owns (`[ocpp]`, `[store]`), and what every section shares.

The root settings object lives with the entry points (`web.settings`); each package declares its
own sections so the keys sit next to the code that reads them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ConfigError(Exception):
    """A configuration value is missing, malformed or out of range."""


class Section(BaseModel):
    """A `[section]` of config.toml: unknown keys are refused, so a typo is an error."""

    model_config = ConfigDict(extra="forbid")


class OcppSettings(Section):
    allow_unknown_stations: bool = True
    accept_unknown_id_tags: bool = True
    heartbeat_interval: int = Field(300, ge=1)
    remote_start_timeout: float = Field(60, gt=0)
    command_timeout: float = Field(30, gt=0)
    message_log_size: int = Field(500, ge=0)
    # The message log keeps at most this many bytes of frames, all stations together (ids
    # are free to invent while allow_unknown_stations is true); 0: no limit.
    message_log_bytes: int = Field(64 * 1024 * 1024, ge=0)
    message_log_frame_bytes: int = Field(8192, ge=256)  # a longer frame is stored truncated
    # a station's answered Heartbeats (the call and its result) are logged at most once per
    # this many seconds; errors and every other frame are always logged; 0: log every Heartbeat
    message_log_heartbeat_interval: float = Field(60, ge=0)
    require_subprotocol: bool = False
    # seconds between batched writes of Heartbeats' last-seen times (`csms.last_seen`: the
    # stored last_seen may lag by this much); 0: one write per Heartbeat
    last_seen_interval: float = Field(5, ge=0)
    # seconds: > 0 acknowledges MeterValues before their values are committed and writes them
    # within this window, one write per window (`csms.meter_window`: a crash loses at most the
    # last window's); 0: every value is stored before it is acknowledged
    meter_commit_window: float = Field(0, ge=0)
    # permessage-deflate on station websockets: off by default, since a deflate context costs
    # ~300 KB per connection, and OCPP-J frames are small
    websocket_compression: bool = False
    # 1: HTTP Basic; 2: TLS + Basic; 3: mutual TLS, the client certificate's CN = station id.
    # The default: a station provisioned with its own profile connects with that one.
    security_profile: int = Field(1, ge=1, le=3)


class StoreSettings(Section):
    backend: Literal["sqlite", "mongodb"] = "sqlite"
    sqlite_path: str = "data/csms.db"
    mongodb_url: str = "mongodb://localhost:27017"
    mongodb_database: str = "csms"
    mongodb_timeout: float = Field(5, gt=0)  # seconds to reach MongoDB before a call fails
    meter_values_ttl_days: int = Field(0, ge=0)  # MongoDB: TTL on meter values; 0 keeps them




class ClusterSettings(Section):
    """`[cluster]`: several `csms serve` nodes sharing presence, commands and live events
    through Redis (needs `store.backend = "mongodb"` and `tasks.broker = "redis"`)."""

    enabled: bool = False
    redis_url: str = ""  # default: tasks.redis_url
    node_id: str = ""  # default: host name and port
    # A node refreshes its stations' presence every `presence_ttl / 3` seconds; a node that
    # dies loses its stations to the others after at most `presence_ttl`.
    presence_ttl: float = Field(15, ge=1)
    # How long a node waits beyond the command's own timeout for the holding node's answer.
    route_margin: float = Field(2, gt=0)
