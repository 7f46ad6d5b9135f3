"""Reads of the index and of message files: mailboxes, message lists (kept per mailbox
and caught up by modseq), changes since a modseq, part trees, ranged bodies and body scans in
the files pool; each with its Deferred form."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred

from mailsrv.message.part import Part
from mailsrv.store.core import IndexCore
from mailsrv.store.flagset import flags_set
from mailsrv.store.interfaces import (
    Changes,
    InvalidRequest,
    MailboxInfo,
    MailboxNotFound,
    MessageInfo,
    StoreError,
)
from mailsrv.store.names import normalize_mailbox_name
from mailsrv.store.snapshot import Snapshot

_MSG_COLUMNS = "uid, modseq, flags, size, internal_date, tz_offset, id"


@functools.lru_cache(maxsize=64)
def _zone(minutes: int) -> datetime.timezone:
    return datetime.timezone(datetime.timedelta(minutes=minutes))


def stored_datetime(timestamp: int, tz_offset: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, _zone(tz_offset))


class IndexReads(IndexCore):
    """The reads (synchronous for IMAP hot paths, Deferred for ops/ and the web)."""

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

    # The subscription comes in the same statement (one query per mailbox read, not two).
    _MB_COLUMNS = (
        "id, name, special_use, uidvalidity, uidnext, highest_modseq, messages, unseen, deleted, size, deleted_size,"
        " EXISTS (SELECT 1 FROM subscription WHERE subscription.name = mailbox.name)"
    )

    def _mailbox_row(self, row: Any) -> MailboxInfo:
        name = str(row[1])
        subscribed = bool(row[11])
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

    def _mailbox_id(self, name: str) -> int:
        """The id of mailbox `name` (MailboxNotFound), remembered until a mailbox is created,
        renamed or deleted: every append needs it, and a query per append cost the reactor
        more than the rest of finding where the message goes."""
        mailbox_id = self._mailbox_ids.get(name)
        if mailbox_id is None:
            mailbox_id = self._mailbox_ids[name] = self.mailbox(name).id
        return mailbox_id

    def mailbox_by_id(self, mailbox_id: int) -> MailboxInfo:
        row = self.db.execute(f"SELECT {self._MB_COLUMNS} FROM mailbox WHERE id = ?", (mailbox_id,)).fetchone()
        if row is None:
            raise MailboxNotFound("mailbox no longer exists")
        return self._mailbox_row(row)

    def subscriptions(self) -> list[str]:
        return [str(r[0]) for r in self.db.execute("SELECT name FROM subscription ORDER BY name")]

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

    @staticmethod
    def _message_row(row: Any) -> MessageInfo:
        # Hot: a SELECT or large FETCH builds one per message. SQLite already returns ints.
        uid, modseq, flags, size, date, tz_offset, message_id = row
        return MessageInfo(uid, modseq, flags_set(flags), size, stored_datetime(date, tz_offset), message_id)

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
        self._snapshots[mailbox_id] = Snapshot(uidvalidity, modseq, {m.uid: m for m in messages})
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

    def changes_since(self, mailbox_id: int, modseq: int) -> Changes:
        rows = self.db.execute(
            f"SELECT {_MSG_COLUMNS} FROM message WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
            (mailbox_id, modseq),
        ).fetchall()
        vanished = self.db.execute(
            "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid", (mailbox_id, modseq)
        ).fetchall()
        return Changes(tuple(self._message_row(r) for r in rows), tuple(int(r[0]) for r in vanished))

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
