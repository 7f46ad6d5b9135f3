"""Webhook bodies (mox's webhook.Outgoing and webhook.Incoming field names), Standard Webhooks
signatures checked with the `standardwebhooks` package, target address checks and backoff."""

from __future__ import annotations

import json

import pytest
from standardwebhooks.webhooks import Webhook

from mailsrv.webhooks import payload, signing
from mailsrv.webhooks.sender import LOCALSERVE, SenderOptions, backoff
from mailsrv.webhooks.targets import allowed_address, check_url

OUTGOING_FIELDS = {
    "Version",
    "Event",
    "DSN",
    "Suppressing",
    "QueueMsgID",
    "FromID",
    "MessageID",
    "Subject",
    "WebhookQueued",
    "SMTPCode",
    "SMTPEnhancedCode",
    "Error",
    "Extra",
}


def test_outgoing_failed() -> None:
    body = payload.outgoing(
        "failed",
        queue_id=12,
        queued_at=1796601600.25,
        code=550,
        reply="550 5.1.1 no such user",
        suppressing=True,
        fromid="abc",
        message_id="<m@a.example>",
        subject="Hi",
        extra={"Order": "7"},
    )
    data = json.loads(payload.encode(body))
    assert set(data) == OUTGOING_FIELDS
    assert data == {
        "Version": 0,
        "Event": "failed",
        "DSN": False,
        "Suppressing": True,
        "QueueMsgID": 12,
        "FromID": "abc",
        "MessageID": "<m@a.example>",
        "Subject": "Hi",
        "WebhookQueued": "2026-12-07T00:00:00.25Z",
        "SMTPCode": 550,
        "SMTPEnhancedCode": "5.1.1",
        "Error": "5.1.1 no such user",
        "Extra": {"Order": "7"},
    }


def test_outgoing_delivered_has_no_error_fields_and_extra_is_never_null() -> None:
    data = json.loads(payload.encode(payload.outgoing("delivered", queue_id=1, queued_at=0, code=250, reply="250 ok")))
    assert (data["SMTPCode"], data["SMTPEnhancedCode"], data["Error"], data["Extra"]) == (0, "", "", {})
    assert data["WebhookQueued"] == "1970-01-01T00:00:00Z"


MESSAGE = (
    b"From: =?utf-8?q?J=C3=BCrgen?= <jurgen@remote.example>\r\n"
    b"To: Alice <alice@example.org>, bob@example.org\r\n"
    b"Cc: carol@example.org\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"Message-ID: <reply1@remote.example>\r\n"
    b"In-Reply-To: <orig@example.org>\r\n"
    b"References: <root@example.org> <orig@example.org>\r\n"
    b"Date: Mon, 07 Dec 2026 01:02:03 +0100\r\n"
    b"List-Id: <news.remote.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Hall=C3=B6chen\r\nline 2\r\n"
    b"--b1\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<p>Hi</p>\r\n"
    b"--b1--\r\n"
)


def test_incoming() -> None:
    meta = payload.IncomingMeta(MsgID=5, MailFrom="jurgen@remote.example", RcptTo="alice@example.org")
    data = json.loads(payload.encode(payload.incoming(MESSAGE, meta)))
    assert data["From"] == [{"Name": "Jürgen", "Address": "jurgen@remote.example"}]
    assert data["To"] == [{"Name": "Alice", "Address": "alice@example.org"}, {"Name": "", "Address": "bob@example.org"}]
    assert data["CC"] == [{"Name": "", "Address": "carol@example.org"}] and data["BCC"] == [] and data["ReplyTo"] == []
    assert data["Subject"] == "Grüße" and data["MessageID"] == "<reply1@remote.example>"
    assert data["InReplyTo"] == "<orig@example.org>"
    assert data["References"] == ["<root@example.org>", "<orig@example.org>"]
    assert data["Date"] == "2026-12-07T00:02:03Z"
    # The CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1).
    assert data["Text"] == "Hallöchen\nline 2" and data["HTML"] == "<p>Hi</p>"
    s = data["Structure"]
    assert s["ContentType"] == "multipart/alternative" and s["ContentTypeParams"] == {"boundary": "b1"}
    assert [p["ContentType"] for p in s["Parts"]] == ["text/plain", "text/html"]
    assert s["Parts"][0]["DecodedSize"] == len("Hallöchen\r\nline 2".encode())
    assert data["Meta"]["MsgID"] == 5 and data["Meta"]["Automated"] is True  # List-Id
    assert data["Meta"]["MailboxName"] == "Inbox"


def test_incoming_text_is_cut_at_one_mebibyte() -> None:
    big = b"Subject: big\r\n\r\n" + b"x" * (payload.MAX_TEXT + 100)
    data = payload.incoming(big, payload.IncomingMeta())
    assert len(data.Text) == payload.MAX_TEXT and data.Structure.DecodedSize == payload.MAX_TEXT + 100
    assert payload.incoming(b"Subject: x\r\n\r\nx", payload.IncomingMeta()).Meta.Automated is False
    assert payload.is_automated(b"Auto-Submitted: auto-replied\r\n\r\n")
    assert not payload.is_automated(b"Auto-Submitted: no\r\n\r\n")


def test_signature_verifies_with_standardwebhooks() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and len(signing.key_of(secret)) == 32
    body = payload.encode(payload.outgoing("delivered", queue_id=1, queued_at=0))
    import time

    now = int(time.time())
    headers = signing.headers(secret, "42", now, body)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    Webhook(secret).verify(body, headers)
    from standardwebhooks.webhooks import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)
    assert signing.headers("", "42", now, body) == {}


@pytest.mark.parametrize(
    ("ip", "private_ok", "public_only"),
    [
        ("8.8.8.8", True, True),
        ("2001:4860:4860::8888", True, True),
        ("127.0.0.1", True, False),
        ("::1", True, False),
        ("10.1.2.3", True, False),
        ("192.168.1.1", True, False),
        ("172.16.0.1", True, False),
        ("169.254.169.254", True, False),
        ("fe80::1", True, False),
        ("fd00::1", True, False),
        ("::ffff:127.0.0.1", True, False),
        ("100.64.0.1", True, False),  # carrier-grade NAT: not global
        ("0.0.0.0", False, False),
        ("224.0.0.1", False, False),
    ],
)
def test_allowed_addresses(ip: str, private_ok: bool, public_only: bool) -> None:
    assert allowed_address(ip, True) is private_ok
    assert allowed_address(ip, False) is public_only


@pytest.mark.parametrize(
    "url",
    ["ftp://x.example/", "http://", "https://user:pw@x.example/", "http://x.example:99999/", "http://x .example/", "x"],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        check_url(url)


def test_backoff() -> None:
    assert [backoff(n, SenderOptions()) for n in (1, 2, 3, 10, 11, 14)] == [60, 120, 240, 30720, 57600, 57600]
    assert [backoff(n, LOCALSERVE) for n in (1, 2, 5, 6, 9)] == [1, 2, 16, 16, 16]
