"""The SQLite adapter's `ReportStore` (device-model reports), mixed into `SqliteStore`.

`station_reports` points at each station's latest complete report and its report in progress;
a report's parts live in `report_parts` under a key of their own (a report is not named by
its requestId alone: operators send GetBaseReport with requestId 1 again and again). Each
`add_report_part` is one write in the store's group commit, so it is atomic.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from csms.device_model import DeviceReport, ReportPart, variables_from_json, variables_to_json
from csms.store.sqlite_support import dt_req, ts

T = TypeVar("T")

# charging schema version 5 (csms.store.sqlite._MIGRATIONS)
REPORTS_SCHEMA = """
CREATE TABLE station_reports (
    station_id         TEXT PRIMARY KEY,
    current_key        TEXT,     -- the latest complete report, NULL: none yet
    request_id         INTEGER,
    parts              INTEGER,  -- its seqNos are 0 .. parts - 1
    completed_at       TEXT,
    pending_key        TEXT,     -- the report in progress, NULL: none
    pending_request_id INTEGER
);
CREATE TABLE report_parts (
    report_key   TEXT NOT NULL,
    seq_no       INTEGER NOT NULL,
    station_id   TEXT NOT NULL,
    tbc          INTEGER NOT NULL,
    generated_at TEXT NOT NULL,
    variables    TEXT NOT NULL,  -- JSON, csms.device_model.variables_to_json
    PRIMARY KEY (report_key, seq_no)
);
"""


class SqliteReports:
    _write: Callable[..., Any]
    _read: Callable[..., Any]

    async def add_report_part(self, part: ReportPart, received_at: datetime,
                              ) -> DeviceReport | None:
        return await self._write(lambda conn: _add_part(conn, part, received_at))

    async def latest_report(self, station_id: str) -> DeviceReport | None:
        return await self._read(lambda conn: _latest(conn, station_id))


def _add_part(conn: sqlite3.Connection, part: ReportPart, received_at: datetime,
              ) -> DeviceReport | None:
    row = conn.execute("SELECT current_key, pending_key, pending_request_id"
                       " FROM station_reports WHERE station_id = ?",
                       (part.station_id,)).fetchone()
    pending = row["pending_key"] if row else None
    if part.seq_no == 0 or pending is None or row["pending_request_id"] != part.request_id:
        if pending is not None:
            conn.execute("DELETE FROM report_parts WHERE report_key = ?", (pending,))
        pending = uuid.uuid4().hex
        conn.execute(
            "INSERT INTO station_reports (station_id, pending_key, pending_request_id)"
            " VALUES (?, ?, ?) ON CONFLICT (station_id) DO UPDATE SET"
            " pending_key = excluded.pending_key,"
            " pending_request_id = excluded.pending_request_id",
            (part.station_id, pending, part.request_id))
    conn.execute(
        "INSERT OR IGNORE INTO report_parts"
        " (report_key, seq_no, station_id, tbc, generated_at, variables)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (pending, part.seq_no, part.station_id, int(part.tbc), ts(part.generated_at),
         variables_to_json(part.variables)))
    if part.tbc:
        return None
    kept = conn.execute("SELECT COUNT(*) FROM report_parts WHERE report_key = ? AND seq_no <= ?",
                        (pending, part.seq_no)).fetchone()[0]
    if kept != part.seq_no + 1:
        return None  # a part before the last is missing: the report stays in progress
    if row is not None and row["current_key"] is not None:
        conn.execute("DELETE FROM report_parts WHERE report_key = ?", (row["current_key"],))
    conn.execute(
        "UPDATE station_reports SET current_key = ?, request_id = ?, parts = ?,"
        " completed_at = ?, pending_key = NULL, pending_request_id = NULL"
        " WHERE station_id = ?",
        (pending, part.request_id, part.seq_no + 1, ts(received_at), part.station_id))
    return _latest(conn, part.station_id)


def _latest(conn: sqlite3.Connection, station_id: str) -> DeviceReport | None:
    row = conn.execute("SELECT current_key, request_id, parts, completed_at"
                       " FROM station_reports WHERE station_id = ?", (station_id,)).fetchone()
    if row is None or row["current_key"] is None:
        return None
    parts = conn.execute("SELECT generated_at, variables FROM report_parts"
                         " WHERE report_key = ? AND seq_no < ? ORDER BY seq_no",
                         (row["current_key"], row["parts"])).fetchall()
    return DeviceReport(
        station_id=station_id, request_id=row["request_id"],
        generated_at=dt_req(parts[0]["generated_at"]),
        completed_at=dt_req(row["completed_at"]), parts=row["parts"],
        variables=[v for p in parts for v in variables_from_json(p["variables"])])
