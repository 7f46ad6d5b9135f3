"""mailsrv/ops/compose.py on its own: MIME structure, RFC 2047/2231/6532 encodings, reply
fields, Bcc, refusals; and `send` through submission into (fake) stores and queue."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from mailsrv.ops.compose import Attachment, Draft, Mailbox, ReplyTo, compose, reply_subject, send
from mailsrv.ops.errors import InvalidInput, LimitExceeded, SendAsDenied
from tests.ops.fakes import make_server, result_of

ALICE = Mailbox(address="alice@example.org", name="Alice")


def _parsed(data: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def test_text_only_is_one_part_with_message_id_and_date() -> None:
    composed = compose(Draft(from_=ALICE, to=[Mailbox("bob@example.org")], subject="Hi", text="Hello Bob.\n"))
    msg = _parsed(composed.data)
    assert msg.get_content_type() == "text/plain" and msg.get_content() == "Hello Bob.\r\n"
    assert msg["Message-ID"] == composed.message_id and composed.message_id.endswith("@example.org>")
    assert msg["Date"] and msg["From"] == "Alice <alice@example.org>"
    assert composed.data.isascii() and not composed.smtputf8


def test_text_html_and_attachments_with_encoded_names() -> None:
    draft = Draft(
        from_=Mailbox("alice@example.org", "Äli Çe"),
        to=[Mailbox("bob@example.org", "Bøb")],
        cc=[Mailbox("carol@example.net")],
        subject="Grüße aus Köln",
        text="Hällo\n",
        html="<p>Hällo <img src='cid:logo@x'></p>",
        attachments=[
            Attachment("résumé.pdf", b"%PDF-1.4\x00\xff", "application/pdf"),
            Attachment("logo.png", b"\x89PNG", "image/png", inline=True, content_id="logo@x"),
            Attachment("notes.txt", b"plain \xe9\n", "text/plain"),
        ],
    )
    composed = compose(draft)
    # 7-bit on the wire: encoded words (RFC 2047), RFC 2231 file names, QP/base64 bodies.
    assert composed.data.isascii()
    assert b"=?utf-8?" in composed.data and b"filename*=utf-8''r%C3%A9sum%C3%A9.pdf" in composed.data
    assert composed.data.count(b"MIME-Version") == 1
    msg = _parsed(composed.data)
    assert str(msg["Subject"]) == "Grüße aus Köln" and str(msg["From"]) == "Äli Çe <alice@example.org>"
    assert msg.get_content_type() == "multipart/mixed"
    body, pdf, logo, notes = msg.iter_parts()
    assert body.get_content_type() == "multipart/alternative"
    plain, html = body.iter_parts()
    assert plain.get_content() == "Hällo\r\n" and html.get_content_type() == "text/html"
    assert pdf.get_filename() == "résumé.pdf" and pdf.get_content() == b"%PDF-1.4\x00\xff"
    assert logo.get_content_disposition() == "inline" and logo["Content-ID"] == "<logo@x>"
    assert notes.get_content_type() == "text/plain" and notes.get_payload(decode=True) == b"plain \xe9\n"
    assert composed.recipients == ["bob@example.org", "carol@example.net"]


def test_reply_fields_and_bcc() -> None:
    draft = Draft(
        from_=ALICE,
        to=[Mailbox("bob@example.org")],
        bcc=[Mailbox("secret@example.net"), Mailbox("BOB@example.org")],
        subject=reply_subject("Re: plans"),
        text="ok\n",
        in_reply_to=ReplyTo("<parent@x>", [f"<r{i}@x>" for i in range(30)] + ["junk"]),
    )
    composed = compose(draft)
    msg = _parsed(composed.data)
    assert msg["In-Reply-To"] == "<parent@x>" and msg["Subject"] == "Re: plans"
    refs = str(msg["References"]).split()
    assert len(refs) == 20 and refs[-1] == "<parent@x>" and refs[0] == "<r11@x>"
    assert b"secret@" not in composed.data and "Bcc" not in msg
    assert composed.recipients == ["bob@example.org", "secret@example.net"]  # BOB@ is bob@ again
    assert reply_subject("plans") == "Re: plans"


def test_international_addresses_make_utf8_headers() -> None:
    composed = compose(Draft(from_=ALICE, to=[Mailbox("dörte@bücher.example")], subject="ü", text="x\n"))
    assert composed.smtputf8 and "dörte@bücher.example".encode() in composed.data


@pytest.mark.parametrize(
    "draft",
    [
        Draft(from_=ALICE, to=[Mailbox("bob@example.org")], subject="x\r\nBcc: victim@example.net"),
        Draft(from_=Mailbox("alice@example.org", "A\nB"), to=[Mailbox("bob@example.org")]),
        Draft(from_=ALICE, to=[Mailbox("not an address")]),
        Draft(from_=ALICE, to=[]),
        Draft(from_=ALICE, to=[Mailbox("bob@example.org")], in_reply_to=ReplyTo("no brackets")),
        Draft(from_=ALICE, to=[Mailbox("b@example.org")], attachments=[Attachment("a", b"", "bad type")]),
        Draft(from_=ALICE, to=[Mailbox("b@example.org")], subject="s" * 1000),
    ],
)
def test_refusals(draft: Draft) -> None:
    with pytest.raises(InvalidInput):
        compose(draft)


def test_too_many_recipients() -> None:
    with pytest.raises(LimitExceeded):
        compose(Draft(from_=ALICE, to=[Mailbox(f"u{i}@example.org") for i in range(1001)]))


def test_send_delivers_locally_queues_remote_and_checks_the_sender(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    draft = Draft(
        from_=ALICE, to=[Mailbox("bob@example.org")], cc=[Mailbox("x@elsewhere.example")], subject="s", text="t\n"
    )
    result = result_of(send(server, "alice", None, draft, client_ip="192.0.2.7", via="HTTPS"))
    assert result.delivered == ["bob"] and result.queued == 1
    [(_, copy)] = server.stores.by_name["bob"].stored
    assert b"from webmail ([192.0.2.7])" in copy and b"with HTTPS" in copy and b"Subject: s" in copy
    assert isinstance(result_of(send(server, "bob", None, draft)), SendAsDenied)
