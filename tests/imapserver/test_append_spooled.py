"""APPEND literals of STREAM_THRESHOLD (1 MiB) or more are written to a spool file as they
arrive and copied from there into the store (issue 17 item 7): the stored message is the
same, with MULTIAPPEND, UTF8 and CATENATE (mixed with small literals and URLs); a NUL is
refused in a spooled plain literal as in one held in memory, and allowed in a literal8.
In-process over StringTransport, the store on the harness clock."""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import TestCase

from mailsrv.imapserver import session as session_module
from mailsrv.imapserver.commandreader import CommandAssembler, CommandReady
from mailsrv.spool import STREAM_THRESHOLD, Spool
from tests.imapserver.harness import Client, make_server
from tests.imapserver.test_append_ext import lit, wait_for

SMALL = b"From: a@example.org\r\nSubject: small\r\n\r\nfirst\r\n"


def big(fill: bytes, size: int = STREAM_THRESHOLD + 1000) -> bytes:
    head = b"From: b@example.org\r\nSubject: big\r\n\r\n"
    line = fill * 78 + b"\r\n"
    return head + line * ((size - len(head)) // len(line) + 1)


class SpooledAppendTest(TestCase):
    def setUp(self) -> None:
        self.server = make_server(Path(self.mktemp()))
        self.addCleanup(self.server.stores.close_all)
        self.client = Client(self.server)
        self.client.login()

    async def command(self, tag: str, command: bytes) -> bytes:
        self.client.session.dataReceived(tag.encode() + b" " + command + b"\r\n")
        return await wait_for(self.client, f"{tag} ".encode())

    def inbox(self) -> list[bytes]:
        store = self.server.stores.open("alice")
        box = store.mailbox("INBOX")
        return [store.read(m.message_id) for m in store.messages(box.id)]

    async def test_multiappend_and_utf8_of_spooled_literals(self) -> None:
        made: list[Spool] = []

        class CountedSpool(Spool):
            def __init__(self, directory: Path) -> None:
                super().__init__(directory)
                made.append(self)

        self.patch(session_module, "Spool", CountedSpool)
        one, two = big(b"x"), big(b"y", 2 * STREAM_THRESHOLD)
        out = await self.command("a", b"APPEND INBOX " + lit(one) + b" " + lit(SMALL) + b" UTF8 (~" + lit(two) + b")")
        self.assertIn(b"a OK [APPENDUID", out)
        self.assertEqual(self.inbox(), [one, SMALL, two])
        self.assertEqual(len(made), 2)  # the two large ones went to spool files
        self.assertEqual(self.client.session._command_spools, [])  # closed with the command
        self.assertTrue(all(spool.size == 0 for spool in made))

    async def test_catenate_with_a_spooled_text_part(self) -> None:
        await self.command("a", b"APPEND INBOX " + lit(SMALL))
        middle = big(b"z")
        out = await self.command(
            "b",
            b"APPEND INBOX CATENATE (TEXT "
            + lit(b"X-Head: 1\r\n")
            + b" TEXT "
            + lit(middle)
            + b' URL "/INBOX;UIDVALIDITY='
            + str(self.uidvalidity()).encode()
            + b'/;UID=1")',
        )
        self.assertIn(b"b OK [APPENDUID", out)
        self.assertEqual(self.inbox()[1], b"X-Head: 1\r\n" + middle + SMALL)

    async def test_a_nul_only_in_a_literal8(self) -> None:
        with_nul = big(b"n")[:-10] + b"\x00" + big(b"n")[-9:]
        out = await self.command("a", b"APPEND INBOX " + lit(with_nul))
        self.assertIn(b"a BAD", out)
        self.assertEqual(self.inbox(), [])
        out = await self.command("b", b"APPEND INBOX ~" + lit(with_nul))
        self.assertIn(b"b OK", out)
        self.assertEqual(self.inbox(), [with_nul])

    def uidvalidity(self) -> int:
        return self.server.stores.open("alice").mailbox("INBOX").uidvalidity


def test_the_assembler_spools_only_what_it_is_told_to(tmp_path: Path) -> None:
    asked: list[tuple[bytes, int]] = []

    def spool_literal(first_line: bytes, size: int) -> Spool | None:
        asked.append((first_line, size))
        return Spool(tmp_path) if size >= 10 else None

    assembler = CommandAssembler(1000, lambda line: 10_000, None, spool_literal)
    assembler.feed(b"a APPEND INBOX {3+}\r\nabc {12+}\r\n0123456789AB {2+}\r\nxy\r\n")
    event = assembler.next_event()
    assert isinstance(event, CommandReady)
    # The spooled literal is absent from the data; its offset says where it belongs.
    assert event.data == b"a APPEND INBOX {3+}\r\nabc {12+}\r\n {2+}\r\nxy"
    [(offset, spooled)] = event.spooled.items()
    assert offset == len(b"a APPEND INBOX {3+}\r\nabc {12+}\r\n")
    assert spooled.spool.source().read() == b"0123456789AB" and not spooled.has_nul
    assert [size for _, size in asked] == [3, 12, 2]
    spooled.spool.discard()
