"""The account's change log: a consumer that reconnects with the last sequence number it saw
gets exactly the changes it missed, in order, with deliveries told from other writes, moves as
moves and the mailbox counters after each change; one that fell behind a trimmed log (or names
a number the log never had) is told to reload."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from mailsrv.pools import inline_pools
from mailsrv.store import SQLiteStoreRegistry, changelog
from mailsrv.store.interfaces import ChangeFeed, ChangeKind, InvalidRequest, LoggedChange

MSG = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


class ChangeLogTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-log-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.clock = Clock()
        self.registry = SQLiteStoreRegistry(self.dir, reactor=self.clock, pools=inline_pools())
        self.addCleanup(self.registry.close_all)
        self.store = self.registry.open("alice")

    def done(self, d: Any) -> Any:
        self.clock.advance(0)
        return self.successResultOf(d)

    def feed(self, seq: int, limit: int = 1000) -> ChangeFeed:
        result: ChangeFeed = self.successResultOf(self.store.changes_after(seq, limit))
        return result

    def read_all(self, seq: int, limit: int) -> tuple[list[LoggedChange], int]:
        """What a consumer reading pages of `limit` from `seq` collects."""
        seen: list[LoggedChange] = []
        while True:
            page = self.feed(seq, limit)
            self.assertFalse(page.reload)
            seen.extend(page.changes)
            seq = page.next_seq
            if not page.more:
                return seen, seq

    def test_reconnect_gets_exactly_what_it_missed(self) -> None:
        s = self.store
        self.assertEqual(self.successResultOf(s.last_change()), 0)
        s.append("INBOX", MSG, delivery=True)
        self.done(s.append("INBOX", MSG, flags=["\\Seen"], delivery=True))
        # The consumer saw everything up to here, then disconnects.
        seen, last_seen = self.read_all(0, 1000)
        self.assertEqual([c.kind for c in seen], [ChangeKind.DELIVERED, ChangeKind.DELIVERED])
        inbox = s.mailbox("INBOX")
        # What happens while it is away: every kind of change.
        self.done(s.append("Drafts", MSG))  # a client's APPEND, not new mail
        self.done(s.store_flags(inbox.id, [1], "add", ["\\Seen", "$Work"]))
        self.done(s.copy(inbox.id, [1], "Archive"))
        self.done(s.move(inbox.id, [2], "Trash"))
        self.done(s.store_flags(inbox.id, [1], "add", ["\\Deleted"]))
        self.done(s.expunge(inbox.id))
        self.done(s.create_mailbox("Work/2026"))
        self.done(s.rename_mailbox("Work", "Play"))
        self.done(s.set_subscribed("Play", True))
        self.done(s.delete_mailbox("Play/2026"))
        # Reconnecting with the last seq it saw, in small pages: exactly the missed changes.
        missed, next_seq = self.read_all(last_seen, 3)
        self.assertEqual(
            [c.kind for c in missed],
            [
                ChangeKind.APPENDED,
                ChangeKind.FLAGS,
                ChangeKind.COPIED,
                ChangeKind.MOVED,
                ChangeKind.FLAGS,
                ChangeKind.EXPUNGED,
                ChangeKind.MAILBOXES,
                ChangeKind.MAILBOXES,
                ChangeKind.MAILBOXES,
                ChangeKind.MAILBOXES,
            ],
        )
        self.assertEqual([c.seq for c in missed], list(range(last_seen + 1, last_seen + 11)))
        self.assertEqual(next_seq, self.successResultOf(s.last_change()))
        trash = s.mailbox("Trash")
        moved = missed[3]
        self.assertEqual(
            (moved.mailbox_id, moved.uids, moved.to_mailbox_id, moved.to_uids), (inbox.id, (2,), trash.id, (1,))
        )
        # Counters after the move: INBOX lost one, Trash gained one.
        counts = {c.name: (c.messages, c.unseen) for c in moved.counts}
        self.assertEqual(counts, {"INBOX": (1, 0), "Trash": (1, 0)})
        self.assertEqual(missed[1].uids, (1,))
        self.assertEqual(
            [c.names for c in missed[6:]],
            [("Work", "Work/2026"), ("Work", "Play", "Work/2026", "Play/2026"), ("Play",), ("Play/2026",)],
        )
        # Nothing new: an empty page, same seq.
        page = self.feed(next_seq)
        self.assertEqual((page.changes, page.next_seq, page.more, page.reload), ((), next_seq, False, False))
        # A consumer that starts later starts at last_change and gets only what follows.
        self.done(s.append("INBOX", MSG, delivery=True))
        page = self.feed(next_seq)
        self.assertEqual([(c.kind, c.counts[0].messages) for c in page.changes], [(ChangeKind.DELIVERED, 1)])

    def test_trimmed_log_or_unknown_seq_means_reload(self) -> None:
        s = self.store
        self.patch(changelog, "KEEP", 10)
        self.patch(changelog, "_TRIM_EVERY", 4)
        self.done(s.append("INBOX", MSG))
        inbox = s.mailbox("INBOX")
        for i in range(30):
            self.done(s.store_flags(inbox.id, [1], "remove" if i % 2 else "add", ["\\Flagged"]))
        last = self.successResultOf(s.last_change())
        self.assertEqual(last, 31)
        # seq 28 was the last trim (28 - 10 = 18 trimmed): 18 and later resume, 17 reloads.
        self.assertFalse(self.feed(18).reload)
        self.assertEqual([c.seq for c in self.feed(18).changes], list(range(19, 32)))
        for stale in (0, 5, 17):
            page = self.feed(stale)
            self.assertTrue(page.reload)
            self.assertEqual((page.changes, page.next_seq), ((), last))
        # A number the log never had (a restored backup, another account's seq): reload too.
        self.assertTrue(self.feed(last + 1).reload)
        self.assertTrue(self.feed(-1).reload)
        # After a reload the consumer continues from next_seq like any other.
        self.done(s.expunge(inbox.id))
        self.assertEqual(self.feed(last).changes, ())  # nothing was \Deleted
        for bad in (0, 10_001):
            self.assertIsInstance(self.failureResultOf(s.changes_after(0, bad)).value, InvalidRequest)

    def test_log_survives_reopen_and_change_is_atomic_with_it(self) -> None:
        s = self.store
        self.done(s.append("INBOX", MSG, delivery=True))
        inbox = s.mailbox("INBOX")
        # A failing change logs nothing.
        self.failureResultOf(s.store_flags(inbox.id + 999, [1], "add", ["\\Seen"]))
        self.assertEqual(self.successResultOf(s.last_change()), 1)
        self.registry.close_all()
        s = self.registry.open("alice")
        self.store = s
        self.assertEqual([c.kind for c in self.feed(0).changes], [ChangeKind.DELIVERED])
        self.done(s.store_flags(inbox.id, [1], "add", ["\\Seen"]))
        self.assertEqual([c.seq for c in self.feed(1).changes], [2])

    def test_seq_goes_on_from_an_index_that_kept_it_in_meta(self) -> None:
        # Indexes of before kept the last seq in meta.change_seq (updated with every change);
        # seqs now follow the log's highest, and never go back below that old counter.
        s = self.store
        self.done(s.append("INBOX", MSG))
        s.db.execute("DELETE FROM change_log")
        s.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('change_seq', 500)")
        s.db.commit()
        self.assertEqual(self.successResultOf(s.last_change()), 500)
        self.assertEqual(self.feed(500).changes, ())
        self.done(s.append("INBOX", MSG, delivery=True))
        self.assertEqual([c.seq for c in self.feed(500).changes], [501])
        self.done(s.append("INBOX", MSG))
        self.assertEqual(self.successResultOf(s.last_change()), 502)
