"""COPY and MOVE (RFC 4315 COPYUID, RFC 6851): copies share the file by a hard link;
a move changes index rows only, atomically for observers."""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.defer import Deferred, ensureDeferred

from mailsrv.store.changelog import log_change
from mailsrv.store.interfaces import (
    Change,
    ChangeKind,
    CopyResult,
    MailboxNotFound,
    MessageAdded,
    MessagesExpunged,
)
from mailsrv.store.reading import IndexReads


class Transfers(IndexReads):
    """copy, move and the row move that RENAME INBOX uses too."""

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
