"""Appends: message files written and fsynced in the fsync pool, then rows inserted in a
group commit shared by every append whose file finished in the same reactor turn; quota
reservations; idempotent delivery ids."""

from __future__ import annotations

import contextlib
import datetime
import mmap
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from twisted.internet.defer import Deferred, ensureDeferred

from mailsrv.message.parse import parse_message
from mailsrv.message.source import MessageSource
from mailsrv.store.changelog import log_change
from mailsrv.store.flagset import flags_text, given_flags
from mailsrv.store.interfaces import (
    DELIVERY_ID_DAYS,
    AppendResult,
    ChangeKind,
    MailboxCounts,
    MailboxNotFound,
    MessageAdded,
    MessageInfo,
    NewMessage,
    StoreError,
    Summary,
)
from mailsrv.store.listing import summary_columns
from mailsrv.store.reading import IndexReads, stored_datetime
from mailsrv.store.summary import summarize
from mailsrv.store.unavailable import as_unavailable

_T = TypeVar("_T")


def _window_start(now: int) -> int:
    """The oldest time a delivery id is remembered from (DELIVERY_ID_DAYS)."""
    return now - DELIVERY_ID_DAYS * 86400


class _AlreadyDelivered(Exception):
    """An append's delivery id was stored by another append meanwhile (not an error)."""

    def __init__(self, first: AppendResult) -> None:
        self.first = first


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


class Appends(IndexReads):
    """append, append_many, the group commit and delivery ids."""

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
        header_fields: Sequence[tuple[str, str]] | None = None,
    ) -> Deferred[AppendResult]:
        # A retry with a known delivery_id is found when its rows would be inserted (a
        # SELECT here first cost every delivery a statement for the rare retry).
        kind = ChangeKind.DELIVERED if delivery else ChangeKind.APPENDED
        message = NewMessage(data, tuple(flags), internal_date, header_fields)
        d = self._track(ensureDeferred(self._append(mailbox, [message], origin, kind, delivery_id)))
        return d.addCallback(lambda results: results[0])

    def _delivered(self, delivery_id: str) -> AppendResult | None:
        """What the append with this delivery id stored, if the account remembers it."""
        row = self.db.execute(
            "SELECT mailbox_id, uidvalidity, uid, modseq FROM delivered WHERE delivery_id = ? AND time >= ?",
            (delivery_id, _window_start(int(time.time()))),
        ).fetchone()
        return AppendResult(*(int(v) for v in row)) if row else None

    def _remember_delivery(self, delivery_id: str, first: AppendResult) -> None:
        """Records the delivery id with what it stored, in the append's transaction. The same
        delivery, retried while this one wrote its file, stored it first: then this append
        is undone (its savepoint) and answers with the first one's result. A row older than
        the window is forgotten and replaced. One statement in the usual case (a SELECT
        first cost every delivery a statement for the rare retry)."""
        now = int(time.time())
        cursor = self.db.execute(
            "INSERT INTO delivered (delivery_id, mailbox_id, uidvalidity, uid, modseq, time)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id) DO UPDATE SET mailbox_id = excluded.mailbox_id,"
            " uidvalidity = excluded.uidvalidity, uid = excluded.uid, modseq = excluded.modseq, time = excluded.time"
            " WHERE delivered.time < ?",
            (delivery_id, first.mailbox_id, first.uidvalidity, first.uid, first.modseq, now, _window_start(now)),
        )
        if cursor.rowcount == 0:
            earlier = self._delivered(delivery_id)
            if earlier is not None:
                raise _AlreadyDelivered(earlier)

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
        box_id = self._mailbox_id(mailbox)
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
                    tree = await self._pools.files(parse_message, m.data, m.header_fields)
                else:
                    tree = parse_message(m.data, m.header_fields)
                tree_json, summary = tree.to_json(), summarize(m.data, tree, int(when.timestamp()))
            prepared.append((next(self._ids), m, given_flags(m.flags), when, tree_json, summary))

        infos: list[MessageInfo] = []
        added = len(prepared)
        unseen = sum("\\Seen" not in p[2] for p in prepared)
        deleted = sum("\\Deleted" in p[2] for p in prepared)
        size = sum(len(p[1].data) for p in prepared)
        deleted_size = sum(len(p[1].data) for p in prepared if "\\Deleted" in p[2])

        def insert_rows() -> tuple[AppendResult, ...]:
            infos.clear()
            # The batch's UIDs, its modseq and the counters, then what they are now: also
            # finds a mailbox deleted while the files were written. (An UPDATE ... RETURNING
            # cost more CPU than the two statements.)
            self.db.execute(
                "UPDATE mailbox SET uidnext = uidnext + ?, highest_modseq = highest_modseq + 1,"
                " messages = messages + ?, unseen = unseen + ?, deleted = deleted + ?, size = size + ?,"
                " deleted_size = deleted_size + ? WHERE id = ?",
                (added, added, unseen, deleted, size, deleted_size, box_id),
            )
            row = self.db.execute(
                "SELECT uidvalidity, uidnext, highest_modseq, name, messages, unseen, size FROM mailbox WHERE id = ?",
                (box_id,),
            ).fetchone()
            if row is None:
                raise MailboxNotFound("mailbox no longer exists")
            uidvalidity, modseq = int(row[0]), int(row[2])
            uid = int(row[1]) - added
            counts = MailboxCounts(box_id, str(row[3]), int(row[4]), int(row[5]), int(row[6]), modseq)
            results = []
            for message_id, m, flag_set, when, tree_json, summary in prepared:
                assert summary is not None  # filled in for every message before the rows
                offset = when.utcoffset() or datetime.timedelta(0)
                timestamp = int(when.timestamp())
                tz_minutes = int(offset.total_seconds() // 60)
                self.db.execute(
                    "INSERT INTO message (id, mailbox_id, uid, modseq, flags, size, internal_date, tz_offset,"
                    " part_tree, summary, sent_date, sort_from, sort_subject, thread_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        message_id,
                        box_id,
                        uid,
                        modseq,
                        flags_text(flag_set),
                        len(m.data),
                        timestamp,
                        tz_minutes,
                        tree_json,
                        *summary_columns(self.db, summary, message_id),
                    ),
                )
                results.append(AppendResult(box_id, uidvalidity, uid, modseq))
                stored_when = stored_datetime(timestamp, tz_minutes)
                infos.append(MessageInfo(uid, modseq, flag_set, len(m.data), stored_when, message_id))
                uid += 1
            log_change(self.db, kind, box_id, [r.uid for r in results], modseq, counts=(counts,))
            if delivery_id is not None:
                self._remember_delivery(delivery_id, results[0])
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
        # What a read of the rows would give (the rows were inserted from exactly these values).
        self._notify([MessageAdded(box_id, info) for info in infos], origin)
        await self._durable()
        return results

    def _group_commit(self, write_rows: Callable[[], _T]) -> Deferred[_T]:
        """Runs `write_rows` and commits together with the rows of every other append ready
        by then (one transaction): at the end of this reactor turn, or, while a WAL fsync
        runs, when it has finished (they share the next fsync either way, and more appends
        share each commit's page writes). Fires at the commit, before it is durable. Rows
        are written only just before that commit, so nothing else ever sees them
        uncommitted."""
        d: Deferred[_T] = Deferred()
        self._pending_rows.append((write_rows, d))
        if len(self._pending_rows) == 1:
            if self.index_sync.syncing:
                self.index_sync.before_next(self._commit_now)
            else:
                self._reactor.callLater(0, self._commit_now)
        return d

    def _commit_now(self) -> None:
        batch, self._pending_rows = self._pending_rows, []
        if not batch:
            return  # committed by close()
        if self._closed:
            for _, d in batch:
                d.errback(StoreError("the store is closed"))
            return
        outcomes = self._write_batch(batch)
        try:
            self.db.commit()
        except Exception as e:
            self._mailbox_ids.clear()
            with contextlib.suppress(sqlite3.Error):
                self.db.rollback()
            for d, _, _ in outcomes:
                d.errback(as_unavailable(e, "write the index"))
            return
        with self.index_sync.held():  # the batch's appends wait for one fsync
            for d, value, error in outcomes:
                if error is not None:
                    d.errback(error)
                else:
                    d.callback(value)

    def _write_batch(
        self, batch: list[tuple[Callable[[], Any], Deferred[Any]]]
    ) -> list[tuple[Deferred[Any], object, Exception | None]]:
        """Writes the rows of every append of the batch in the open transaction; an append
        that fails is undone alone. First all at once without a savepoint each (two
        statements per append); when one fails, that is undone and the batch written again
        with one savepoint per append (its rows are written from values fixed beforehand,
        so writing them again gives the same rows)."""
        if not self.db.in_transaction:
            self.db.execute("BEGIN")
            try:
                return [(d, write_rows(), None) for write_rows, d in batch]
            except Exception:
                self._mailbox_ids.clear()
                with contextlib.suppress(sqlite3.Error):
                    self.db.rollback()
        outcomes: list[tuple[Deferred[Any], object, Exception | None]] = []
        for write_rows, d in batch:
            try:
                with self._atomic():
                    outcomes.append((d, write_rows(), None))
            except Exception as e:
                outcomes.append((d, None, e))
        return outcomes
