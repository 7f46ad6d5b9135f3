"""SORT, THREAD and MULTIAPPEND against the real daemon with imapclient, as a mail client
that uses them would (imapclient's multiappend, sort and thread methods)."""

from __future__ import annotations

import imapclient

from tests.daemon import RunningDaemon


def message(n: int, subject: str, sender: str, refs: str = "") -> bytes:
    headers = f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\nMessage-ID: <{n}@test>\r\n"
    headers += f"Date: Mon, {n} Nov 2026 10:00:00 +0000\r\n" + (f"References: {refs}\r\n" if refs else "")
    return (headers + "\r\nbody\r\n").encode()


def test_multiappend_sort_and_thread_with_imapclient(daemon: RunningDaemon) -> None:
    client = imapclient.IMAPClient("127.0.0.1", port=daemon.ports["imaps"], ssl_context=daemon.ssl_context())
    client.login("alice@example.org", "alicepass")
    caps = client.capabilities()
    for cap in (b"MULTIAPPEND", b"SORT", b"SORT=DISPLAY", b"ESORT", b"THREAD=REFERENCES", b"CONTEXT=SORT"):
        assert cap in caps, cap
    client.multiappend(
        "INBOX",
        [
            message(2, "Plans", "Zoe <zoe@example.org>"),
            message(3, "Re: Plans", "bob@example.org", "<2@test>"),
            {"msg": message(1, "[team] Agenda", "carl@example.org"), "flags": ("\\Seen",)},
            message(4, "Re: Re: Plans", "ann@example.org", "<2@test> <3@test>"),
        ],
    )
    client.select_folder("INBOX")
    assert client.sort(["SUBJECT", "DATE"]) == [3, 1, 2, 4]  # Agenda, then Plans by date
    assert client.sort(["REVERSE", "DATE"]) == [4, 2, 1, 3]
    assert client.sort(["DISPLAYFROM"]) == [4, 2, 3, 1]  # ann, bob, carl, Zoe
    assert client.sort(["FROM"], "UNSEEN") == [4, 2, 1]  # ann, bob, zoe
    assert client.thread("REFERENCES") == ((3,), (1, 2, 4))
    assert client.thread("ORDEREDSUBJECT") == ((3,), (1, (2,), (4,)))
    client.logout()
