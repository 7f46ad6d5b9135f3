"""Creating, renaming, deleting and subscribing mailboxes (RFC 9051 §6.3.4-§6.3.8)."""

from __future__ import annotations

import time

from twisted.internet.defer import Deferred

from mailsrv.store.changelog import log_change
from mailsrv.store.interfaces import (
    DEFAULT_MAILBOXES,
    ChangeKind,
    MailboxesChanged,
    MailboxExists,
    MailboxInfo,
    MailboxNameInvalid,
    MessagesExpunged,
    StoreError,
)
from mailsrv.store.names import check_mailbox_name, like_prefix, normalize_mailbox_name
from mailsrv.store.transfer import Transfers


class MailboxWrites(Transfers):
    """Mailbox create/rename/delete/subscribe (renaming INBOX moves its messages)."""

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
        self._mailboxes_changed()
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

    def _ensure_default_mailboxes(self) -> None:
        if self.db.execute("SELECT COUNT(*) FROM mailbox").fetchone()[0]:
            return
        for name, special_use in DEFAULT_MAILBOXES:
            self._insert_mailbox(name, special_use, subscribed=True)
        self.db.commit()

    def create_mailbox(self, name: str, special_use: str | None = None) -> Deferred[MailboxInfo]:
        name = normalize_mailbox_name(name)
        check_mailbox_name(name)
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
        check_mailbox_name(new)
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
            "SELECT id, name FROM mailbox WHERE name LIKE ? ESCAPE '\\'", (like_prefix(old + "/"),)
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
            self._mailboxes_changed()
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
            self._mailboxes_changed()
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
