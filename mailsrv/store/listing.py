"""Summaries and sorted listing (webmail lists, IMAP SORT/THREAD), threads, the change
log reads (the migration that fills summaries in is `migration.py`)."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Sequence
from typing import Any

import msgspec
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from mailsrv.store import changelog
from mailsrv.store.flagset import flags_set
from mailsrv.store.interfaces import (
    ChangeFeed,
    InvalidRequest,
    MessagePage,
    MessageSummary,
    SortKey,
    Summary,
)
from mailsrv.store.reading import IndexReads
from mailsrv.store.summary import base_subject, sort_from
from mailsrv.store.thread import assign_thread

log = Logger()


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


def summary_columns(db: sqlite3.Connection, summary: Summary, message_id: int) -> tuple[object, ...]:
    """summary, sent_date, sort_from, sort_subject, thread_id of a row being inserted."""
    subject = base_subject(summary.subject)
    thread = assign_thread(db, summary, message_id, subject)
    # subject[0].casefold() is summary.sort_subject(summary), without a second base_subject.
    return (_encode_summary(summary).decode(), summary.date, sort_from(summary), subject[0].casefold(), thread)


class Listing(IndexReads):
    """summaries, list_messages, find_message, thread, changes_after."""

    @staticmethod
    def _summary_row(row: Any) -> MessageSummary:
        message_id, mailbox_id, uid, modseq, flags, size, internal_date, thread_id, summary = row
        return MessageSummary(
            id=message_id,
            mailbox_id=mailbox_id,
            uid=uid,
            modseq=modseq,
            flags=tuple(sorted(flags_set(flags))),
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

    def changes_after(self, seq: int, limit: int = 1000) -> Deferred[ChangeFeed]:
        return self._read(changelog.changes_after, self.db, seq, limit)

    def last_change(self) -> Deferred[int]:
        return succeed(changelog.last_change(self.db))
