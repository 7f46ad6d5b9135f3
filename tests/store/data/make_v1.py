"""Writes the version-1 account fixture of tests/store/test_migration.py.

Run with the version-1 store on the path (a checkout of commit c7e7839):
`PYTHONPATH=<checkout> python3 tests/store/data/make_v1.py OUT`, then copy OUT/accounts/bob to
tests/store/data/v1-account/bob. Not a test; kept so that the fixture can be made again.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from mailsrv.store import SQLiteStoreRegistry

MESSAGES = [
    (
        "INBOX",
        b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: Plans\r\n"
        b"Date: Mon, 4 Mar 2024 10:00:00 +0100\r\nMessage-ID: <p1@example.org>\r\n\r\nLet us meet on Friday.\r\n",
        ["\\Seen"],
    ),
    (
        "Sent",
        b"From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: Re: Plans\r\n"
        b"Date: Mon, 4 Mar 2024 11:00:00 +0100\r\nMessage-ID: <p2@example.org>\r\nIn-Reply-To: <p1@example.org>\r\n"
        b"References: <p1@example.org>\r\n\r\n> Let us meet on Friday.\r\nFriday is fine.\r\n",
        ["\\Seen"],
    ),
    (
        "INBOX",
        b"From: =?utf-8?q?=C3=89mile?= <emile@example.org>\r\nTo: bob@example.org\r\nSubject: Photos\r\n"
        b"Date: Tue, 5 Mar 2024 09:00:00 +0000\r\nMessage-ID: <ph@example.org>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<p>Here <b>they</b> are.</p>\r\n--b\r\nContent-Type: image/jpeg; name=a.jpg\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n/9j/4AAQ\r\n--b--\r\n",
        [],
    ),
    (
        "INBOX",
        b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: Re: Plans\r\n"
        b"Date: Mon, 4 Mar 2024 12:00:00 +0100\r\nMessage-ID: <p3@example.org>\r\nIn-Reply-To: <p2@example.org>\r\n"
        b"References: <p1@example.org>\r\n <p2@example.org>\r\n\r\nSee you.\r\n",
        ["$Important"],
    ),
    ("INBOX", b"From: x@example.net\r\nSubject: gone\r\n\r\nexpunged\r\n", ["\\Deleted"]),
]


async def main(out: Path) -> None:
    registry = SQLiteStoreRegistry(out)
    store = registry.open("bob")
    for i, (mailbox, data, flags) in enumerate(MESSAGES):
        await store.append(mailbox, data, flags, datetime.datetime(2024, 3, 6, 8, i, tzinfo=datetime.UTC))
    store.expunge(store.mailbox("INBOX").id)
    await deferLater(reactor, 0.5, lambda: None)  # the expunged file's unlink runs in a thread
    registry.close_all()


if __name__ == "__main__":
    defer.ensureDeferred(main(Path(sys.argv[1]))).addBoth(lambda _: reactor.stop())  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
