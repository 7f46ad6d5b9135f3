"""SEARCH BODY/TEXT reads text/html parts as text (mailsrv.message.htmltext), text/plain as is."""

from __future__ import annotations

import base64

from mailsrv.message.parse import parse_message
from mailsrv.ops.search import body_texts as _body_texts

MESSAGE = (
    b"From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=x\r\n\r\n"
    b"--x\r\nContent-Type: text/plain\r\n\r\nthe <div> tag, literally\r\n"
    b"--x\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes("<div>Gr<b>ÜSS</b>e &amp; <span>Stra&szlig;e</span></div>".encode())
    + b"--x--\r\n"
)


def test_html_part_is_text_and_plain_part_untouched() -> None:
    plain, html = _body_texts(MESSAGE, parse_message(MESSAGE))
    assert plain == "the <div> tag, literally"
    assert html == "grüsse & strasse"  # tags gone, references decoded, case-folded (ß → ss)
