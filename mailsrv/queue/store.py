"""The persistent outgoing queue: what submission accepted for remote recipients.

`data/queue/index.db` (SQLite, WAL; durable as with synchronous=FULL, below) holds one row per message and one per
recipient, grouped by destination domain, with attempt bookkeeping; `data/queue/msg/<id>`
holds the message as it will be sent. `enqueue` writes and fsyncs the file and its
directory (messages queued meanwhile share one pool job and one directory fsync), then commits
the rows, then fires: only then may submission answer 250. The content
of a message just queued also stays in memory (at most FRESH_CONTENT_BYTES in all) until it is
dropped, so its first attempt reads no file; unlinks of finished messages' files are batched
with the writes.

`SQLiteOutgoingQueue` implements `mailsrv.queue.interfaces.OutgoingQueue`, which is all that
ops and the services outside this package use. The runner (`runner.py`), this engine's own,
also works on the tables; the admin SQL is `admin.py`.

Invariants:
- A message is queued while `retired_until` is NULL; the runner then either removes it or,
  when the sending account keeps retired messages, sets `retired_until` (the end of the
  keep period) and removes only its content. So a content file exists only for a message
  whose `retired_until` is NULL; start-up removes any other file (a crash between the row
  change and the unlink).
- Queue ids only grow, also across restarts after messages were removed (`sequence`): an
  id in a log line, a DSN or the retired list never names two messages.
- Schema changes are additive and applied at open (`_migrate`), so an existing queue
  database keeps working after an upgrade.

Durability without blocking the reactor: the index runs with synchronous=NORMAL, so
`db.commit()` (on the reactor thread, like every statement) only writes the WAL; a change
is durable once `commit()` has fired: `store.walsync.IndexSync` fsyncs the WAL file in a pool thread after
committing. Commits made while an fsync runs share the next one (group commit). This is
as durable as synchronous=FULL: a frame committed before the fsync is either in the
fsynced WAL or was checkpointed into the database file, which SQLite fsyncs before it
reuses the WAL (https://sqlite.org/pragma.html#pragma_synchronous). Transaction
boundaries stay exactly where the reactor thread commits. A bare `db.commit()` (admin
changes, `dsn_sent`) is atomic at once and durable with the next `commit()`.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from twisted.internet import threads
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsrv.address import Address
from mailsrv.dsnparams import NO_MESSAGE_DSN, NO_RECIPIENT_DSN, MessageDSN, RecipientDSN
from mailsrv.pools import Runner
from mailsrv.queue import admin, outbox, suppression
from mailsrv.queue.admin import apply_hold_rules
from mailsrv.queue.interfaces import (
    LOCAL_TRANSPORT,
    NO_META,
    Attempt,
    HoldRule,
    MessageMeta,
    QueueCounts,
    QueueEvent,
    QueueFilter,
    QueuePage,
    QueuePageRequest,
    ScheduledMessage,
    Suppression,
)
from mailsrv.queue.routes import DIRECT, Routes
from mailsrv.store.files import fsync_dir
from mailsrv.store.walsync import IndexSync

log = Logger()

# Content of recently queued messages kept in memory, so that their first attempt reads no file.
FRESH_CONTENT_BYTES = 32 * 1024 * 1024
FRESH_CONTENT_MAX_MESSAGE = 1024 * 1024  # larger ones are read from their file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS message (
    id INTEGER PRIMARY KEY,
    mail_from TEXT NOT NULL,          -- "" for the null reverse-path
    account TEXT NOT NULL,            -- the submitting account ("" for system messages)
    size INTEGER NOT NULL,
    smtputf8 INTEGER NOT NULL,
    created REAL NOT NULL,
    hold INTEGER NOT NULL DEFAULT 0,
    retired_until REAL                -- NULL: queued; else retired (kept for its history) until then
);
CREATE TABLE IF NOT EXISTS recipient (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES message(id),
    address TEXT NOT NULL,
    domain TEXT NOT NULL,             -- A-label: recipients are delivered per destination domain
    status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS recipient_next ON recipient (status, next_attempt);
CREATE INDEX IF NOT EXISTS recipient_message ON recipient (message_id);
CREATE TABLE IF NOT EXISTS sequence (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL            -- the highest id handed out
);
"""

# Columns added after the first release: (table, column, definition) for ALTER TABLE.
_ADDED_COLUMNS = (
    ("message", "retired_until", "REAL"),
    # RFC 8689: the sender asked (MAIL FROM ... REQUIRETLS) for verified TLS on every hop.
    ("message", "requiretls", "INTEGER NOT NULL DEFAULT 0"),
    # RFC 3461 (DSN): MAIL FROM's RET ("FULL", "HDRS" or "" for not given) and ENVID (decoded).
    ("message", "ret", "TEXT NOT NULL DEFAULT ''"),
    ("message", "envid", "TEXT NOT NULL DEFAULT ''"),
    # RCPT TO's NOTIFY ("SUCCESS,FAILURE", "NEVER", or "" for the default FAILURE,DELAY) and
    # ORCPT ("addr-type;address", decoded).
    ("recipient", "notify", "TEXT NOT NULL DEFAULT ''"),
    ("recipient", "orcpt", "TEXT NOT NULL DEFAULT ''"),
    # 1 when the host that accepted the recipient offered DSN and got NOTIFY/ORCPT with it:
    # any success DSN is then that host's to send, not ours (RFC 3461 §5.2.2.2).
    ("recipient", "dsn_passed", "INTEGER NOT NULL DEFAULT 0"),
    # What events about the message carry (webhooks): the unique part of a fromid MAIL FROM,
    # the Message-ID field, the subject and the submitter's Extra (JSON; '' for none).
    ("message", "fromid", "TEXT NOT NULL DEFAULT ''"),
    ("message", "header_message_id", "TEXT NOT NULL DEFAULT ''"),
    ("message", "subject", "TEXT NOT NULL DEFAULT ''"),
    ("message", "extra", "TEXT NOT NULL DEFAULT ''"),
    *outbox.ADDED_COLUMNS,
    # The earliest next attempt of the message's queued recipients, 0 when none is queued: what
    # the admin listing sorts and filters on (kept by a trigger, mailsrv/queue/admin.py INDEXES).
    ("message", "next_attempt", "REAL NOT NULL DEFAULT 0"),
    # The transport (mailsrv/config/transports.py) the recipient's next attempt uses: chosen by
    # the routes when queued and after each attempt, or set by an administrator
    # (`transport_fixed` = 1: the routes no longer change it). '' in rows older than transports.
    ("recipient", "transport", "TEXT NOT NULL DEFAULT ''"),
    ("recipient", "transport_fixed", "INTEGER NOT NULL DEFAULT 0"),
    # Send later from webmail (MessageMeta.sent_copy): the submitter's Sent copy is still owed.
    ("message", "sent_copy", "INTEGER NOT NULL DEFAULT 0"),
)


@dataclass(frozen=True)
class QueuedRecipient:
    message_id: int
    address: str
    domain: str
    status: str
    attempts: int


class SQLiteOutgoingQueue:
    """The queue in `data/queue/` (module docstring). Its statements run on the reactor
    thread, its fsyncs and file I/O in pool threads."""

    def __init__(self, data_dir: Path, run_fsync: Runner | None = None, run_files: Runner | None = None) -> None:
        # Durable writes in the fsync pool, reads and unlinks in the files pool (mailsrv.pools).
        self._run_fsync: Runner = run_fsync or threads.deferToThread
        self._run_files: Runner = run_files or threads.deferToThread
        self.root = Path(data_dir) / "queue"
        self.msg_dir = self.root / "msg"
        self.msg_dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.root / "index.db", check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # the WAL is fsynced by `commit()`, see above
        self.db.executescript(_SCHEMA)
        self.db.executescript(outbox.SCHEMA)
        self.db.executescript(suppression.SCHEMA)
        admin.ensure_schema(self.db)
        self._migrate()
        admin.ensure_attempt_transport(self.db)
        self.db.executescript(admin.INDEXES)
        self.db.execute("CREATE INDEX IF NOT EXISTS recipient_transport ON recipient (transport, message_id)")
        self.db.execute("CREATE INDEX IF NOT EXISTS message_fromid ON message (fromid) WHERE fromid != ''")
        # Incoming DSNs without a fromid are matched by the returned Message-ID.
        self.db.execute(
            "CREATE INDEX IF NOT EXISTS message_msgid ON message (header_message_id) WHERE header_message_id != ''"
        )
        self.db.commit()
        # Group commit: the WAL fsync in the fsync pool, shared by the commits made meanwhile.
        self._index_sync = IndexSync(self.root / "index.db", self._run_fsync)
        self._index_sync.sync_now()  # the schema, and the WAL file's directory entry
        fsync_dir(self.root)
        self._remove_orphans()
        row = self.db.execute(
            "SELECT MAX(COALESCE((SELECT MAX(id) FROM message), 0),"
            " COALESCE((SELECT value FROM sequence WHERE name = 'message'), 0))"
        ).fetchone()
        self._ids = itertools.count(int(row[0]) + 1)
        # Content of messages queued lately, by id, for their first attempt (`read_content`).
        self._fresh: OrderedDict[int, bytes] = OrderedDict()
        self._fresh_bytes = 0
        self._just_queued: tuple[int, frozenset[str]] | None = None
        # Accounts with suppression entries or counted failures (a superset: see may_suppress).
        self._suppressing = {
            str(r[0])
            for r in self.db.execute("SELECT account FROM suppression UNION SELECT account FROM suppression_failure")
        }
        # Content files to write and to unlink, with who waits (`_file_batch`).
        self._files_waiting: list[tuple[int, bytes, Deferred[None]]] = []
        self._unlink_waiting: list[tuple[int, Deferred[None]]] = []
        self._file_batch_running = False
        # Called with the queue id once a message is durably queued (the runner's kick: the
        # first attempt starts at once instead of at the next scan).
        self.on_enqueued: list[Callable[[int], None]] = []
        # Called after `fail` left messages with no queued recipient: the runner sends their
        # DSNs and finishes them (mailsrv/queue/service.py).
        self.on_finish_wanted: list[Callable[[], None]] = []
        # Called with the time a message queued or rescheduled for later is due (send later):
        # the runner wakes then instead of at its next periodic scan.
        self.on_due_later: list[Callable[[float], None]] = []
        # The routes (mailsrv/queue/routes.py, set by the queue service): the transport a new
        # recipient starts with. None: every recipient starts `direct`.
        self.routes: Routes | None = None

    def close(self) -> None:
        self.db.close()

    def commit(self) -> Deferred[None]:
        """Commits the open transaction and fires once it is durable (see the module docstring); a failed
        fsync fails every commit it covered (submission: 451)."""
        self.db.commit()
        return self._index_sync.durable()

    def _migrate(self) -> None:
        for table, column, definition in _ADDED_COLUMNS:
            columns = {str(r[1]) for r in self.db.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
                if (table, column) == ("message", "next_attempt"):
                    self.db.execute(
                        "UPDATE message SET next_attempt = COALESCE((SELECT MIN(r.next_attempt) FROM recipient r"
                        " WHERE r.message_id = message.id AND r.status = 'queued'), 0)"
                    )

    def _remove_orphans(self) -> None:
        known = {str(r[0]) for r in self.db.execute("SELECT id FROM message WHERE retired_until IS NULL")}
        for f in self.msg_dir.iterdir():
            if f.name not in known:
                f.unlink()

    def path(self, message_id: int) -> Path:
        """Where the content lives: for this engine and its tests only (others read by id)."""
        return self.msg_dir / str(message_id)

    def read_content(self, message_id: int) -> Deferred[bytes | None]:
        fresh = self._fresh.get(message_id)
        if fresh is not None:
            return succeed(fresh)  # queued a moment ago: no file read in the pool

        def read() -> bytes | None:
            try:
                return self.path(message_id).read_bytes()
            except FileNotFoundError:
                return None  # dropped or finished since the caller looked

        return self._run_files(read)

    def drop_content(self, message_id: int) -> Deferred[None]:
        self._forget_fresh(message_id)
        d: Deferred[None] = Deferred()
        self._unlink_waiting.append((message_id, d))
        if not self._file_batch_running:
            self._file_batch()
        return d

    def _remember_fresh(self, message_id: int, data: bytes) -> None:
        """Keeps a newly queued message's content in memory for its first attempt, within
        FRESH_CONTENT_BYTES (the oldest forgotten first; the file is what counts)."""
        if len(data) > FRESH_CONTENT_MAX_MESSAGE:
            return
        self._fresh[message_id] = data
        self._fresh_bytes += len(data)
        while self._fresh_bytes > FRESH_CONTENT_BYTES:
            _, old = self._fresh.popitem(last=False)
            self._fresh_bytes -= len(old)

    def _forget_fresh(self, message_id: int) -> None:
        data = self._fresh.pop(message_id, None)
        if data is not None:
            self._fresh_bytes -= len(data)

    def _forget_all_fresh(self) -> None:
        self._fresh.clear()
        self._fresh_bytes = 0

    # --- administration (mailsrv/ops/queue.py); the SQL is admin.py ---------------------------

    def page(self, request: QueuePageRequest) -> Deferred[QueuePage]:
        return succeed(admin.page(self.db, request))

    def history(self, message_id: int) -> Deferred[list[Attempt]]:
        return succeed(admin.attempt_history(self.db, message_id))

    def size(self) -> Deferred[int]:
        return succeed(admin.count_queued(self.db))

    def set_hold(self, selection: QueueFilter, hold: bool) -> Deferred[int]:
        return succeed(admin.set_hold(self.db, selection, hold))

    def retry(self, selection: QueueFilter) -> Deferred[int]:
        return succeed(admin.retry(self.db, selection))

    def drop(self, selection: QueueFilter) -> Deferred[int]:
        self._forget_all_fresh()  # whichever were dropped (an admin action: rare)
        return succeed(admin.drop(self.db, self.msg_dir, selection))

    def fail(self, selection: QueueFilter, reply: str) -> Deferred[int]:
        ids = admin.fail(self.db, selection, reply)  # committed (durable with the next commit, as admin changes are)
        if ids:
            for hook in list(self.on_finish_wanted):
                hook()
        return succeed(len(ids))

    def set_next_attempt(self, selection: QueueFilter, when: float) -> Deferred[int]:
        return succeed(admin.set_next_attempt(self.db, selection, when))

    def set_requiretls(self, selection: QueueFilter, required: bool) -> Deferred[int]:
        return succeed(admin.set_requiretls(self.db, selection, required))

    def set_transport(self, selection: QueueFilter, transport: str | None) -> Deferred[int]:
        return succeed(admin.set_transport(self.db, selection, transport, self.routes))

    def purge_retired(self, selection: QueueFilter | None, now: float) -> Deferred[int]:
        return succeed(admin.purge_retired(self.db, self.msg_dir, now, selection))

    def counts(self) -> Deferred[QueueCounts]:
        return succeed(admin.counts(self.db))

    def add_hold_rule(self, rule: HoldRule) -> Deferred[HoldRule]:
        rule_id = admin.add_hold_rule(self.db, rule)
        return succeed(next(r for r in admin.hold_rules(self.db) if r.id == rule_id))

    def remove_hold_rule(self, rule_id: int) -> Deferred[bool]:
        return succeed(admin.remove_hold_rule(self.db, rule_id))

    def hold_rules(self) -> Deferred[list[HoldRule]]:
        return succeed(admin.hold_rules(self.db))

    def events_after(self, seq: int, limit: int) -> Deferred[list[QueueEvent]]:
        return succeed(outbox.after(self.db, seq, limit))

    def acknowledge_events(self, upto: int) -> Deferred[int]:
        return succeed(outbox.acknowledge(self.db, upto))

    def record_event(self, event: QueueEvent) -> Deferred[int]:
        return ensureDeferred(self._record_event(event))

    async def _record_event(self, event: QueueEvent) -> int:
        seq = outbox.record_event(self.db, event)
        await self.commit()
        return seq

    # --- suppression lists (mailsrv/queue/suppression.py) ---------------------------------------

    def may_suppress(self, account: str) -> bool:
        """Whether `account` may have suppression entries or counted failures; False means it
        has none, so the runner skips its lookups (one SELECT and one DELETE per delivery)."""
        return account in self._suppressing

    def suppressing(self, account: str) -> None:
        """Notes that `account` is about to get a suppression entry or a counted failure (call
        before writing either; the set only grows while the queue is open)."""
        self._suppressing.add(account)

    def suppressions(self, account: str) -> Deferred[list[Suppression]]:
        return succeed(suppression.listing(self.db, account))

    def suppression(self, account: str, base_address: str) -> Deferred[Suppression | None]:
        return succeed(suppression.find(self.db, account, base_address))

    def add_suppression(
        self, account: str, base_address: str, original_address: str, manual: bool, reason: str
    ) -> Deferred[tuple[Suppression, bool]]:
        return ensureDeferred(self._add_suppression(account, base_address, original_address, manual, reason))

    async def _add_suppression(
        self, account: str, base_address: str, original_address: str, manual: bool, reason: str
    ) -> tuple[Suppression, bool]:
        self.suppressing(account)
        result = suppression.add(self.db, account, base_address, original_address, manual, reason)
        await self.commit()
        return result

    def remove_suppression(self, account: str, base_address: str) -> Deferred[bool]:
        return ensureDeferred(self._remove_suppression(account, base_address))

    async def _remove_suppression(self, account: str, base_address: str) -> bool:
        removed = suppression.remove(self.db, account, base_address)
        await self.commit()
        return removed

    # --- send later -------------------------------------------------------------------------

    # Scheduled: queued, no recipient attempted, due later. An index on account narrows it.
    _SCHEDULED = (
        "m.account = ? AND m.retired_until IS NULL AND m.next_attempt > ?"
        " AND NOT EXISTS (SELECT 1 FROM recipient r WHERE r.message_id = m.id AND r.attempts > 0)"
    )

    def scheduled(self, account: str, now: float, limit: int = 1000) -> Deferred[list[ScheduledMessage]]:
        rows = self.db.execute(
            "SELECT m.id, m.next_attempt, m.subject, m.header_message_id, m.requiretls, m.size FROM message m"
            f" WHERE {self._SCHEDULED} ORDER BY m.next_attempt, m.id LIMIT ?",
            (account, now, max(1, min(limit, 1000))),
        ).fetchall()
        out = []
        for mid, release, subject, header_id, requiretls, size in rows:
            rcpts = self.db.execute("SELECT address FROM recipient WHERE message_id = ? ORDER BY id", (int(mid),))
            scheduled = ScheduledMessage(
                id=int(mid),
                release_at=float(release),
                recipients=tuple(str(r[0]) for r in rcpts),
                subject=str(subject),
                header_message_id=str(header_id),
                requiretls=bool(requiretls),
                size=int(size),
            )
            out.append(scheduled)
        return succeed(out)

    def reschedule(self, message_id: int, account: str, when: float) -> Deferred[bool]:
        return ensureDeferred(self._reschedule(message_id, account, when))

    async def _reschedule(self, message_id: int, account: str, when: float) -> bool:
        found = self.db.execute(
            f"SELECT 1 FROM message m WHERE m.id = ? AND {self._SCHEDULED}", (message_id, account, time.time())
        ).fetchone()
        if found is None:
            return False
        # created is where the retry period starts: a released message gets its full period.
        self.db.execute("UPDATE message SET created = ? WHERE id = ?", (when, message_id))
        self.db.execute(
            "UPDATE recipient SET next_attempt = ? WHERE message_id = ? AND status = 'queued'", (when, message_id)
        )
        await self.commit()
        self._due_later(when)
        return True

    def _due_later(self, when: float) -> None:
        for hook in list(self.on_due_later):
            try:
                hook(when)
            except Exception:
                log.failure("on_due_later hook failed")

    def next_due_after(self, now: float) -> float | None:
        """The earliest next attempt of a queued recipient after `now` (the runner's wake-up)."""
        row = self.db.execute(
            "SELECT MIN(next_attempt) FROM recipient WHERE status = 'queued' AND next_attempt > ?", (now,)
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def cancel_scheduled(self, message_id: int, account: str) -> Deferred[bool]:
        return ensureDeferred(self._cancel_scheduled(message_id, account))

    async def _cancel_scheduled(self, message_id: int, account: str) -> bool:
        # Checked and removed in one reactor turn: the runner cannot start it in between.
        now = time.time()
        found = self.db.execute(
            f"SELECT 1 FROM message m WHERE m.id = ? AND {self._SCHEDULED}", (message_id, account, now)
        ).fetchone()
        if found is None:
            return False
        rcpts = self.db.execute("SELECT address FROM recipient WHERE message_id = ?", (message_id,)).fetchall()
        for (address,) in rcpts:
            outbox.record(self.db, now, "canceled", message_id, str(address), reply="canceled by the sender")
        admin.delete_rows(self.db, [message_id])
        await self.commit()
        await self.drop_content(message_id)
        return True

    def find_by_fromid(self, account: str, fromid: str) -> Deferred[int | None]:
        row = self.db.execute(
            "SELECT id FROM message WHERE fromid = ? AND fromid != '' AND account = ?", (fromid, account)
        ).fetchone()
        return succeed(int(row[0]) if row else None)

    def find_by_message_id(self, account: str, header_message_id: str) -> Deferred[int | None]:
        row = self.db.execute(
            "SELECT MAX(id) FROM message WHERE header_message_id = ? AND header_message_id != '' AND account = ?",
            (header_message_id, account),
        ).fetchone()
        return succeed(int(row[0]) if row and row[0] is not None else None)

    def enqueue(
        self,
        mail_from: Address | None,
        recipients: Sequence[Address],
        data: bytes,
        account: str,
        smtputf8: bool,
        requiretls: bool = False,
        dsn: MessageDSN = NO_MESSAGE_DSN,
        recipient_dsn: Sequence[RecipientDSN] = (),
        meta: MessageMeta = NO_META,
    ) -> Deferred[int]:
        """Durably queues `data` for `recipients`; fires with the queue id. `recipient_dsn`,
        when given, is parallel to `recipients` (RFC 3461 NOTIFY/ORCPT)."""
        if recipient_dsn and len(recipient_dsn) != len(recipients):
            raise ValueError("recipient_dsn must be parallel to recipients")
        return ensureDeferred(
            self._enqueue(mail_from, recipients, data, account, smtputf8, requiretls, dsn, recipient_dsn, meta)
        )

    async def _enqueue(
        self,
        mail_from: Address | None,
        recipients: Sequence[Address],
        data: bytes,
        account: str,
        smtputf8: bool,
        requiretls: bool,
        dsn: MessageDSN,
        recipient_dsn: Sequence[RecipientDSN],
        meta: MessageMeta = NO_META,
    ) -> int:
        now = time.time()
        first_attempt = max(now, meta.release_at)  # FutureRelease: due then, not now
        message_id = next(self._ids)
        # File first, rows after: a crash in between leaves only an orphan file, which
        # start-up removes; a row never points at a missing file.
        await self._write_durably(message_id, data)
        self.db.execute(
            "INSERT INTO message (id, mail_from, account, size, smtputf8, requiretls, created, ret, envid,"
            " fromid, header_message_id, subject, extra, next_attempt, sent_copy)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message_id,
                str(mail_from) if mail_from else "",
                account,
                len(data),
                int(smtputf8),
                int(requiretls),
                first_attempt,  # retries expire counted from here: a released message gets its full period
                dsn.ret,
                dsn.envid,
                meta.fromid,
                meta.header_message_id[:1000],
                meta.subject[:1000],
                outbox.encode_extra(meta.extra),
                first_attempt,
                int(meta.sent_copy),
            ),
        )
        routes = self.routes
        sender = str(mail_from) if mail_from else ""
        local = set(meta.local_recipients)
        for i, rcpt in enumerate(recipients):
            rdsn = recipient_dsn[i] if recipient_dsn else NO_RECIPIENT_DSN
            domain = rcpt.domain.ascii
            fixed = str(rcpt) in local  # send later to this server: delivered here, never routed
            transport = (
                LOCAL_TRANSPORT if fixed else DIRECT if routes is None else routes.choose(account, sender, domain)
            )
            self.db.execute(
                "INSERT INTO recipient (message_id, address, domain, next_attempt, notify, orcpt, transport,"
                " transport_fixed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (message_id, str(rcpt), domain, first_attempt, rdsn.store_notify(), rdsn.orcpt, transport, int(fixed)),
            )
        self.db.execute(
            "INSERT INTO sequence (name, value) VALUES ('message', ?)"
            " ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)",
            (message_id,),
        )
        # Admin hold rules (mailsrv.queue.admin) mark matching new messages held, in this transaction.
        apply_hold_rules(
            self.db,
            message_id,
            str(mail_from) if mail_from else "",
            [str(r) for r in recipients],
            account,
            self._current_hold_rules(),
        )
        await self.commit()
        if first_attempt > now:
            self._due_later(first_attempt)  # send later: not kept in memory until its time
        else:
            self._remember_fresh(message_id, data)
        # What the hooks may ask without a query (`just_queued`): this message's destinations.
        self._just_queued = (message_id, frozenset(r.domain.ascii for r in recipients))
        try:
            for hook in list(self.on_enqueued):
                try:
                    hook(message_id)
                except Exception:
                    # The message is queued; a failing hook must not turn that into an error.
                    log.failure("on_enqueued hook failed")
        finally:
            self._just_queued = None
        return message_id

    def just_queued(self, message_id: int) -> frozenset[str] | None:
        """The destination domains of `message_id` while its `on_enqueued` hooks run; None
        otherwise (ask the database)."""
        if self._just_queued is not None and self._just_queued[0] == message_id:
            return self._just_queued[1]
        return None

    def _current_hold_rules(self) -> list[HoldRule]:
        """The hold rules (their table exists: made at open; one statement per enqueue)."""
        return admin.hold_rules(self.db, table_exists=True)

    def _write_durably(self, message_id: int, data: bytes) -> Deferred[None]:
        """Writes and fsyncs the content file and its directory entry in the fsync pool."""
        d: Deferred[None] = Deferred()
        self._files_waiting.append((message_id, data, d))
        if not self._file_batch_running:
            self._file_batch()
        return d

    def _file_batch(self) -> None:
        """One fsync-pool job for every content file waiting to be written or unlinked; those
        asked for while it runs go together in the next (group commit, like the index's): one
        pool round trip and one directory fsync for many messages under load. The unlinks of
        finished messages ride along (same directory, no fsync of their own)."""
        writes, self._files_waiting = self._files_waiting, []
        unlinks, self._unlink_waiting = self._unlink_waiting, []
        self._file_batch_running = True

        def run() -> list[BaseException | None]:
            outcomes: list[BaseException | None] = []
            for message_id, _ in unlinks:
                try:
                    self.path(message_id).unlink(missing_ok=True)
                    outcomes.append(None)
                except OSError as e:
                    outcomes.append(e)
            for message_id, data, _ in writes:
                try:
                    self._write_file(message_id, data)
                    outcomes.append(None)
                except OSError as e:
                    outcomes.append(e)  # this message fails; the others of the batch may not
            if writes:
                fsync_dir(self.msg_dir)  # every rename of the batch; failing, it fails them all
            return outcomes

        def done(result: list[BaseException | None] | Failure) -> None:
            self._file_batch_running = False
            waiting = [d for _, d in unlinks] + [d for _, _, d in writes]
            for i, d in enumerate(waiting):
                if isinstance(result, Failure):
                    d.errback(result)  # the directory fsync failed: nothing of the batch is sure
                elif (error := result[i]) is not None:
                    d.errback(error)
                else:
                    d.callback(None)
            if self._files_waiting or self._unlink_waiting:
                self._file_batch()

        self._run_fsync(run).addBoth(done)

    def _write_file(self, message_id: int, data: bytes) -> None:
        """The content, fsynced, under its final name (the caller fsyncs the directory)."""
        final = self.path(message_id)
        tmp = final.with_name(f".{final.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)

    def recipients(self) -> list[QueuedRecipient]:
        rows = self.db.execute(
            "SELECT message_id, address, domain, status, attempts FROM recipient ORDER BY message_id, id"
        ).fetchall()
        return [QueuedRecipient(int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4])) for r in rows]
