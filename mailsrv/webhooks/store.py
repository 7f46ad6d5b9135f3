"""The webhook queue and the accounts' webhook settings, in `data/webhooks.db` (SQLite, WAL,
mode 0600: it holds Authorization header values and signing secrets).

Tables:
- `settings`: per account the outgoing URL, Authorization value and event filter, the incoming
  URL and Authorization value, the signing secret (`whsec_...`, "" until first rotated) and
  how long finished webhooks stay in the retired list.
- `hook`: one row per webhook to call. Queued while `retired_until` is NULL; finished ones
  (delivered, failed after the last attempt, dropped by an admin, superseded, or whose URL
  was removed) are retired: kept with their outcome until `retired_until`, then forgotten.
- `state`: the outbox cursor: the last queue event turned into webhooks (or skipped).

Invariants:
- `add` inserts the webhooks made from a batch of outbox events and moves the cursor in one
  transaction, durable (WAL fsynced, `store.walsync.IndexSync`) before it returns; the
  caller acknowledges the outbox only after, so a crash anywhere repeats no event and loses
  none.
- Supersede: an outgoing webhook about (queue message, recipient) that is still queued and
  not being sent is retired as "superseded" when a newer one about the same recipient of
  the same message is added; the newest event is what the receiver gets.
- Statements run on the reactor thread (small, indexed); only fsyncs go to a pool thread.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec
from twisted.internet import threads
from twisted.internet.defer import Deferred, ensureDeferred

from mailsrv.pools import Runner
from mailsrv.store.walsync import IndexSync
from mailsrv.webhooks import signing

MAX_PAGE = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (
    account TEXT PRIMARY KEY,
    outgoing_url TEXT NOT NULL DEFAULT '',
    outgoing_authorization TEXT NOT NULL DEFAULT '',
    outgoing_events TEXT NOT NULL DEFAULT '',   -- comma-separated; '' for every event
    incoming_url TEXT NOT NULL DEFAULT '',
    incoming_authorization TEXT NOT NULL DEFAULT '',
    secret TEXT NOT NULL DEFAULT '',
    retired_keep INTEGER NOT NULL DEFAULT 0      -- seconds finished webhooks stay listed
);
CREATE TABLE IF NOT EXISTS hook (
    id INTEGER PRIMARY KEY AUTOINCREMENT,       -- X-Mox-Webhook-ID and webhook-id; never reused
    account TEXT NOT NULL,
    kind TEXT NOT NULL,                         -- 'outgoing' or 'incoming'
    event TEXT NOT NULL,                        -- the outgoing event, or 'incoming'
    queue_id INTEGER NOT NULL DEFAULT 0,        -- the queued message it is about (outgoing)
    recipient TEXT NOT NULL DEFAULT '',
    payload BLOB NOT NULL,                      -- the JSON body
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_result TEXT NOT NULL DEFAULT '',       -- e.g. "HTTP 500", "connection refused"
    outcome TEXT NOT NULL DEFAULT '',           -- '' while queued; delivered, failed, dropped, superseded, disabled
    retired_until REAL                          -- NULL: queued
);
CREATE INDEX IF NOT EXISTS hook_due ON hook (next_attempt) WHERE retired_until IS NULL;
CREATE INDEX IF NOT EXISTS hook_about ON hook (queue_id, recipient) WHERE retired_until IS NULL AND queue_id != 0;
CREATE INDEX IF NOT EXISTS hook_retired ON hook (retired_until) WHERE retired_until IS NOT NULL;
CREATE TABLE IF NOT EXISTS state (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


class Settings(msgspec.Struct, kw_only=True):
    """An account's webhook settings as the account and the admin see them (no secret)."""

    account: str
    outgoing_url: str = ""
    outgoing_authorization: str = ""
    outgoing_events: list[str] = []  # empty: every event
    incoming_url: str = ""
    incoming_authorization: str = ""
    has_secret: bool = False
    retired_keep: int = 0


class Hook(msgspec.Struct, kw_only=True):
    """One webhook, queued or retired."""

    id: int
    account: str
    kind: str
    event: str
    queue_id: int
    recipient: str
    created: float
    attempts: int
    next_attempt: float
    last_result: str
    outcome: str
    retired_until: float | None
    payload: str  # the JSON body (in listings its first LISTED_PAYLOAD octets)


class NewHook(msgspec.Struct, kw_only=True):
    account: str
    kind: str
    event: str
    payload: bytes
    queue_id: int = 0
    recipient: str = ""


class HookPage(msgspec.Struct, kw_only=True):
    hooks: list[Hook]
    next: int | None = None  # `after` for the next page; None: this was the last


_HOOK_COLUMNS = (
    "id, account, kind, event, queue_id, recipient, created, attempts, next_attempt, last_result, outcome,"
    " retired_until, payload"
)
# Listings show the start of each body: incoming ones can be megabytes, and a page has up to MAX_PAGE.
LISTED_PAYLOAD = 4096
_LISTED_COLUMNS = _HOOK_COLUMNS.replace(" payload", f" substr(payload, 1, {LISTED_PAYLOAD})")


def _hook(r: Sequence[object]) -> Hook:
    payload = r[12]
    return Hook(
        id=int(r[0]),  # type: ignore[call-overload]
        account=str(r[1]),
        kind=str(r[2]),
        event=str(r[3]),
        queue_id=int(r[4]),  # type: ignore[call-overload]
        recipient=str(r[5]),
        created=float(r[6]),  # type: ignore[arg-type]
        attempts=int(r[7]),  # type: ignore[call-overload]
        next_attempt=float(r[8]),  # type: ignore[arg-type]
        last_result=str(r[9]),
        outcome=str(r[10]),
        retired_until=None if r[11] is None else float(r[11]),  # type: ignore[arg-type]
        payload=bytes(payload).decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload),
    )


class WebhookStore:
    def __init__(self, data_dir: Path, run_fsync: Runner | None = None) -> None:
        path = Path(data_dir) / "webhooks.db"
        fresh = not path.exists()
        if fresh:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # durability through IndexSync, as the queue
        self.db.executescript(_SCHEMA)
        self.db.commit()
        self._sync = IndexSync(path, run_fsync or threads.deferToThread)
        self._sync.sync_now()
        self._in_flight: set[int] = set()  # ids being sent: not superseded under the sender
        self._refresh()

    def close(self) -> None:
        self.db.close()

    def commit(self) -> Deferred[None]:
        self.db.commit()
        return self._sync.durable()

    # -- settings ------------------------------------------------------------------------------

    def _refresh(self) -> None:
        """The in-memory copy of every account's settings: read for every delivery, event and
        call, written only through `_set`."""
        rows = self.db.execute(
            "SELECT account, outgoing_url, outgoing_authorization, outgoing_events, incoming_url,"
            " incoming_authorization, secret, retired_keep FROM settings"
        ).fetchall()
        self._settings: dict[str, Settings] = {}
        self._secrets: dict[str, str] = {}
        self._outgoing: dict[str, frozenset[str]] = {}
        self._incoming: set[str] = set()
        for account, out_url, out_auth, events, in_url, in_auth, secret, keep in rows:
            name = str(account)
            settings = Settings(
                account=name,
                outgoing_url=str(out_url),
                outgoing_authorization=str(out_auth),
                outgoing_events=[e for e in str(events).split(",") if e],
                incoming_url=str(in_url),
                incoming_authorization=str(in_auth),
                has_secret=bool(secret),
                retired_keep=int(keep),
            )
            self._settings[name] = settings
            self._secrets[name] = str(secret)
            if settings.outgoing_url:
                self._outgoing[name] = frozenset(settings.outgoing_events)
            if settings.incoming_url:
                self._incoming.add(name)

    def wants_outgoing(self, account: str, event: str) -> bool:
        events = self._outgoing.get(account)
        return events is not None and (not events or event in events)

    def has_outgoing(self, account: str) -> bool:
        return account in self._outgoing

    def has_incoming(self, account: str) -> bool:
        return account in self._incoming

    def wants_deliveries(self, account: str) -> bool:
        """Whether deliveries to the account may raise webhooks (incoming, or DSNs for outgoing)."""
        return account in self._incoming or account in self._outgoing

    def settings(self, account: str) -> Settings:
        found = self._settings.get(account)
        return msgspec.structs.replace(found) if found is not None else Settings(account=account)

    def secret(self, account: str) -> str:
        return self._secrets.get(account, "")

    def _set(self, account: str, **values: object) -> Deferred[None]:
        self.db.execute("INSERT OR IGNORE INTO settings (account) VALUES (?)", (account,))
        assignments = ", ".join(f"{name} = ?" for name in values)
        self.db.execute(f"UPDATE settings SET {assignments} WHERE account = ?", (*values.values(), account))
        d = self.commit()
        self._refresh()
        return d

    def save_outgoing(self, account: str, url: str, authorization: str, events: Iterable[str]) -> Deferred[None]:
        return self._set(
            account, outgoing_url=url, outgoing_authorization=authorization, outgoing_events=",".join(events)
        )

    def save_incoming(self, account: str, url: str, authorization: str) -> Deferred[None]:
        return self._set(account, incoming_url=url, incoming_authorization=authorization)

    def set_retired_keep(self, account: str, seconds: int) -> Deferred[None]:
        return self._set(account, retired_keep=seconds)

    def rotate_secret(self, account: str) -> Deferred[str]:
        secret = signing.new_secret()
        return self._set(account, secret=secret).addCallback(lambda _: secret)

    def forget_account(self, account: str) -> Deferred[None]:
        self.db.execute("DELETE FROM settings WHERE account = ?", (account,))
        d = self.commit()
        self._refresh()
        return d

    # -- the queue -----------------------------------------------------------------------------

    def cursor(self) -> int:
        row = self.db.execute("SELECT value FROM state WHERE name = 'outbox'").fetchone()
        return int(row[0]) if row is not None else 0

    def add(self, hooks: Sequence[NewHook], cursor: int, now: float | None = None) -> Deferred[list[int]]:
        """Queues `hooks` (due now), supersedes older queued ones about the same recipient of the
        same message, and moves the outbox cursor to `cursor`, in one durable transaction."""
        return ensureDeferred(self._add(hooks, cursor, time.time() if now is None else now))

    async def _add(self, hooks: Sequence[NewHook], cursor: int, now: float) -> list[int]:
        ids = []
        for h in hooks:
            if h.queue_id:
                older = self.db.execute(
                    "SELECT id FROM hook WHERE queue_id = ? AND recipient = ? AND account = ? AND kind = 'outgoing'"
                    " AND retired_until IS NULL",
                    (h.queue_id, h.recipient, h.account),
                ).fetchall()
                for (old,) in older:
                    if int(old) not in self._in_flight:
                        self._retire(int(old), "superseded", "superseded by a newer event", now)
            cur = self.db.execute(
                "INSERT INTO hook (account, kind, event, queue_id, recipient, payload, created, next_attempt)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (h.account, h.kind, h.event, h.queue_id, h.recipient, h.payload, now, now),
            )
            ids.append(int(cur.lastrowid or 0))
        self.db.execute(
            "INSERT INTO state (name, value) VALUES ('outbox', ?)"
            " ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)",
            (cursor,),
        )
        await self.commit()
        return ids

    def _retire(self, hook_id: int, outcome: str, result: str, now: float, account: str | None = None) -> None:
        if account is None:
            row = self.db.execute("SELECT account FROM hook WHERE id = ?", (hook_id,)).fetchone()
            account = str(row[0]) if row is not None else ""
        found = self._settings.get(account)
        keep = found.retired_keep if found is not None else 0
        if keep > 0:
            self.db.execute(
                "UPDATE hook SET outcome = ?, last_result = ?, retired_until = ? WHERE id = ?",
                (outcome, result[:1000], now + keep, hook_id),
            )
        else:
            self.db.execute("DELETE FROM hook WHERE id = ?", (hook_id,))

    def due(self, now: float, limit: int) -> list[Hook]:
        """Queued webhooks due by `now`, oldest first, not already being sent; marked in flight."""
        rows = self.db.execute(
            f"SELECT {_HOOK_COLUMNS} FROM hook WHERE retired_until IS NULL AND next_attempt <= ?"
            " ORDER BY next_attempt, id LIMIT ?",
            (now, limit + len(self._in_flight)),
        ).fetchall()
        hooks = [h for h in (_hook(r) for r in rows) if h.id not in self._in_flight][:limit]
        self._in_flight.update(h.id for h in hooks)
        return hooks

    def next_due(self) -> float | None:
        row = self.db.execute("SELECT MIN(next_attempt) FROM hook WHERE retired_until IS NULL").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def finish_attempt(
        self, hook_id: int, result: str, now: float, outcome: str = "", next_attempt: float | None = None
    ) -> Deferred[None]:
        """Records an attempt: retired with `outcome` ("delivered", "failed", "disabled"), or
        queued again for `next_attempt`. Fires once durable."""
        self._in_flight.discard(hook_id)
        row = self.db.execute(
            "UPDATE hook SET attempts = attempts + 1, last_result = ?, next_attempt = ?"
            " WHERE id = ? AND retired_until IS NULL RETURNING account",
            (result[:1000], next_attempt if next_attempt is not None else now, hook_id),
        ).fetchone()
        if row is not None and outcome:  # None: dropped while being sent
            self._retire(hook_id, outcome, result, now, str(row[0]))
        return self.commit()

    def release(self, hook_id: int) -> None:
        """Forgets that a webhook is being sent, its attempt not recorded (stopping)."""
        self._in_flight.discard(hook_id)

    # -- administration ------------------------------------------------------------------------

    def _where(self, retired: bool, account: str | None, ids: Sequence[int]) -> tuple[str, list[object]]:
        clauses = ["retired_until IS NOT NULL" if retired else "retired_until IS NULL"]
        args: list[object] = []
        if account:
            clauses.append("account = ?")
            args.append(account)
        if ids:
            clauses.append(f"id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
        return " AND ".join(clauses), args

    def page(self, retired: bool, account: str | None, after: int, limit: int) -> HookPage:
        """One page, newest first for the retired list and oldest first for the queue."""
        where, args = self._where(retired, account, ())
        if retired:
            where += " AND id < ?" if after else ""
            order = "id DESC"
        else:
            where += " AND id > ?" if after else ""
            order = "id"
        if after:
            args.append(after)
        rows = self.db.execute(
            f"SELECT {_LISTED_COLUMNS} FROM hook WHERE {where} ORDER BY {order} LIMIT ?", (*args, limit + 1)
        ).fetchall()
        hooks = [_hook(r) for r in rows[:limit]]
        return HookPage(hooks=hooks, next=hooks[-1].id if len(rows) > limit else None)

    def retry(self, account: str | None, ids: Sequence[int], now: float) -> Deferred[int]:
        """Makes matching queued webhooks due now."""
        where, args = self._where(False, account, ids)
        count = self.db.execute(f"UPDATE hook SET next_attempt = ? WHERE {where}", (now, *args)).rowcount
        return self.commit().addCallback(lambda _: int(count))

    def drop(self, account: str | None, ids: Sequence[int], now: float) -> Deferred[int]:
        """Retires matching queued webhooks as "dropped" (never sent again)."""
        where, args = self._where(False, account, ids)
        found = [int(r[0]) for r in self.db.execute(f"SELECT id FROM hook WHERE {where}", args).fetchall()]
        for hook_id in found:
            self._retire(hook_id, "dropped", "dropped by an administrator", now)
        return self.commit().addCallback(lambda _: len(found))

    def purge_expired(self, now: float) -> Deferred[int]:
        count = self.db.execute(
            "DELETE FROM hook WHERE retired_until IS NOT NULL AND retired_until <= ?", (now,)
        ).rowcount
        return self.commit().addCallback(lambda _: int(count))
