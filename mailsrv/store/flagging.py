"""STORE (RFC 9051 §6.4.6, RFC 7162 UNCHANGEDSINCE) and EXPUNGE: flag changes with one
modseq per operation, and removal of \\Deleted messages (files unlinked once durable)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from twisted.internet.defer import Deferred, fail, succeed

from mailsrv.store.changelog import log_change
from mailsrv.store.flagset import flags_text, given_flags, merge_flags
from mailsrv.store.interfaces import (
    ChangeKind,
    FlagResult,
    FlagsChanged,
    MessageInfo,
    MessagesExpunged,
)
from mailsrv.store.reading import IndexReads


class FlagWrites(IndexReads):
    """store_flags and expunge."""

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
        given = given_flags(flags)
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
                    (flags_text(new), modseq, m.message_id),
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
