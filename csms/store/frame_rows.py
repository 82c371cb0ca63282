"""The OCPP message log as rows: one row per station per flush, holding that station's frames.

Both adapters store the log this way (`sqlite_frames`, `mongo_frames`). One row (and one index
entry) per frame cost ~5.5 us of CPU per logged frame, ~7% of a busy hub's; a station logs
about ten frames per one-second flush under load (docs/performance.md, round four).

A row holds:

    station_id
    last_seq   the station's sequence number of the row's newest frame; its frames are
               numbered last_seq - len(frames) + 1 .. last_seq (every frame appended counts,
               also one past `keep` that was never stored)
    since      the station's oldest sequence number shown as of this row's write: the newest
               `keep` end at last_seq - keep + 1 (never lower than the row before's)
    bytes      UTF-8 bytes of its frame texts: what `message_log_bytes` counts
    frames     oldest first, each [direction, at, frame]

Trimming a station to `keep` deletes its rows that lie wholly below `since`; a row that
straddles `since` keeps its older frames until it goes with a later trim, and readers skip
them (`NewestFirst`), so a station shows exactly its newest `keep` frames, as before. Those
hidden frames still count against the byte cap until their row goes (at most one flush's
worth per station). Trimming to the byte cap deletes the oldest rows, whichever station they
belong to, and cuts the head of the row it stops in (`cut_head`), so exactly the oldest frames
go, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from csms.domain import LoggedFrame


def utf8_len(text: str) -> int:
    """Bytes of `text` in UTF-8 (`isascii` is a flag check: most frames skip the encode)."""
    return len(text) if text.isascii() else len(text.encode())


def window(appended: int, last: int, since: int, keep: int) -> tuple[int, int]:
    """A station's `appended` new frames bring its newest sequence number to `last`: how many
    of them are stored (the newest `keep` at most), and its new `since` (was `since`)."""
    return min(appended, keep), max(since, last - keep + 1)


def cut_head(frames: list[Any], sizes: Sequence[int], excess: int) -> tuple[list[Any], int]:
    """The frames left after dropping the oldest until `excess` bytes went, and the bytes
    dropped; `sizes` are the frames' byte counts."""
    dropped = 0
    for index, size in enumerate(sizes):
        if dropped >= excess:
            return frames[index:], dropped
        dropped += size
    return [], dropped


class NewestFirst:
    """A station's frames read from its rows, newest row first, until `limit`: frames below
    the newest row's `since` are past `keep` and are skipped."""

    __slots__ = ("at", "frames", "limit", "since", "station_id")

    def __init__(self, station_id: str, limit: int, at: Callable[[Any], datetime]) -> None:
        self.station_id = station_id
        self.limit = max(0, limit)
        self.at = at  # the adapter's stored timestamp -> an aware UTC datetime
        self.since: int | None = None
        self.frames: list[LoggedFrame] = []

    @property
    def full(self) -> bool:
        return len(self.frames) >= self.limit

    def add(self, last_seq: int, since: int, frames: Sequence[Sequence[Any]]) -> bool:
        """Take one row's frames (oldest first); True when no older row can add any."""
        if self.since is None:
            self.since = since
        seq = last_seq
        for direction, at, text in reversed(frames):
            if seq < self.since or self.full:
                return True
            self.frames.append(LoggedFrame(self.station_id, direction, text, self.at(at)))
            seq -= 1
        return seq < self.since or self.full
