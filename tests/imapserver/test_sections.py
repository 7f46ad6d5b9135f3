"""FETCH BODY[section] part numbering around message/rfc822 (issue 11 defect 1, RFC 9051
§6.4.5) and NUL bytes in literals (defect 9), in process over StringTransport."""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.imapserver.harness import Client, make_server, settled

INNER2 = b"From: deep@example.org\r\nSubject: deepest\r\n\r\ndeep text\r\n"
INNER = (
    b"From: inner@example.org\r\nSubject: inner\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="in"\r\n\r\n'
    b"--in\r\nContent-Type: text/plain\r\n\r\ninner one\r\n"
    b"--in\r\nContent-Type: message/rfc822\r\n\r\n" + INNER2 + b"--in--\r\n"
)
# The whole message is a message/rfc822: its part 1 is the encapsulated message.
WRAPPED = (
    b"From: outer@example.org\r\nSubject: wrapper\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n" + INNER
)
# A multipart whose part 2 is a message/rfc822.
MIXED = (
    b'From: outer@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="out"\r\n\r\n'
    b"--out\r\nContent-Type: text/plain\r\n\r\nouter text\r\n"
    b"--out\r\nContent-Type: message/rfc822\r\nContent-Description: fwd\r\n\r\n" + INNER + b"\r\n--out--\r\n"
)
WITH_NUL = (
    b'From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"ab\x00cd\x00e\r\n--b--\r\n"
)


def section(out: bytes, spec: bytes) -> bytes | None:
    """The data of BODY[spec]/BINARY[spec] in a FETCH response: literal bytes, or None for NIL."""
    i = out.index(spec + b" ") + len(spec) + 1
    if out.startswith(b"NIL", i):
        return None
    m = re.compile(rb"~?\{(\d+)\}\r\n").match(out, i)
    assert m, out[i : i + 40]
    return out[m.end() : m.end() + int(m.group(1))]


class SectionsTest(TestCase):
    def setUp(self) -> None:
        self.server = make_server(Path(self.mktemp()))
        self.addCleanup(self.server.stores.close_all)
        self.store = self.server.stores.open("alice")

    async def fetch(self, message: bytes, *specs: str) -> dict[str, bytes | None]:
        settled(self.server, self.store.append("INBOX", message))
        c = Client(self.server)
        c.login()
        c.cmd("s SELECT INBOX")
        out: dict[str, bytes | None] = {}
        for spec in specs:
            raw = c.cmd(f"f FETCH * (BODY.PEEK[{spec}])")
            self.assertIn(b"f OK", raw)
            out[spec] = section(raw, f"BODY[{spec}]".encode())
        return out

    async def test_whole_message_that_is_a_message_rfc822(self) -> None:
        got = await self.fetch(WRAPPED, "1", "1.HEADER", "1.TEXT", "1.HEADER.FIELDS (SUBJECT)", "1.1", "1.2")
        self.assertEqual(got["1"], INNER)
        self.assertEqual(got["1.HEADER"], INNER[: INNER.index(b"\r\n\r\n") + 4])
        self.assertEqual(got["1.TEXT"], INNER[INNER.index(b"\r\n\r\n") + 4 :])
        self.assertEqual(got["1.HEADER.FIELDS (SUBJECT)"], b"Subject: inner\r\n\r\n")
        self.assertEqual(got["1.1"], b"inner one")
        # The CRLF before a boundary belongs to the delimiter (RFC 2046 §5.1.1).
        self.assertEqual(got["1.2"], INNER2[:-2])

    async def test_message_rfc822_part_and_nested_ones(self) -> None:
        got = await self.fetch(
            MIXED,
            "2",
            "2.MIME",
            "2.HEADER",
            "2.TEXT",
            "2.1",
            "2.1.MIME",
            "2.2",
            "2.2.HEADER",
            "2.2.TEXT",
            "2.2.1",
            "2.3",
            "3",
        )
        self.assertEqual(got["2"], INNER)
        self.assertEqual(got["2.MIME"], b"Content-Type: message/rfc822\r\nContent-Description: fwd\r\n\r\n")
        self.assertEqual(got["2.HEADER"], INNER[: INNER.index(b"\r\n\r\n") + 4])
        self.assertEqual(got["2.TEXT"], INNER[INNER.index(b"\r\n\r\n") + 4 :])
        self.assertEqual(got["2.1"], b"inner one")
        self.assertEqual(got["2.1.MIME"], b"Content-Type: text/plain\r\n\r\n")
        self.assertEqual(got["2.2"], INNER2[:-2])
        self.assertEqual(got["2.2.HEADER"], b"From: deep@example.org\r\nSubject: deepest\r\n\r\n")
        self.assertEqual(got["2.2.TEXT"], b"deep text")
        self.assertEqual(got["2.2.1"], b"deep text")
        self.assertIsNone(got["2.3"])
        self.assertIsNone(got["3"])

    async def test_nul_only_in_a_binary_literal(self) -> None:
        settled(self.server, self.store.append("INBOX", WITH_NUL))
        c = Client(self.server)
        c.login()
        c.cmd("s SELECT INBOX")
        out = c.cmd("f FETCH 1 (BODY.PEEK[1] BODY.PEEK[] RFC822.TEXT)")
        self.assertNotIn(b"\x00", out)
        self.assertEqual(section(out, b"BODY[1]"), b"ab\x80cd\x80e")
        out = c.cmd("b FETCH 1 (BINARY.PEEK[1])")
        self.assertIn(b"BINARY[1] ~{7}\r\nab\x00cd\x00e", out)

    async def test_binary_of_quoted_printable(self) -> None:
        # Issue 11 defect 5: trailing whitespace is transport padding, "=" + whitespace a soft break.
        body = b"Trailing spaces go   \r\nsoft = \r\nbreak=\t\r\nrest=3D\r\n"
        message = (
            b"From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body
        )
        settled(self.server, self.store.append("INBOX", message))
        c = Client(self.server)
        c.login()
        c.cmd("s SELECT INBOX")
        expected = b"Trailing spaces go\r\nsoft breakrest=\r\n"
        out = c.cmd("f FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])")
        self.assertEqual(section(out, b"BINARY[1]"), expected)
        self.assertIn(b"BINARY.SIZE[1] %d" % len(expected), out)
