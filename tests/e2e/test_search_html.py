"""IMAP SEARCH BODY/TEXT reads text/html parts as their visible text (imaplib, real daemon)."""

from __future__ import annotations

import imaplib

from tests.daemon import RunningDaemon

HTML = (
    b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: html only\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><head><style>.ferrari { color: red }</style></head><body>\r\n"
    b'<div class="greeting">Hello <b>wo</b>rld,</div><!-- hiddenword -->\r\n'
    b"<p>caf&eacute; &amp; cr&#232;me</p><script>var gizmo = 1;</script>\r\n"
    b"</body></html>\r\n"
)
ALTERNATIVE = (
    b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: alternative\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b1\r\n\r\n"
    b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain version\r\n"
    b"--b1\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"<div>qp <i>spl</i>it and na=EFve</div>\r\n"
    b"--b1--\r\n"
)
PLAIN = b"From: alice@example.org\r\nSubject: plain\r\n\r\nwe talk about the <div> element here\r\n"


def _search(imap: imaplib.IMAP4, *criteria: str) -> list[bytes]:
    typ, data = imap.search("UTF-8", *criteria)
    assert typ == "OK", data
    return data[0].split()


def test_search_sees_html_as_text(daemon: RunningDaemon) -> None:
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context(), timeout=30)
    try:
        imap.login("alice@example.org", "alicepass")
        for raw in (HTML, ALTERNATIVE, PLAIN):
            assert imap.append("INBOX", None, None, raw)[0] == "OK"
        imap.select("INBOX")
        assert _search(imap, "BODY", "world") == [b"1"]  # split by tags: <b>wo</b>rld
        assert _search(imap, "BODY", '"Hello world"') == [b"1"]
        assert _search(imap, "TEXT", "world") == [b"1"]
        assert _search(imap, "BODY", "split") == [b"2"]
        # Only the plain-text message talks about div; the HTML ones merely use the tag.
        assert _search(imap, "BODY", "div") == [b"3"]
        assert _search(imap, "TEXT", "greeting") == []  # an attribute value
        assert _search(imap, "BODY", "ferrari") == []  # a style rule
        assert _search(imap, "BODY", "gizmo") == []  # a script
        assert _search(imap, "BODY", "hiddenword") == []  # a comment
        assert _search(imap, "BODY", "&amp;") == []
        # Non-ASCII search strings go as literals (imaplib sends `literal` last).
        imap.literal = "café & crème".encode()
        typ, data = imap.search("UTF-8", "BODY")
        assert typ == "OK" and data[0].split() == [b"1"], data
        imap.literal = "NAÏVE".encode()  # decoded from ISO-8859-1 quoted-printable, case-folded
        typ, data = imap.search("UTF-8", "BODY")
        assert typ == "OK" and data[0].split() == [b"2"], data
    finally:
        imap.logout()
