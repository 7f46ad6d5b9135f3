"""Summaries of the DMARC and TLS reports received for local domains, `DATA_DIR/reports.db`
(SQLite, 0600), for the admin interface: one row per report and policy domain, the summary as
JSON (mailsrv.message.aggregatereports).

The same report received twice (kind, organisation, report id, domain) is kept once. At most
MAX_ROWS rows are kept; the oldest by received time go first. The connection belongs to the
thread that opened it (the reactor's in the daemon).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import msgspec

MAX_ROWS = 20_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS report (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,          -- dmarc, tlsrpt
    domain TEXT NOT NULL,        -- the policy domain (A-label, lower case)
    org TEXT NOT NULL,
    report_id TEXT NOT NULL,
    begin INTEGER NOT NULL,
    end INTEGER NOT NULL,
    received REAL NOT NULL,
    account TEXT NOT NULL,       -- whose reports mailbox holds the message
    summary BLOB NOT NULL,       -- JSON
    UNIQUE (kind, org, report_id, domain)
);
CREATE INDEX IF NOT EXISTS report_domain ON report (domain, kind, end DESC);
"""


class StoredReport(msgspec.Struct, kw_only=True):
    kind: str
    domain: str
    org: str
    report_id: str
    begin: int
    end: int
    received: float
    account: str
    summary: bytes  # the kind's summary as JSON


class ReportStore:
    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "reports.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # a lost summary is no lost mail: the message stays
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def add(
        self, kind: str, domain: str, org: str, report_id: str, begin: int, end: int, account: str, summary: bytes
    ) -> bool:
        """Records a report; False when it was recorded before."""
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO report (kind, domain, org, report_id, begin, end, received, account, summary)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (kind, domain, org, report_id, begin, end, time.time(), account, summary),
        )
        if cursor.rowcount and self.db.execute("SELECT count(*) FROM report").fetchone()[0] > MAX_ROWS:
            self.db.execute(
                "DELETE FROM report WHERE id IN (SELECT id FROM report ORDER BY received LIMIT ?)", (MAX_ROWS // 10,)
            )
        return bool(cursor.rowcount)

    def for_domain(self, domain: str, kind: str, limit: int) -> list[StoredReport]:
        """The domain's reports of `kind`, the latest period first."""
        rows = self.db.execute(
            "SELECT kind, domain, org, report_id, begin, end, received, account, summary FROM report"
            " WHERE domain = ? AND kind = ? ORDER BY end DESC, id DESC LIMIT ?",
            (domain, kind, limit),
        ).fetchall()
        return [
            StoredReport(
                kind=r[0],
                domain=r[1],
                org=r[2],
                report_id=r[3],
                begin=r[4],
                end=r[5],
                received=r[6],
                account=r[7],
                summary=bytes(r[8]),
            )
            for r in rows
        ]
