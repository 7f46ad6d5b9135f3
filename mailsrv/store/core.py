"""The shared state of an account store and what every operation uses: the index
connection, savepoints and commits made durable by the fsync pool, change listeners, counters
and modseqs. The operations are mixins on top (`reading`, `mailboxes`, `appending`,
`transfer`, `flagging`, `listing`, `accountdata`), put together in `account.SQLiteAccountStore`."""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from mailsrv.message.part import Part
from mailsrv.pools import Pools, reactor_pools
from mailsrv.store.files import MessageFiles
from mailsrv.store.interfaces import (
    Change,
    ChangeListener,
    MailboxesChanged,
    MessageAdded,
    OverQuota,
)
from mailsrv.store.schema import open_index
from mailsrv.store.snapshot import Snapshot
from mailsrv.store.unavailable import as_unavailable, failure_as_unavailable
from mailsrv.store.walsync import IndexSync

log = Logger()
_T = TypeVar("_T")


class IndexCore:
    """State and primitives shared by the operation mixins."""

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
        self.db, self._found_version = open_index(root / "index.db")
        self.index_sync = IndexSync(root / "index.db", self._pools.fsync)
        self.files = MessageFiles(root / "msg", reactor, self._pools.fsync, self._pools.files)
        self._listeners: list[ChangeListener] = []
        self._tree_cache: OrderedDict[int, Part] = OrderedDict()
        self._snapshots: OrderedDict[int, Snapshot] = OrderedDict()
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
        # Mailbox name (as callers give it) -> id, for appends; emptied by every change of the
        # mailbox list (`_mailboxes_changed`) and by an operation undone.
        self._mailbox_ids: dict[str, int] = {}

    def _mailboxes_changed(self) -> None:
        """Called by every statement that adds, renames or removes a mailbox row."""
        self._mailbox_ids.clear()

    @property
    def account(self) -> str:
        return self._account

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
            self._mailbox_ids.clear()  # a mailbox row made in the savepoint may be gone again
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK TO op")
                self.db.execute("RELEASE op")
            converted = as_unavailable(e, "write the index")
            if converted is e:
                raise
            raise converted from e
        self.db.execute("RELEASE op")

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
            elif isinstance(change, MailboxesChanged):
                self._mailbox_ids.clear()
            if isinstance(change, MailboxesChanged) and self._recent_floor:
                live = self._live_mailbox_ids()  # a deleted mailbox's id may be reused
                self._recent_floor = {k: v for k, v in self._recent_floor.items() if k in live}
            for listener in list(self._listeners):
                try:
                    listener(change, origin)
                except Exception:
                    log.failure("store change listener failed")

    def _live_mailbox_ids(self) -> set[int]:
        return {int(r[0]) for r in self.db.execute("SELECT id FROM mailbox")}

    def _commit(self) -> Deferred[None]:
        """Commits the open transaction (visible at once) and fires once it is durable.
        Raises StoreUnavailable (the transaction is rolled back) when the commit fails."""
        try:
            self.db.commit()
        except sqlite3.Error as e:
            self._mailbox_ids.clear()
            with contextlib.suppress(sqlite3.Error):
                self.db.rollback()
            raise as_unavailable(e, "write the index") from e
        return self._durable()

    def _durable(self) -> Deferred[None]:
        """Fires once everything committed so far is durable (StoreUnavailable when the
        fsync fails)."""
        return self.index_sync.durable().addErrback(failure_as_unavailable, "write the index")

    # The index is local and read on the reactor thread, so these answer at once; a remote
    # backend answers later through the same Deferreds.
    @staticmethod
    def _read(f: Callable[..., _T], *args: Any) -> Deferred[_T]:
        d: Deferred[_T] = maybeDeferred(f, *args)
        return d.addErrback(failure_as_unavailable, "read the index")

    def usage(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(size), 0) FROM mailbox").fetchone()[0])

    def usage_async(self) -> Deferred[int]:
        return self._read(self.usage)

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

    def _remove_files(self, ids: list[int]) -> None:
        """Unlinks files of rows already deleted (durably), in the files pool; a crash before
        it leaves orphans that the next start removes."""
        if ids:
            self.files.remove_later(ids).addErrback(lambda f: log.failure("removing message files", failure=f))

    def _remove_files_after(self, result: _T, ids: list[int]) -> _T:
        self._remove_files(ids)
        return result

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
