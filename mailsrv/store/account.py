"""The embedded account store: a SQLite index (WAL) plus message files.

Invariants (see also `mailsrv.store.interfaces`):
- The daemon is the only writer; all index access happens in the reactor thread through one
  connection. Commits run inline and only write the WAL (synchronous=NORMAL); every mutation
  returns a Deferred that fires once its commit is durable: `walsync.IndexSync` fsyncs the
  WAL in the fsync pool, shared by every commit made meanwhile (group commit). Message file
  writes and fsyncs run in the fsync pool too, reads and unlinks in the files pool
  (`mailsrv.pools`); the reactor and the pools are the ones the registry was given.
- A message is visible only once its file is durable *and* its row committed: appends write
  their rows in the same synchronous call that commits them (all appends whose file sync
  finished in that reactor turn share one transaction). Orphan files (written but never
  committed) and temporary files are removed when the store is opened. Files of expunged
  messages are unlinked only once the expunge is durable.
- Every mutation runs in a savepoint (`_atomic`): a failing operation undoes only its own
  statements and the next commit never persists half of it.
- One modseq per operation: every message changed by one STORE/EXPUNGE/APPEND batch gets the
  mailbox's next modseq (RFC 7162 allows equal modseqs); HIGHESTMODSEQ is the largest.
- Mailbox counters (messages, unseen, deleted, size, deleted_size) are maintained in the same
  transaction as the change, so STATUS never scans messages.
- Listeners are told of a change right after its commit, synchronously, with the caller's
  origin: what a listener is told is what any read sees from then on. The caller's Deferred
  fires later, once the change is durable: only then may a client be told it is done.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import functools
import itertools
import mmap
import os
import sqlite3
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import msgspec
from twisted.internet.defer import Deferred, ensureDeferred, fail, maybeDeferred, succeed
from twisted.logger import Logger

from mailsrv.message.parse import parse_message
from mailsrv.message.part import Part
from mailsrv.message.source import MessageSource
from mailsrv.pools import Pools, reactor_pools
from mailsrv.store import changelog
from mailsrv.store.changelog import log_change
from mailsrv.store.files import MessageFiles
from mailsrv.store.interfaces import (
    DEFAULT_MAILBOXES,
    DELIVERY_ID_DAYS,
    SYSTEM_FLAGS,
    AppendResult,
    Change,
    ChangeFeed,
    ChangeKind,
    ChangeListener,
    Changes,
    CopyResult,
    FlagMode,
    FlagResult,
    FlagsChanged,
    InvalidRequest,
    MailboxesChanged,
    MailboxExists,
    MailboxInfo,
    MailboxNameInvalid,
    MailboxNotFound,
    MessageAdded,
    MessageInfo,
    MessagePage,
    MessagesExpunged,
    MessageSummary,
    NewMessage,
    OverQuota,
    SortKey,
    StoreError,
    Summary,
)
from mailsrv.store.schema import SCHEMA_VERSION, open_index, set_version
from mailsrv.store.summary import sort_from, sort_subject, summarize
from mailsrv.store.thread import assign_thread
from mailsrv.store.unavailable import as_unavailable, failure_as_unavailable
from mailsrv.store.walsync import IndexSync

log = Logger()
_T = TypeVar("_T")

_SYSTEM_BY_LOWER = {f.lower(): f for f in SYSTEM_FLAGS}
_MSG_COLUMNS = "uid, modseq, flags, size, internal_date, tz_offset, id"


def normalize_mailbox_name(name: str) -> str:
    """NFC, "INBOX" case-insensitively, no empty hierarchy levels (RFC 9051 §5.1)."""
    name = unicodedata.normalize("NFC", name)
    if name.upper() == "INBOX":
        return "INBOX"
    if name.upper().startswith("INBOX/"):
        name = "INBOX" + name[5:]
    return name


def _check_name(name: str) -> None:
    if not name or name.startswith("/") or name.endswith("/") or "//" in name:
        raise MailboxNameInvalid(f"invalid mailbox name {name!r}")
    if any(ord(c) < 0x20 or c == "\x7f" for c in name) or len(name.encode()) > 1000:
        raise MailboxNameInvalid("mailbox name has control characters or is too long")
    for bad in ("*", "%"):
        if bad in name:
            raise MailboxNameInvalid(f"mailbox name may not contain {bad!r}")


def canonical_flag(flag: str) -> str:
    if flag.startswith("\\"):
        return _SYSTEM_BY_LOWER.get(flag.lower(), flag)
    return flag


def merge_flags(current: frozenset[str], mode: str, given: frozenset[str]) -> frozenset[str]:
    """The flags after a STORE. Keywords compare case-insensitively and keep the spelling
    the message already has (RFC 9051 §2.3.2: flags are case-insensitive)."""
    have = {f.lower(): f for f in current}
    if mode == FlagMode.REPLACE:
        return frozenset(have.get(f.lower(), f) for f in given)
    if mode == FlagMode.ADD:
        for f in given:
            have.setdefault(f.lower(), f)
    else:
        for f in given:
            have.pop(f.lower(), None)
    return frozenset(have.values())


def _given_flags(flags: Iterable[str]) -> frozenset[str]:
    """Canonical system flags, keywords deduplicated case-insensitively (first spelling
    wins), no \\Recent."""
    seen: dict[str, str] = {}
    for f in flags:
        if f.lower() != "\\recent":
            seen.setdefault(f.lower(), canonical_flag(f))
    return frozenset(seen.values())


def _flags_text(flags: Iterable[str]) -> str:
    return " ".join(sorted(set(flags)))


@functools.lru_cache(maxsize=4096)
def _flags_set(text: str) -> frozenset[str]:
    return frozenset(text.split()) if text else frozenset()


@functools.lru_cache(maxsize=64)
def _zone(minutes: int) -> datetime.timezone:
    return datetime.timezone(datetime.timedelta(minutes=minutes))


def _datetime(timestamp: int, tz_offset: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, _zone(tz_offset))


class _AlreadyDelivered(Exception):
    """An append's delivery id was stored by another append meanwhile (not an error)."""

    def __init__(self, first: AppendResult) -> None:
        self.first = first


class _Snapshot:
    """One mailbox's messages (by UID, ascending) as of `modseq`."""

    def __init__(self, uidvalidity: int, modseq: int, messages: dict[int, MessageInfo]) -> None:
        self.uidvalidity = uidvalidity
        self.modseq = modseq
        self.messages = messages

    def catch_up(self, changes: Changes) -> bool:
        """Applies the changes since `modseq`; False (snapshot unusable) when a changed row
        is neither known nor above every known UID, which cannot happen while UIDs only grow."""
        for uid in changes.vanished:
            self.messages.pop(uid, None)
        last = next(reversed(self.messages), 0)
        for m in changes.changed:  # ascending UIDs
            if m.uid in self.messages:
                self.messages[m.uid] = m
            elif m.uid > last:
                self.messages[m.uid] = m
                last = m.uid
            else:
                return False
        return True


class SQLiteAccountStore:
    """`AccountStore` on SQLite + files. Build it with `SQLiteStoreRegistry.open`."""

    def __init__(
        self,
        account: str,
        root: Path,
        quota_limit: Callable[[], int | None],
        reactor: Any = None,
        pools: Pools | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self._account = account
        self.root = root
        self._quota_limit = quota_limit
        self._reactor = reactor
        self._pools = pools or reactor_pools(reactor)
        root.mkdir(parents=True, exist_ok=True)
        self.db, version = open_index(root / "index.db")
        self.index_sync = IndexSync(root / "index.db", self._pools.fsync)
        self.files = MessageFiles(root / "msg", reactor, self._pools.fsync, self._pools.files)
        self._listeners: list[ChangeListener] = []
        self._tree_cache: OrderedDict[int, Part] = OrderedDict()
        self._snapshots: OrderedDict[int, _Snapshot] = OrderedDict()
        row = self.db.execute("SELECT COALESCE(MAX(id), 0) FROM message").fetchone()
        self._ids = itertools.count(int(row[0]) + 1)
        # Bytes promised to appends whose files are being written, for the quota check.
        self._reserved = 0
        # Appends whose rows wait for the shared commit of this reactor turn (group commit).
        self._pending_rows: list[tuple[Callable[[], Any], Deferred[Any]]] = []
        self._closed = False
        self._appending: set[Deferred[Any]] = set()
        # IMAP4rev1 \Recent: per mailbox, the highest UID already given to a session as recent.
        self._recent_floor: dict[int, int] = {}
        self._ensure_default_mailboxes()
        self._trim_delivered()
        if version < SCHEMA_VERSION:
            started = time.monotonic()
            log.info(
                "migrating the index of {account} from version {old} to {new}",
                account=account,
                old=version,
                new=SCHEMA_VERSION,
            )
            self._fill_summaries()
            set_version(self.db)
            log.info(
                "index of {account} migrated in {seconds:.1f}s", account=account, seconds=time.monotonic() - started
            )
        # Whatever open and migration committed is durable before the first request.
        self.index_sync.sync_now()
        known = {int(r[0]) for r in self.db.execute("SELECT id FROM message")}
        removed = self.files.remove_orphans(known)
        if removed:
            log.info("removed {n} orphan message files of {account}", n=removed, account=account)

    @property
    def account(self) -> str:
        return self._account

    def close(self) -> None:
        """Commits the rows of appends whose files are already durable, then closes the
        index. Appends still writing their files fail with StoreError afterwards (their
        files are orphans that the next open removes)."""
        if self._pending_rows:
            self._commit_now()
        self._closed = True
        self.db.close()  # the last connection's close checkpoints the WAL into the database, synced

    @contextlib.contextmanager
    def _atomic(self) -> Iterator[None]:
        """One operation's statements, undone together if it fails. A savepoint, not a
        rollback: rows of appends waiting for their group commit share the open transaction
        and must survive another operation's failure."""
        if not self.db.in_transaction:
            self.db.execute("BEGIN")
        self.db.execute("SAVEPOINT op")
        try:
            yield
        except BaseException as e:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK TO op")
                self.db.execute("RELEASE op")
            converted = as_unavailable(e, "write the index")
            if converted is e:
                raise
            raise converted from e
        self.db.execute("RELEASE op")

    def _ensure_default_mailboxes(self) -> None:
        if self.db.execute("SELECT COUNT(*) FROM mailbox").fetchone()[0]:
            return
        for name, special_use in DEFAULT_MAILBOXES:
            self._insert_mailbox(name, special_use, subscribed=True)
        self.db.commit()

    # --- Notification ------------------------------------------------------------------
    def add_listener(self, listener: ChangeListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def _notify(self, changes: Iterable[Change], origin: object | None) -> None:
        for change in changes:
            if isinstance(change, MessageAdded) and change.mailbox_id not in self._recent_floor:
                if self._stored_floor(change.mailbox_id) is None:
                    self._set_recent_floor(change.mailbox_id, change.message.uid - 1)
            elif isinstance(change, MailboxesChanged) and self._recent_floor:
                live = self._live_mailbox_ids()  # a deleted mailbox's id may be reused
                self._recent_floor = {k: v for k, v in self._recent_floor.items() if k in live}
            for listener in list(self._listeners):
                try:
                    listener(change, origin)
                except Exception:
                    log.failure("store change listener failed")

    def _live_mailbox_ids(self) -> set[int]:
        return {int(r[0]) for r in self.db.execute("SELECT id FROM mailbox")}

    # --- IMAP4rev1 \Recent ------------------------------------------------------------------
    def claim_recent(self, mailbox_id: int, up_to_uid: int, claim: bool = True) -> int:
        """RFC 3501 §2.3.2: a message is recent for exactly one session, the first to be told
        of it; one that arrived while no session had its mailbox selected is recent for the
        next one that selects it. Returns the highest UID of the mailbox already given out
        as recent: the caller's recent messages are those above it, up to `up_to_uid`, which
        it claims unless `claim` is False (EXAMINE must not take \\Recent away, §6.3.2).
        Kept in the mailbox row too (issue 11), so a message that arrived before a restart and
        was not given to any session is recent for the first session after it. A claim is
        committed at once but made durable by the next durable commit: after a crash one
        may be given out again, which only costs a session a \\Recent it should not show."""
        floor = self._recent_floor.get(mailbox_id)
        if floor is None:
            floor = self._stored_floor(mailbox_id)
            if floor is None:
                # An index from before the floor was stored: nothing before now is recent.
                floor = self.mailbox_by_id(mailbox_id).uidnext - 1
                self._set_recent_floor(mailbox_id, floor)
        if claim and up_to_uid > floor:
            self._set_recent_floor(mailbox_id, up_to_uid)
        return floor

    def _stored_floor(self, mailbox_id: int) -> int | None:
        """The stored recent floor of the mailbox (also cached), None when not stored yet."""
        row = self.db.execute("SELECT recent_floor FROM mailbox WHERE id = ?", (mailbox_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        self._recent_floor[mailbox_id] = int(row[0])
        return int(row[0])

    def _set_recent_floor(self, mailbox_id: int, floor: int) -> None:
        self._recent_floor[mailbox_id] = floor
        if self._closed:
            return
        with self._atomic():
            self.db.execute("UPDATE mailbox SET recent_floor = ? WHERE id = ?", (floor, mailbox_id))
        self.db.commit()

    # --- Mailboxes -----------------------------------------------------------------------
    _MB_COLUMNS = (
        "id, name, special_use, uidvalidity, uidnext, highest_modseq, messages, unseen, deleted, size, deleted_size"
    )

    def _mailbox_row(self, row: Any) -> MailboxInfo:
        name = str(row[1])
        subscribed = self.db.execute("SELECT 1 FROM subscription WHERE name = ?", (name,)).fetchone() is not None
        return MailboxInfo(
            id=int(row[0]),
            name=name,
            special_use=row[2],
            uidvalidity=int(row[3]),
            uidnext=int(row[4]),
            highest_modseq=int(row[5]),
            messages=int(row[6]),
            unseen=int(row[7]),
            deleted=int(row[8]),
            size=int(row[9]),
            deleted_size=int(row[10]),
            subscribed=subscribed,
        )

    def mailboxes(self) -> list[MailboxInfo]:
        rows = self.db.execute(f"SELECT {self._MB_COLUMNS} FROM mailbox ORDER BY name").fetchall()
        return [self._mailbox_row(r) for r in rows]

    def mailbox(self, name: str) -> MailboxInfo:
        name = normalize_mailbox_name(name)
        row = self.db.execute(f"SELECT {self._MB_COLUMNS} FROM mailbox WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise MailboxNotFound(f"no such mailbox: {name}")
        return self._mailbox_row(row)

    def mailbox_by_id(self, mailbox_id: int) -> MailboxInfo:
        row = self.db.execute(f"SELECT {self._MB_COLUMNS} FROM mailbox WHERE id = ?", (mailbox_id,)).fetchone()
        if row is None:
            raise MailboxNotFound("mailbox no longer exists")
        return self._mailbox_row(row)

    def _new_uidvalidity(self) -> int:
        # Unique per account and increasing, even for a mailbox deleted and recreated within
        # the same second (RFC 9051 §2.3.1.1).
        row = self.db.execute("SELECT value FROM meta WHERE key = 'last_uidvalidity'").fetchone()
        last = int(row[0]) if row else 0
        value = max(last + 1, int(time.time()) & 0x7FFFFFFF)
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_uidvalidity', ?)", (value,))
        return value

    def _insert_mailbox(self, name: str, special_use: str | None, subscribed: bool = False) -> int:
        # A new mailbox has given out nothing as recent: recent_floor 0.
        cur = self.db.execute(
            "INSERT INTO mailbox (name, special_use, uidvalidity, uidnext, highest_modseq, recent_floor)"
            " VALUES (?, ?, ?, 1, 1, 0)",
            (name, special_use, self._new_uidvalidity()),
        )
        if subscribed:
            self.db.execute("INSERT OR IGNORE INTO subscription (name) VALUES (?)", (name,))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def _exists(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM mailbox WHERE name = ?", (name,)).fetchone() is not None

    def _commit(self) -> Deferred[None]:
        """Commits the open transaction (visible at once) and fires once it is durable.
        Raises StoreUnavailable (the transaction is rolled back) when the commit fails."""
        try:
            self.db.commit()
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                self.db.rollback()
            raise as_unavailable(e, "write the index") from e
        return self._durable()

    def _durable(self) -> Deferred[None]:
        """Fires once everything committed so far is durable (StoreUnavailable when the
        fsync fails)."""
        return self.index_sync.durable().addErrback(failure_as_unavailable, "write the index")

    def create_mailbox(self, name: str, special_use: str | None = None) -> Deferred[MailboxInfo]:
        name = normalize_mailbox_name(name)
        _check_name(name)
        if self._exists(name):
            raise MailboxExists(f"mailbox already exists: {name}")
        levels = name.split("/")
        created = []
        with self._atomic():
            for i in range(1, len(levels)):
                parent = "/".join(levels[:i])
                if not self._exists(parent):
                    self._insert_mailbox(parent, None)
                    created.append(parent)
            new_id = self._insert_mailbox(name, special_use)
            log_change(self.db, ChangeKind.MAILBOXES, new_id, names=(*created, name))
        durable = self._commit()
        self._notify([MailboxesChanged((*created, name))], None)
        info = self.mailbox(name)
        return durable.addCallback(lambda _: info)

    def rename_mailbox(self, old: str, new: str) -> Deferred[None]:
        old = normalize_mailbox_name(old)
        new = normalize_mailbox_name(new)
        _check_name(new)
        source = self.mailbox(old)
        if self._exists(new):
            raise MailboxExists(f"mailbox already exists: {new}")
        if old != "INBOX" and new.startswith(old + "/"):
            raise MailboxNameInvalid("cannot rename a mailbox into its own child")
        levels = new.split("/")
        if old == "INBOX":
            # RFC 9051 §6.3.6: renaming INBOX moves its messages to a new mailbox and leaves
            # INBOX in place, empty; children of INBOX are not renamed.
            with self._atomic():
                for i in range(1, len(levels)):
                    parent = "/".join(levels[:i])
                    if not self._exists(parent):
                        self._insert_mailbox(parent, None)
                target = self._insert_mailbox(new, None)
                log_change(self.db, ChangeKind.MAILBOXES, target, names=(new,))
            self.db.commit()
            uids = [int(r[0]) for r in self.db.execute("SELECT uid FROM message WHERE mailbox_id = ?", (source.id,))]
            if uids:
                self._move_rows(source.id, uids, target)
            self._notify([MailboxesChanged((old, new))], None)
            return self._durable()
        children = self.db.execute(
            "SELECT id, name FROM mailbox WHERE name LIKE ? ESCAPE '\\'", (_like_prefix(old + "/"),)
        ).fetchall()
        renames = [(source.id, old, new)] + [(cid, str(cn), new + str(cn)[len(old) :]) for cid, cn in children]
        for _, _, to in renames[1:]:
            if self._exists(to):
                raise MailboxExists(f"mailbox already exists: {to}")
        with self._atomic():
            for i in range(1, len(levels)):
                parent = "/".join(levels[:i])
                if not self._exists(parent):
                    self._insert_mailbox(parent, None)
            for mailbox_id, _, to in renames:
                self.db.execute("UPDATE mailbox SET name = ? WHERE id = ?", (to, mailbox_id))
            # Subscriptions follow the renamed mailboxes, so clients keep showing them.
            for _, frm, to in renames:
                if self.db.execute("DELETE FROM subscription WHERE name = ?", (frm,)).rowcount:
                    self.db.execute("INSERT OR IGNORE INTO subscription (name) VALUES (?)", (to,))
            log_change(self.db, ChangeKind.MAILBOXES, source.id, names=[n for _, frm, to in renames for n in (frm, to)])
        durable = self._commit()
        self._notify([MailboxesChanged(tuple(n for _, frm, to in renames for n in (frm, to)))], None)
        return durable

    def delete_mailbox(self, name: str) -> Deferred[None]:
        name = normalize_mailbox_name(name)
        if name == "INBOX":
            raise StoreError("INBOX cannot be deleted")
        box = self.mailbox(name)
        ids = [int(r[0]) for r in self.db.execute("SELECT id FROM message WHERE mailbox_id = ?", (box.id,))]
        with self._atomic():
            self.db.execute("DELETE FROM message WHERE mailbox_id = ?", (box.id,))
            self.db.execute("DELETE FROM expunged WHERE mailbox_id = ?", (box.id,))
            self.db.execute("DELETE FROM mailbox WHERE id = ?", (box.id,))
            log_change(self.db, ChangeKind.MAILBOXES, box.id, names=(name,))
        durable = self._commit()
        for i in ids:
            self._tree_cache.pop(i, None)
        self._notify([MessagesExpunged(box.id, (), box.highest_modseq), MailboxesChanged((name,))], None)
        return durable.addCallback(self._remove_files_after, ids)

    def set_subscribed(self, name: str, subscribed: bool) -> Deferred[None]:
        name = normalize_mailbox_name(name)
        if subscribed:
            self.db.execute("INSERT OR IGNORE INTO subscription (name) VALUES (?)", (name,))
        else:
            self.db.execute("DELETE FROM subscription WHERE name = ?", (name,))
        log_change(self.db, ChangeKind.MAILBOXES, names=(name,))
        durable = self._commit()
        self._notify([MailboxesChanged((name,))], None)
        return durable

    def subscriptions(self) -> list[str]:
        return [str(r[0]) for r in self.db.execute("SELECT name FROM subscription ORDER BY name")]

    # --- Deferred forms of the reads (what ops/ and the web use) ----------------------------
    # The index is local and read on the reactor thread, so these answer at once; a remote
    # backend answers later through the same Deferreds.
    @staticmethod
    def _read(f: Callable[..., _T], *args: Any) -> Deferred[_T]:
        d: Deferred[_T] = maybeDeferred(f, *args)
        return d.addErrback(failure_as_unavailable, "read the index")

    def mailboxes_async(self) -> Deferred[list[MailboxInfo]]:
        return self._read(self.mailboxes)

    def mailbox_async(self, name: str) -> Deferred[MailboxInfo]:
        return self._read(self.mailbox, name)

    def mailbox_by_id_async(self, mailbox_id: int) -> Deferred[MailboxInfo]:
        return self._read(self.mailbox_by_id, mailbox_id)

    def subscriptions_async(self) -> Deferred[list[str]]:
        return self._read(self.subscriptions)

    def messages_async(self, mailbox_id: int) -> Deferred[list[MessageInfo]]:
        return self._read(self.messages, mailbox_id)

    def message_async(self, mailbox_id: int, uid: int) -> Deferred[MessageInfo | None]:
        return self._read(self.message, mailbox_id, uid)

    def changes_since_async(self, mailbox_id: int, modseq: int) -> Deferred[Changes]:
        return self._read(self.changes_since, mailbox_id, modseq)

    def usage_async(self) -> Deferred[int]:
        return self._read(self.usage)

    # --- Messages --------------------------------------------------------------------------
    @staticmethod
    def _message_row(row: Any) -> MessageInfo:
        # Hot: a SELECT or large FETCH builds one per message. SQLite already returns ints.
        uid, modseq, flags, size, date, tz_offset, message_id = row
        return MessageInfo(uid, modseq, _flags_set(flags), size, _datetime(date, tz_offset), message_id)

    # Mailboxes whose message list is kept between calls, and how many messages in all.
    SNAPSHOT_MAILBOXES = 16
    SNAPSHOT_MESSAGES = 200_000

    def messages(self, mailbox_id: int) -> list[MessageInfo]:
        # Hot: every SELECT and large FETCH/SEARCH wants the whole list. A snapshot per
        # mailbox is brought up to date from the modseq it was taken at: every change of a
        # message row bumps the mailbox's HIGHESTMODSEQ in the same transaction, and every
        # removal is in `expunged` (never pruned), so rows with a larger modseq plus the UIDs
        # expunged after it are exactly the difference. UIDVALIDITY tells a recreated
        # mailbox (which may reuse the id) from the old one.
        row = self.db.execute("SELECT uidvalidity, highest_modseq FROM mailbox WHERE id = ?", (mailbox_id,)).fetchone()
        if row is None:
            self._snapshots.pop(mailbox_id, None)
            return []
        uidvalidity, modseq = int(row[0]), int(row[1])
        snap = self._snapshots.get(mailbox_id)
        if snap is not None and snap.uidvalidity == uidvalidity and snap.modseq <= modseq:
            if snap.modseq == modseq or snap.catch_up(self.changes_since(mailbox_id, snap.modseq)):
                snap.modseq = modseq
                self._snapshots.move_to_end(mailbox_id)
                return list(snap.messages.values())
        rows = self.db.execute(
            f"SELECT {_MSG_COLUMNS} FROM message WHERE mailbox_id = ? ORDER BY uid", (mailbox_id,)
        ).fetchall()
        messages = [self._message_row(r) for r in rows]
        self._snapshots[mailbox_id] = _Snapshot(uidvalidity, modseq, {m.uid: m for m in messages})
        self._snapshots.move_to_end(mailbox_id)
        while len(self._snapshots) > 1 and (
            len(self._snapshots) > self.SNAPSHOT_MAILBOXES
            or sum(len(s.messages) for s in self._snapshots.values()) > self.SNAPSHOT_MESSAGES
        ):
            self._snapshots.popitem(last=False)
        return messages

    def message(self, mailbox_id: int, uid: int) -> MessageInfo | None:
        row = self.db.execute(
            f"SELECT {_MSG_COLUMNS} FROM message WHERE mailbox_id = ? AND uid = ?", (mailbox_id, uid)
        ).fetchone()
        return self._message_row(row) if row else None

    def usage(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(size), 0) FROM mailbox").fetchone()[0])

    def quota_limit(self) -> int | None:
        return self._quota_limit()

    def _check_quota(self, extra: int) -> None:
        limit = self._quota_limit()
        if limit is not None and self.usage() + self._reserved + extra > limit:
            raise OverQuota("storage quota exceeded")

    def _next_modseq(self, mailbox_id: int) -> int:
        row = self.db.execute("SELECT highest_modseq FROM mailbox WHERE id = ?", (mailbox_id,)).fetchone()
        modseq = int(row[0]) + 1
        self.db.execute("UPDATE mailbox SET highest_modseq = ? WHERE id = ?", (modseq, mailbox_id))
        return modseq

    def _add_counts(self, mailbox_id: int, flags: frozenset[str], size: int, sign: int) -> None:
        seen = "\\Seen" in flags
        deleted = "\\Deleted" in flags
        self.db.execute(
            "UPDATE mailbox SET messages = messages + ?, unseen = unseen + ?, deleted = deleted + ?,"
            " size = size + ?, deleted_size = deleted_size + ? WHERE id = ?",
            (sign, sign * (not seen), sign * deleted, sign * size, sign * size * deleted, mailbox_id),
        )

    def append(
        self,
        mailbox: str,
        data: bytes | MessageSource,
        flags: Iterable[str] = (),
        internal_date: datetime.datetime | None = None,
        origin: object | None = None,
        *,
        delivery: bool = False,
        delivery_id: str | None = None,
    ) -> Deferred[AppendResult]:
        kind = ChangeKind.DELIVERED if delivery else ChangeKind.APPENDED
        if delivery_id is not None:
            try:
                first = self._delivered(delivery_id)
            except Exception:
                return fail()
            if first is not None:
                return succeed(first)
        message = NewMessage(data, tuple(flags), internal_date)
        d = self._track(ensureDeferred(self._append(mailbox, [message], origin, kind, delivery_id)))
        return d.addCallback(lambda results: results[0])

    def _delivered(self, delivery_id: str) -> AppendResult | None:
        """What the append with this delivery id stored, if the account remembers it."""
        row = self.db.execute(
            "SELECT mailbox_id, uidvalidity, uid, modseq FROM delivered WHERE delivery_id = ? AND time >= ?",
            (delivery_id, int(time.time()) - DELIVERY_ID_DAYS * 86400),
        ).fetchone()
        return AppendResult(*(int(v) for v in row)) if row else None

    def _trim_delivered(self) -> None:
        """Forgets delivery ids older than the window (at open; writes only when there are)."""
        cutoff = int(time.time()) - DELIVERY_ID_DAYS * 86400
        if self.db.execute("SELECT 1 FROM delivered WHERE time < ? LIMIT 1", (cutoff,)).fetchone():
            self.db.execute("DELETE FROM delivered WHERE time < ?", (cutoff,))
            self.db.commit()

    def append_many(
        self, mailbox: str, messages: Sequence[NewMessage], origin: object | None = None, *, delivery: bool = False
    ) -> Deferred[tuple[AppendResult, ...]]:
        kind = ChangeKind.DELIVERED if delivery else ChangeKind.APPENDED
        return self._track(ensureDeferred(self._append(mailbox, messages, origin, kind)))

    def _track(self, d: Deferred[_T]) -> Deferred[_T]:
        # Tracked so that a stopping daemon lets acknowledged-to-be deliveries finish (drain).
        self._appending.add(cast("Deferred[Any]", d))
        d.addBoth(self._append_done, d)
        return d

    def _append_done(self, result: object, d: Deferred[Any]) -> object:
        self._appending.discard(d)
        return result

    def appends_in_flight(self) -> list[Deferred[Any]]:
        return list(self._appending)

    async def _append(
        self,
        mailbox: str,
        messages: Sequence[NewMessage],
        origin: object | None,
        kind: ChangeKind,
        delivery_id: str | None = None,
    ) -> tuple[AppendResult, ...]:
        """Writes every message's file, then inserts all their rows in one savepoint of one
        group commit: the batch (RFC 3502 MULTIAPPEND) becomes visible whole or not at all,
        with consecutive UIDs and one modseq."""
        box = self.mailbox(mailbox)
        total = sum(len(m.data) for m in messages)
        self._check_quota(total)
        now = datetime.datetime.now(datetime.UTC).astimezone()
        prepared: list[tuple[int, NewMessage, frozenset[str], datetime.datetime, str, Summary | None]] = []
        for m in messages:
            when = m.internal_date or now
            if isinstance(m.data, MessageSource):
                tree_json, summary = "", None  # parsed from the stored file, below
            else:
                if len(m.data) > 256 * 1024:
                    tree = await self._pools.files(parse_message, m.data)
                else:
                    tree = parse_message(m.data)
                tree_json, summary = tree.to_json(), summarize(m.data, tree, int(when.timestamp()))
            prepared.append((next(self._ids), m, _given_flags(m.flags), when, tree_json, summary))

        def insert_rows() -> tuple[AppendResult, ...]:
            if delivery_id is not None:
                # The same delivery, retried while this one wrote its file: the first wins.
                first = self._delivered(delivery_id)
                if first is not None:
                    raise _AlreadyDelivered(first)
            # The mailbox may have been deleted while the files were written.
            box_now = self.mailbox_by_id(box.id)
            uid = box_now.uidnext
            modseq = self._next_modseq(box.id)
            results = []
            for message_id, m, flag_set, when, tree_json, summary in prepared:
                assert summary is not None  # filled in for every message before the rows
                offset = when.utcoffset() or datetime.timedelta(0)
                self.db.execute(
                    "INSERT INTO message (id, mailbox_id, uid, modseq, flags, size, internal_date, tz_offset,"
                    " part_tree, summary, sent_date, sort_from, sort_subject, thread_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        message_id,
                        box.id,
                        uid,
                        modseq,
                        _flags_text(flag_set),
                        len(m.data),
                        int(when.timestamp()),
                        int(offset.total_seconds() // 60),
                        tree_json,
                        *self._summary_columns(summary, message_id),
                    ),
                )
                self._add_counts(box.id, flag_set, len(m.data), 1)
                results.append(AppendResult(box.id, box_now.uidvalidity, uid, modseq))
                uid += 1
            self.db.execute("UPDATE mailbox SET uidnext = ? WHERE id = ?", (uid, box.id))
            log_change(self.db, kind, box.id, [r.uid for r in results], modseq)
            if delivery_id is not None:
                first = results[0]
                self.db.execute(
                    "INSERT OR REPLACE INTO delivered (delivery_id, mailbox_id, uidvalidity, uid, modseq, time)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (delivery_id, first.mailbox_id, first.uidvalidity, first.uid, first.modseq, int(time.time())),
                )
            return tuple(results)

        ids = [p[0] for p in prepared]
        # Reserved until the rows are committed, so concurrent appends cannot overshoot the quota.
        self._reserved += total
        try:
            try:
                writes = [self.files.write(message_id, m.data) for message_id, m, *_ in prepared]
                failed: BaseException | None = None
                for w in writes:  # all of them settle before any file is removed
                    try:
                        await w
                    except BaseException as e:
                        failed = failed or e
                if failed is not None:
                    raise failed
                for i, (message_id, m, flag_set, when, _, _) in enumerate(prepared):
                    if isinstance(m.data, MessageSource):
                        # Spooled messages are parsed from their stored file, mapped (issue 17 item 7).
                        stored = self.files.path(message_id)
                        tree_json, summary = await self._pools.files(_parse_file, stored, int(when.timestamp()))
                        prepared[i] = (message_id, m, flag_set, when, tree_json, summary)
                results = await self._group_commit(insert_rows)
            except _AlreadyDelivered as e:
                self._remove_files(ids)
                return (e.first,)
            except BaseException as e:
                self._remove_files(ids)
                converted = as_unavailable(e, "write the message file")
                if converted is e:
                    raise
                raise converted from e
        finally:
            self._reserved -= total
        added = [self.message(r.mailbox_id, r.uid) for r in results]
        self._notify([MessageAdded(box.id, info) for info in added if info is not None], origin)
        await self._durable()
        return results

    def _group_commit(self, write_rows: Callable[[], _T]) -> Deferred[_T]:
        """Runs `write_rows` and commits at the end of this reactor turn, together with the
        rows of every other append whose file sync finished in it (one transaction); fires
        at the commit, before it is durable. Rows are written only just before that commit,
        so nothing else ever sees them uncommitted."""
        d: Deferred[_T] = Deferred()
        self._pending_rows.append((write_rows, d))
        if len(self._pending_rows) == 1:
            self._reactor.callLater(0, self._commit_now)
        return d

    def _commit_now(self) -> None:
        batch, self._pending_rows = self._pending_rows, []
        if self._closed:
            for _, d in batch:
                d.errback(StoreError("the store is closed"))
            return
        outcomes: list[tuple[Deferred[Any], object, Exception | None]] = []
        for write_rows, d in batch:
            try:
                with self._atomic():
                    outcomes.append((d, write_rows(), None))
            except Exception as e:
                outcomes.append((d, None, e))
        try:
            self.db.commit()
        except Exception as e:
            with contextlib.suppress(sqlite3.Error):
                self.db.rollback()
            for d, _, _ in outcomes:
                d.errback(as_unavailable(e, "write the index"))
            return
        for d, value, error in outcomes:
            if error is not None:
                d.errback(error)
            else:
                d.callback(value)

    def copy(
        self, source_mailbox_id: int, uids: Sequence[int], dest: str, origin: object | None = None
    ) -> Deferred[CopyResult]:
        return ensureDeferred(self._copy(source_mailbox_id, uids, dest, origin, move=False))

    def move(
        self, source_mailbox_id: int, uids: Sequence[int], dest: str, origin: object | None = None
    ) -> Deferred[CopyResult]:
        return ensureDeferred(self._copy(source_mailbox_id, uids, dest, origin, move=True))

    async def _copy(
        self, source_id: int, uids: Sequence[int], dest: str, origin: object | None, move: bool
    ) -> CopyResult:
        target = self.mailbox(dest)
        self.mailbox_by_id(source_id)
        wanted = sorted(set(uids))
        sources = [m for m in (self.message(source_id, u) for u in wanted) if m is not None]
        if not sources:
            return CopyResult(target.uidvalidity, (), ())
        if move:
            moved = self._move_rows(source_id, [m.uid for m in sources], target.id, origin)
            await self._durable()
            return CopyResult(target.uidvalidity, tuple(o for o, _ in moved), tuple(n for _, n in moved))
        self._check_quota(sum(m.size for m in sources))
        pairs = [(m.message_id, next(self._ids)) for m in sources]
        await self.files.link(pairs)
        try:
            target = self.mailbox_by_id(target.id)
        except MailboxNotFound:
            self._remove_files([new_id for _, new_id in pairs])
            raise
        copied_sources: list[int] = []
        with self._atomic():
            modseq = self._next_modseq(target.id)
            uid = target.uidnext
            copied: list[int] = []
            for m, (_, new_id) in zip(sources, pairs, strict=True):
                cur = self.db.execute(
                    "INSERT INTO message (id, mailbox_id, uid, modseq, flags, size, internal_date, tz_offset,"
                    " part_tree, summary, sent_date, sort_from, sort_subject, thread_id)"
                    " SELECT ?, ?, ?, ?, flags, size, internal_date, tz_offset, part_tree,"
                    " summary, sent_date, sort_from, sort_subject, thread_id FROM message WHERE id = ?",
                    (new_id, target.id, uid, modseq, m.message_id),
                )
                if cur.rowcount != 1:
                    # Expunged while the links were made: not copied (RFC 9051 §6.4.7 lets
                    # COPY skip messages that no longer exist).
                    self._remove_files([new_id])
                    continue
                self._add_counts(target.id, m.flags, m.size, 1)
                copied_sources.append(m.uid)
                copied.append(uid)
                uid += 1
            self.db.execute("UPDATE mailbox SET uidnext = ? WHERE id = ?", (uid, target.id))
            if copied:
                log_change(self.db, ChangeKind.COPIED, target.id, copied, modseq)
        durable = self._commit()
        added = [self.message(target.id, u) for u in copied]
        self._notify([MessageAdded(target.id, a) for a in added if a is not None], origin)
        await durable
        return CopyResult(target.uidvalidity, tuple(copied_sources), tuple(copied))

    def _move_rows(
        self, source_id: int, uids: Sequence[int], target_id: int, origin: object | None = None
    ) -> list[tuple[int, int]]:
        """Moves index rows (the files stay) in one transaction: observers see the messages
        vanish from the source and appear in the target, never both or neither. Returns
        (old UID, new UID) pairs. The target may be the source (RFC 6851 does not forbid it):
        the messages get new UIDs at its end."""
        target = self.mailbox_by_id(target_id)
        with self._atomic():
            dest_modseq = self._next_modseq(target_id)
            src_modseq = self._next_modseq(source_id)
            uid = target.uidnext
            moved: list[tuple[int, int]] = []
            for old_uid in uids:
                m = self.message(source_id, old_uid)
                if m is None:
                    continue
                self.db.execute(
                    "UPDATE message SET mailbox_id = ?, uid = ?, modseq = ? WHERE id = ?",
                    (target_id, uid, dest_modseq, m.message_id),
                )
                self._add_counts(source_id, m.flags, m.size, -1)
                self._add_counts(target_id, m.flags, m.size, 1)
                self.db.execute(
                    "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
                    (source_id, old_uid, src_modseq),
                )
                moved.append((old_uid, uid))
                uid += 1
            self.db.execute("UPDATE mailbox SET uidnext = ? WHERE id = ?", (uid, target_id))
            if moved:
                source_uids, dest_uids = [o for o, _ in moved], [n for _, n in moved]
                log_change(self.db, ChangeKind.MOVED, source_id, source_uids, src_modseq, target_id, dest_uids)
        self.db.commit()
        changes: list[Change] = [MessagesExpunged(source_id, tuple(o for o, _ in moved), src_modseq)]
        for _, new_uid in moved:
            info = self.message(target_id, new_uid)
            if info is not None:
                changes.append(MessageAdded(target_id, info))
        self._notify(changes, origin)
        return moved

    def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: str,
        flags: Iterable[str],
        unchanged_since: int | None = None,
        origin: object | None = None,
    ) -> Deferred[FlagResult]:
        try:
            return self._store_flags(mailbox_id, uids, mode, flags, unchanged_since, origin)
        except Exception:
            return fail()

    def _store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: str,
        flags: Iterable[str],
        unchanged_since: int | None,
        origin: object | None,
    ) -> Deferred[FlagResult]:
        self.mailbox_by_id(mailbox_id)
        given = _given_flags(flags)
        modseq: int | None = None
        changed: list[MessageInfo] = []
        modified: list[int] = []
        with self._atomic():
            for uid in sorted(set(uids)):
                m = self.message(mailbox_id, uid)
                if m is None:
                    continue
                if unchanged_since is not None and m.modseq > unchanged_since:
                    modified.append(uid)
                    continue
                new = merge_flags(m.flags, mode, given)
                if new == m.flags:
                    continue
                if modseq is None:
                    modseq = self._next_modseq(mailbox_id)
                self._add_counts(mailbox_id, m.flags, m.size, -1)
                self._add_counts(mailbox_id, new, m.size, 1)
                self.db.execute(
                    "UPDATE message SET flags = ?, modseq = ? WHERE id = ?",
                    (_flags_text(new), modseq, m.message_id),
                )
                # The counts moved a message out and in again; messages must not change.
                changed.append(MessageInfo(m.uid, modseq, new, m.size, m.internal_date, m.message_id))
            if changed:
                log_change(self.db, ChangeKind.FLAGS, mailbox_id, [c.uid for c in changed], changed[0].modseq)
        result = FlagResult(tuple(changed), tuple(modified))
        if not changed:
            return succeed(result)
        durable = self._commit()
        self._notify([FlagsChanged(mailbox_id, c) for c in changed], origin)
        return durable.addCallback(lambda _: result)

    def expunge(
        self, mailbox_id: int, uids: Sequence[int] | None = None, origin: object | None = None
    ) -> Deferred[tuple[int, ...]]:
        try:
            return self._expunge(mailbox_id, uids, origin)
        except Exception:
            return fail()

    def _expunge(self, mailbox_id: int, uids: Sequence[int] | None, origin: object | None) -> Deferred[tuple[int, ...]]:
        self.mailbox_by_id(mailbox_id)
        # From the kept message list: a LIKE over every row's flags scanned the mailbox.
        victims = [m for m in self.messages(mailbox_id) if "\\Deleted" in m.flags]
        if uids is not None:
            allowed = set(uids)
            victims = [v for v in victims if v.uid in allowed]
        if not victims:
            return succeed(())
        with self._atomic():
            modseq = self._next_modseq(mailbox_id)
            for v in victims:
                self.db.execute("DELETE FROM message WHERE id = ?", (v.message_id,))
                self.db.execute(
                    "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
                    (mailbox_id, v.uid, modseq),
                )
                self._add_counts(mailbox_id, v.flags, v.size, -1)
            log_change(self.db, ChangeKind.EXPUNGED, mailbox_id, [v.uid for v in victims], modseq)
        durable = self._commit()
        ids = [v.message_id for v in victims]
        for i in ids:
            self._tree_cache.pop(i, None)
        expunged = tuple(v.uid for v in victims)
        self._notify([MessagesExpunged(mailbox_id, expunged, modseq)], origin)
        return durable.addCallback(self._remove_files_after, ids).addCallback(lambda _: expunged)

    def _remove_files(self, ids: list[int]) -> None:
        """Unlinks files of rows already deleted (durably), in the files pool; a crash before
        it leaves orphans that the next start removes."""
        if ids:
            self.files.remove_later(ids).addErrback(lambda f: log.failure("removing message files", failure=f))

    def _remove_files_after(self, result: _T, ids: list[int]) -> _T:
        self._remove_files(ids)
        return result

    def changes_since(self, mailbox_id: int, modseq: int) -> Changes:
        rows = self.db.execute(
            f"SELECT {_MSG_COLUMNS} FROM message WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
            (mailbox_id, modseq),
        ).fetchall()
        vanished = self.db.execute(
            "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid", (mailbox_id, modseq)
        ).fetchall()
        return Changes(tuple(self._message_row(r) for r in rows), tuple(int(r[0]) for r in vanished))

    # --- Summaries and sorted listing -----------------------------------------------------
    def _summary_columns(self, summary: Summary, message_id: int) -> tuple[object, ...]:
        """summary, sent_date, sort_from, sort_subject, thread_id of a row being inserted."""
        thread = assign_thread(self.db, summary, message_id)
        return (_encode_summary(summary).decode(), summary.date, sort_from(summary), sort_subject(summary), thread)

    # Bytes of a message file read to fill in the summary of a message stored before version 2.
    _FILL_PREFIX = 256 * 1024

    def _fill_summaries(self) -> None:
        """Migration to version 2: summaries and thread ids of the existing messages, in the
        order they were stored (so that threads form as they would have at delivery)."""
        rows = self.db.execute("SELECT id, internal_date, part_tree FROM message WHERE summary = '' ORDER BY id")
        todo = rows.fetchall()
        if not todo:
            return
        with self._atomic():
            for message_id, internal_date, tree_json in todo:
                tree = Part.from_json(str(tree_json))
                try:
                    with open(self.files.path(int(message_id)), "rb") as f:
                        raw = f.read(self._FILL_PREFIX)
                except OSError:
                    raw = b""  # the envelope in the part tree still gives most fields
                summary = summarize(raw, tree, int(internal_date))
                self.db.execute(
                    "UPDATE message SET summary = ?, sent_date = ?, sort_from = ?, sort_subject = ?, thread_id = ?"
                    " WHERE id = ?",
                    (*self._summary_columns(summary, int(message_id)), message_id),
                )
        self.db.commit()
        log.info("filled in summaries of {n} messages of {account}", n=len(todo), account=self._account)

    @staticmethod
    def _summary_row(row: Any) -> MessageSummary:
        message_id, mailbox_id, uid, modseq, flags, size, internal_date, thread_id, summary = row
        return MessageSummary(
            id=message_id,
            mailbox_id=mailbox_id,
            uid=uid,
            modseq=modseq,
            flags=tuple(sorted(_flags_set(flags))),
            size=size,
            internal_date=internal_date,
            thread_id=thread_id,
            summary=_decode_summary(summary),
        )

    def list_messages(
        self,
        mailbox_id: int,
        sort: SortKey = SortKey.ARRIVAL,
        descending: bool = False,
        count: int = 50,
        anchor: str | None = None,
    ) -> Deferred[MessagePage]:
        return self._read(self._list_messages, mailbox_id, SortKey(sort), descending, count, anchor)

    def _list_messages(
        self, mailbox_id: int, sort: SortKey, descending: bool, count: int, anchor: str | None
    ) -> MessagePage:
        if not 1 <= count <= MAX_PAGE:
            raise InvalidRequest(f"a page has 1 to {MAX_PAGE} messages")
        box = self.mailbox_by_id(mailbox_id)
        column = _SORT_COLUMNS[sort]
        direction, after = ("DESC", "<") if descending else ("ASC", ">")
        where = "mailbox_id = ?"
        params: list[object] = [mailbox_id]
        if anchor is not None:
            key, uid = _decode_anchor(anchor, sort, descending)
            # A row-value comparison: SQLite scans the (mailbox_id, key, uid) index from there.
            where += f" AND ({column}, uid) {after} (?, ?)"
            params += [key, uid]
        rows = self.db.execute(
            f"SELECT {_SUMMARY_COLUMNS}, {column} FROM message WHERE {where}"
            f" ORDER BY {column} {direction}, uid {direction} LIMIT ?",
            (*params, count + 1),
        ).fetchall()
        more = len(rows) > count
        rows = rows[:count]
        next_anchor = _encode_anchor(sort, descending, rows[-1][-1], rows[-1][2]) if more else None
        return MessagePage(tuple(self._summary_row(r[:-1]) for r in rows), next_anchor, box.messages)

    # Above this many UIDs, `summaries` reads the whole mailbox and filters.
    _UID_LIST_LIMIT = 500

    def summaries(self, mailbox_id: int, uids: Sequence[int] | None = None) -> Deferred[list[MessageSummary]]:
        return self._read(self._summaries, mailbox_id, uids)

    def _summaries(self, mailbox_id: int, uids: Sequence[int] | None) -> list[MessageSummary]:
        query = f"SELECT {_SUMMARY_COLUMNS} FROM message WHERE mailbox_id = ?"
        if uids is not None and len(uids) <= self._UID_LIST_LIMIT:
            wanted = sorted(set(uids))
            query += f" AND uid IN ({','.join('?' * len(wanted))})"
            rows = self.db.execute(query + " ORDER BY uid", (mailbox_id, *wanted)).fetchall()
        else:
            rows = self.db.execute(query + " ORDER BY uid", (mailbox_id,)).fetchall()
            if uids is not None:
                allowed = set(uids)
                rows = [r for r in rows if r[2] in allowed]
        return [self._summary_row(r) for r in rows]

    def find_message(self, message_id: int) -> Deferred[MessageSummary | None]:
        row = self.db.execute(f"SELECT {_SUMMARY_COLUMNS} FROM message WHERE id = ?", (message_id,)).fetchone()
        return succeed(self._summary_row(row) if row else None)

    def thread(self, thread_id: int) -> Deferred[list[MessageSummary]]:
        rows = self.db.execute(
            f"SELECT {_SUMMARY_COLUMNS} FROM message WHERE thread_id = ? ORDER BY sent_date, id LIMIT ?",
            (thread_id, MAX_THREAD),
        ).fetchall()
        return succeed([self._summary_row(r) for r in rows])

    # --- Change log --------------------------------------------------------------------
    def changes_after(self, seq: int, limit: int = 1000) -> Deferred[ChangeFeed]:
        return self._read(changelog.changes_after, self.db, seq, limit)

    def last_change(self) -> Deferred[int]:
        return succeed(changelog.last_change(self.db))

    # --- Account data ------------------------------------------------------------------
    def get_data(self, namespace: str, key: str) -> Deferred[bytes | None]:
        row = self.db.execute(
            "SELECT value FROM account_data WHERE namespace = ? AND key = ?", (namespace, key)
        ).fetchone()
        return succeed(bytes(row[0]) if row else None)

    def put_data(self, namespace: str, key: str, value: bytes | None) -> Deferred[None]:
        for name in (namespace, key):
            if not name or len(name) > MAX_DATA_NAME:
                raise InvalidRequest(f"account data names have 1 to {MAX_DATA_NAME} characters")
        if value is not None and len(value) > MAX_DATA_VALUE:
            raise InvalidRequest(f"account data values have at most {MAX_DATA_VALUE} bytes")
        with self._atomic():
            if value is None:
                self.db.execute("DELETE FROM account_data WHERE namespace = ? AND key = ?", (namespace, key))
            else:
                self.db.execute(
                    "INSERT OR REPLACE INTO account_data (namespace, key, value) VALUES (?, ?, ?)",
                    (namespace, key, value),
                )
        return self._commit()

    def list_data(self, namespace: str, limit: int = 1000) -> Deferred[list[tuple[str, bytes]]]:
        if not 1 <= limit <= 10_000:
            raise InvalidRequest("account data listings have 1 to 10,000 entries")
        rows = self.db.execute(
            "SELECT key, value FROM account_data WHERE namespace = ? ORDER BY key LIMIT ?", (namespace, limit)
        ).fetchall()
        return succeed([(str(r[0]), bytes(r[1])) for r in rows])

    # --- Content -------------------------------------------------------------------------
    def read(self, message_id: int, start: int = 0, length: int | None = None) -> bytes:
        with open(self.files.path(message_id), "rb") as f:
            if start:
                f.seek(start)
            return f.read() if length is None else f.read(max(0, length))

    def read_async(self, message_id: int, start: int = 0, length: int | None = None) -> Deferred[bytes]:
        return self._pools.files(self.read, message_id, start, length)

    def scan_bodies(self, message_ids: Sequence[int], match: Callable[[int, bytes], bool]) -> Deferred[list[int]]:
        ids = list(message_ids)

        def scan() -> list[int]:  # in the files pool: touches the files only, never the index
            hits = []
            for message_id in ids:
                try:
                    raw = self.read(message_id)
                except FileNotFoundError:
                    continue  # expunged meanwhile
                if match(message_id, raw):
                    hits.append(message_id)
            return hits

        return self._pools.files(scan)

    MAX_TREES = 1000

    def part_trees(self, message_ids: Sequence[int]) -> Deferred[dict[int, Part]]:
        return self._read(self._part_trees, message_ids)

    def _part_trees(self, message_ids: Sequence[int]) -> dict[int, Part]:
        if len(message_ids) > self.MAX_TREES:
            raise InvalidRequest(f"at most {self.MAX_TREES} part trees at once")
        out: dict[int, Part] = {}
        missing = []
        for message_id in message_ids:
            tree = self._tree_cache.get(message_id)
            if tree is None:
                missing.append(message_id)
            else:
                out[message_id] = tree
        if missing:
            rows = self.db.execute(
                f"SELECT id, part_tree FROM message WHERE id IN ({','.join('?' * len(missing))})", missing
            ).fetchall()
            for message_id, tree_json in rows:
                out[int(message_id)] = self._cache_tree(int(message_id), Part.from_json(str(tree_json)))
        return out

    def _cache_tree(self, message_id: int, tree: Part) -> Part:
        self._tree_cache[message_id] = tree
        if len(self._tree_cache) > 4096:
            self._tree_cache.popitem(last=False)
        return tree

    def part_tree(self, message_id: int) -> Part:
        tree = self._tree_cache.get(message_id)
        if tree is not None:
            self._tree_cache.move_to_end(message_id)
            return tree
        row = self.db.execute("SELECT part_tree FROM message WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise StoreError("message no longer exists")
        return self._cache_tree(message_id, Part.from_json(str(row[0])))


def _parse_file(path: Path, internal_date: int) -> tuple[str, Summary]:
    """The part tree (JSON) and summary of a stored message file, read through a mapping:
    the parser scans it for boundaries and copies only header blocks and a preview, so a
    large message costs page cache, not process memory."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            tree = parse_message(b"")
            return tree.to_json(), summarize(b"", tree, internal_date)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            tree = parse_message(mapped)
            return tree.to_json(), summarize(mapped, tree, internal_date)


_encode_summary = msgspec.json.Encoder().encode
_decode_summary = msgspec.json.Decoder(Summary).decode
_SUMMARY_COLUMNS = "id, mailbox_id, uid, modseq, flags, size, internal_date, thread_id, summary"
_SORT_COLUMNS = {
    SortKey.DATE: "sent_date",
    SortKey.ARRIVAL: "internal_date",
    SortKey.FROM: "sort_from",
    SortKey.SUBJECT: "sort_subject",
    SortKey.SIZE: "size",
}
MAX_PAGE = 1000
MAX_DATA_NAME = 1000
MAX_DATA_VALUE = 1024 * 1024
MAX_THREAD = 10_000


class _Anchor(msgspec.Struct, array_like=True):
    sort: str
    descending: bool
    key: int | str
    uid: int


def _encode_anchor(sort: SortKey, descending: bool, key: int | str, uid: int) -> str:
    raw = msgspec.json.encode(_Anchor(sort.value, descending, key, uid))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_anchor(anchor: str, sort: SortKey, descending: bool) -> tuple[int | str, int]:
    """The (sort key, UID) position an anchor names; InvalidRequest when it is malformed or
    belongs to another order."""
    try:
        raw = base64.urlsafe_b64decode(anchor + "=" * (-len(anchor) % 4))
        decoded = msgspec.json.decode(raw, type=_Anchor)
    except (ValueError, msgspec.DecodeError) as e:
        raise InvalidRequest("malformed page anchor") from e
    text_key = _SORT_COLUMNS[sort] in ("sort_from", "sort_subject")
    if decoded.sort != sort.value or decoded.descending != descending or isinstance(decoded.key, str) != text_key:
        raise InvalidRequest("the page anchor belongs to another order")
    return decoded.key, decoded.uid


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
