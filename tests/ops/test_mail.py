"""mailsrv.ops.mail on its own (a real SQLite store, no sockets): every function, its errors
and the hook events it publishes; then a subscriber sees an IMAP MOVE and STORE $Junk."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import msgspec
from twisted.trial.unittest import TestCase

from mailsrv.ops import mail
from mailsrv.ops.errors import Exists, InvalidInput, LimitExceeded, NotFound, PermissionDenied, UserError
from mailsrv.store import SQLiteStoreRegistry
from tests.imapserver.harness import Client, make_server, settled

MSG = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


class Recorder:
    """Subscribes to every event type and keeps what it saw."""

    def __init__(self, hooks: mail.MailHooks) -> None:
        self.events: list[Any] = []
        for event_type in (
            mail.MessagesMoved,
            mail.MessagesCopied,
            mail.FlagsChanged,
            mail.MessagesExpunged,
            mail.MailboxCreated,
            mail.MailboxRenamed,
            mail.MailboxDeleted,
            mail.SubscriptionChanged,
        ):
            hooks.subscribe(event_type, self.record)

    def record(self, event: Any) -> None:
        self.events.append(event)

    def take(self) -> list[Any]:
        out, self.events = self.events, []
        return out


class MailOpsTests(TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailsrv-ops-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.quota: int | None = None
        self.registry = SQLiteStoreRegistry(self.dir, lambda account: self.quota)
        self.addCleanup(self.registry.close_all)
        self.store = self.registry.open("alice")
        self.hooks = mail.MailHooks()
        self.seen = Recorder(self.hooks)
        self.ctx = mail.MailContext(self.store, self.hooks)
        self.inbox = self.store.mailbox("INBOX").id

    async def fill(self, count: int, flags: tuple[str, ...] = ()) -> list[int]:
        return [(await self.store.append("INBOX", MSG, flags=flags)).uid for _ in range(count)]

    # --- move and copy ---------------------------------------------------------------------

    async def test_move_into_junk_publishes_with_special_use(self) -> None:
        uids = await self.fill(3)
        result = await mail.move_messages(self.ctx, self.inbox, [uids[0], uids[2], 999], "Junk")
        self.assertEqual(result.source_uids, (1, 3))
        junk = self.store.mailbox("Junk")
        self.assertEqual(self.store.mailbox("INBOX").messages, 1)
        self.assertEqual(junk.messages, 2)
        self.assertEqual(
            self.seen.take(),
            [
                mail.MessagesMoved(
                    account="alice",
                    from_mailbox="INBOX",
                    to_mailbox="Junk",
                    from_special_use=None,
                    to_special_use="\\Junk",
                    uidvalidity=junk.uidvalidity,
                    source_uids=(1, 3),
                    dest_uids=result.dest_uids,
                )
            ],
        )

    async def test_copy_keeps_source_and_publishes(self) -> None:
        uids = await self.fill(2)
        result = await mail.copy_messages(self.ctx, self.inbox, uids, "Archive")
        self.assertEqual(self.store.mailbox("INBOX").messages, 2)
        self.assertEqual(self.store.mailbox("Archive").messages, 2)
        (event,) = self.seen.take()
        self.assertIsInstance(event, mail.MessagesCopied)
        self.assertEqual((event.to_special_use, event.dest_uids), ("\\Archive", result.dest_uids))

    async def test_move_of_nothing_publishes_nothing(self) -> None:
        result = await mail.move_messages(self.ctx, self.inbox, [42], "Junk")
        self.assertEqual(result.source_uids, ())
        self.assertEqual(self.seen.take(), [])

    async def test_move_errors(self) -> None:
        uids = await self.fill(1)
        with self.assertRaises(NotFound):
            await mail.move_messages(self.ctx, self.inbox, uids, "Nope")
        with self.assertRaises(NotFound):
            await mail.copy_messages(self.ctx, 12345, uids, "Junk")
        self.quota = len(MSG) + 1
        with self.assertRaises(LimitExceeded):
            await mail.copy_messages(self.ctx, self.inbox, uids, "Archive")
        self.assertEqual(self.seen.take(), [])

    # --- flags -----------------------------------------------------------------------------

    async def test_junk_keyword_events_name_exactly_what_changed(self) -> None:
        uids = await self.fill(3)
        await mail.add_flags(self.ctx, self.inbox, uids[:1], ["$NotJunk"])
        self.seen.take()
        result = await mail.add_flags(self.ctx, self.inbox, uids, ["$Junk"])
        self.assertEqual(len(result.changed), 3)
        (event,) = self.seen.take()
        self.assertEqual(event, mail.FlagsChanged("alice", "INBOX", None, uids=(1, 2, 3), added=("$Junk",), removed=()))
        # Replacing: one event per distinct change.
        await mail.set_flags(self.ctx, self.inbox, uids[:2], ["$Junk", "\\seen"])
        self.assertEqual(
            sorted((e.uids, e.added, e.removed) for e in self.seen.take()),
            [((1,), ("\\Seen",), ("$NotJunk",)), ((2,), ("\\Seen",), ())],
        )
        await mail.remove_flags(self.ctx, self.inbox, uids, ["$JUNK"])  # keywords compare case-insensitively
        (event,) = self.seen.take()
        self.assertEqual((event.uids, event.added, event.removed), ((1, 2, 3), (), ("$Junk",)))
        # Nothing changes: no event.
        await mail.remove_flags(self.ctx, self.inbox, uids, ["$Junk"])
        self.assertEqual(self.seen.take(), [])

    async def test_flag_events_for_many_messages(self) -> None:
        uids = await self.fill(70)  # over the per-message lookup threshold
        await mail.add_flags(self.ctx, self.inbox, uids, ["\\Flagged"])
        (event,) = self.seen.take()
        self.assertEqual(event.uids, tuple(uids))

    async def test_unchanged_since(self) -> None:
        uids = await self.fill(2)
        modseq = self.store.mailbox("INBOX").highest_modseq
        await mail.add_flags(self.ctx, self.inbox, uids[:1], ["\\Seen"])
        result = await mail.change_flags(self.ctx, self.inbox, uids, "add", ["\\Flagged"], unchanged_since=modseq)
        self.assertEqual(result.modified, (1,))
        self.assertEqual([m.uid for m in result.changed], [2])

    async def test_flag_errors(self) -> None:
        for bad in (["\\Recent"], ["\\Bogus"], [""], ["two words"], ["x(y"], ["é"], ["k" * 256], ["a"] * 101):
            with self.assertRaises(InvalidInput, msg=repr(bad)):
                await mail.add_flags(self.ctx, self.inbox, [1], bad)
        with self.assertRaises(InvalidInput):
            await mail.change_flags(self.ctx, self.inbox, [1], "toggle", ["\\Seen"])  # type: ignore[arg-type]
        with self.assertRaises(NotFound):
            await mail.add_flags(self.ctx, 12345, [1], ["\\Seen"])
        self.assertEqual(mail.canonical_flags(["\\SEEN", "$Junk"]), ["\\Seen", "$Junk"])

    async def test_subscriber_failure_does_not_fail_the_change(self) -> None:
        uids = await self.fill(1)

        def broken(event: mail.FlagsChanged) -> None:
            raise RuntimeError("subscriber bug")

        unsubscribe = self.hooks.subscribe(mail.FlagsChanged, broken)
        await mail.add_flags(self.ctx, self.inbox, uids, ["$Junk"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(len(self.seen.take()), 1)  # the other subscriber still ran
        unsubscribe()
        unsubscribe()  # twice is harmless
        await mail.add_flags(self.ctx, self.inbox, uids, ["$Other"])
        self.assertEqual(self.flushLoggedErrors(RuntimeError), [])

    # --- delete and expunge ----------------------------------------------------------------

    async def test_expunge_and_delete(self) -> None:
        uids = await self.fill(4)
        await mail.add_flags(self.ctx, self.inbox, uids[:2], ["\\Deleted"])
        self.seen.take()
        self.assertEqual(await mail.expunge(self.ctx, self.inbox, [uids[1]]), (2,))
        self.assertEqual(self.seen.take(), [mail.MessagesExpunged("alice", "INBOX", (2,))])
        self.assertEqual(await mail.expunge(self.ctx, self.inbox), (1,))
        self.seen.take()
        self.assertEqual(await mail.expunge(self.ctx, self.inbox), ())
        self.assertEqual(self.seen.take(), [])
        # delete_messages removes exactly the named ones, even if others are \Deleted.
        await mail.add_flags(self.ctx, self.inbox, [uids[3]], ["\\Deleted"])
        self.assertEqual(await mail.delete_messages(self.ctx, self.inbox, [uids[2]]), (3,))
        self.assertEqual([m.uid for m in self.store.messages(self.inbox)], [4])
        self.assertEqual(await mail.delete_messages(self.ctx, self.inbox, []), ())
        with self.assertRaises(NotFound):
            await mail.expunge(self.ctx, 12345)

    # --- mailboxes ---------------------------------------------------------------------------

    async def test_mailbox_lifecycle(self) -> None:
        info = await mail.create_mailbox(self.ctx, "Projects/2026")
        self.assertEqual(info.name, "Projects/2026")
        await mail.rename_mailbox(self.ctx, "Projects", "Work")
        self.assertIn("Work/2026", [m.name for m in self.store.mailboxes()])
        await mail.set_subscribed(self.ctx, "Work/2026", True)
        await mail.set_subscribed(self.ctx, "Not/There", True)  # allowed (RFC 9051 §6.3.7)
        self.assertIn("Not/There", self.store.subscriptions())
        await mail.set_subscribed(self.ctx, "Not/There", False)
        await mail.delete_mailbox(self.ctx, "Work/2026")
        self.assertEqual(
            self.seen.take(),
            [
                mail.MailboxCreated("alice", "Projects/2026"),
                mail.MailboxRenamed("alice", "Projects", "Work"),
                mail.SubscriptionChanged("alice", "Work/2026", True),
                mail.SubscriptionChanged("alice", "Not/There", True),
                mail.SubscriptionChanged("alice", "Not/There", False),
                mail.MailboxDeleted("alice", "Work/2026"),
            ],
        )

    async def test_mailbox_errors(self) -> None:
        with self.assertRaises(Exists):
            await mail.create_mailbox(self.ctx, "inbox")
        with self.assertRaises(Exists):
            await mail.create_mailbox(self.ctx, "Junk")
        for bad in ("", "a//b", "/a", "a*", "x\x01"):
            with self.assertRaises(InvalidInput, msg=repr(bad)):
                await mail.create_mailbox(self.ctx, bad)
        with self.assertRaises(Exists):
            await mail.rename_mailbox(self.ctx, "Junk", "INBOX")
        with self.assertRaises(Exists):
            await mail.rename_mailbox(self.ctx, "Junk", "Trash")
        with self.assertRaises(NotFound):
            await mail.rename_mailbox(self.ctx, "Nope", "Other")
        with self.assertRaises(InvalidInput):
            await mail.rename_mailbox(self.ctx, "Junk", "Junk/child")
        with self.assertRaises(PermissionDenied):
            await mail.delete_mailbox(self.ctx, "INBOX")
        with self.assertRaises(NotFound):
            await mail.delete_mailbox(self.ctx, "Nope")
        with self.assertRaises(InvalidInput):
            await mail.set_subscribed(self.ctx, "", True)
        self.assertEqual(self.seen.take(), [])

    def test_errors_are_user_errors_with_codes(self) -> None:
        self.assertTrue(issubclass(mail.HasChildren, UserError))
        self.assertEqual(mail.HasChildren("x").code, "hasChildren")

    def test_events_encode_as_json(self) -> None:
        event = mail.FlagsChanged("alice", "INBOX", None, (1,), ("$Junk",), ())
        wire = msgspec.json.encode(event)
        self.assertIn(b'"type":"flagsChanged"', wire)
        self.assertEqual(msgspec.json.decode(wire, type=mail.MailEvent), event)


async def _wait_for(c: Client, needle: bytes) -> bytes:
    c.settle()  # the store's work runs on the harness clock
    out = c.take()
    if needle not in out:
        raise AssertionError(f"{needle!r} not in {out!r}")
    return out


class IMAPHooksTests(TestCase):
    """What a junk filter subscribed to the server's hooks sees of IMAP commands."""

    async def test_subscriber_sees_imap_move_and_store_junk(self) -> None:
        server = make_server(Path(self.mktemp()))
        self.addCleanup(server.stores.close_all)
        seen = Recorder(server.mail_hooks)
        store = server.stores.open("alice")
        for _ in range(3):
            settled(server, store.append("INBOX", MSG))
        c = Client(server)
        c.login()
        c.cmd("s SELECT INBOX")
        out = c.cmd("f STORE 2 +FLAGS ($Junk)")
        self.assertIn(b"f OK", out)
        c.session.dataReceived(b"m UID MOVE 1:2 Junk\r\n")
        await _wait_for(c, b"m OK")
        flags, moved = seen.take()
        self.assertEqual(flags, mail.FlagsChanged("alice", "INBOX", None, uids=(2,), added=("$Junk",), removed=()))
        self.assertIsInstance(moved, mail.MessagesMoved)
        self.assertEqual((moved.from_mailbox, moved.to_special_use, moved.source_uids), ("INBOX", "\\Junk", (1, 2)))
        c.cmd("e EXPUNGE")
        self.assertEqual(seen.take(), [])  # nothing was \Deleted
        c.cmd("c CREATE Later")
        self.assertEqual(seen.take(), [mail.MailboxCreated("alice", "Later")])
