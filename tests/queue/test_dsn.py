"""DSN messages (RFC 3464) parse as multipart/report with the fields a client shows."""

from __future__ import annotations

import email
import email.policy

from mailsrv.queue.dsn import DSNRecipient, make_dsn, should_notify
from mailsrv.smtpclient import Reply

ORIGINAL = b"From: a@a.example\r\nTo: x@b.example\r\nSubject: hi\r\n\r\nsecret body\r\n"


def test_failure_dsn_structure() -> None:
    rcpts = [
        DSNRecipient("x@b.example", "failed", Reply(550, ("5.1.1 no such user", "really")), "mx.b.example", 1000.0),
        DSNRecipient("y@b.example", "failed", Reply(451, ("4.4.2 timeout\r\nInjected: x",)), "", 1000.0),
    ]
    raw = make_dsn("mx.a.example", "a@a.example", ORIGINAL, rcpts, arrival=900.0, now=1000.0)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["To"].addresses[0].addr_spec == "a@a.example" and msg["Auto-Submitted"] == "auto-replied"
    text, status, headers = msg.get_payload()
    assert "x@b.example" in text.get_content()
    assert status.get_content_type() == "message/delivery-status"
    body = raw.decode()
    assert "Final-Recipient: rfc822; x@b.example\r\nAction: failed\r\nStatus: 5.1.1\r\n" in body
    assert "Remote-MTA: dns; mx.b.example" in body
    assert "Diagnostic-Code: smtp; 550 5.1.1 no such user / really" in body
    assert "Status: 5.4.2" in body  # gave up after temporary failures
    assert "\r\nInjected:" not in body
    assert headers.get_content_type() == "text/rfc822-headers"
    assert b"secret body" not in raw and b"Subject: hi" in raw


def test_utf8_and_null_sender() -> None:
    raw = make_dsn(
        "mx.a.example",
        "j\u00f6rg@a.example",
        ORIGINAL,
        [DSNRecipient("x@b.example", "delayed", Reply(451, ("4.4.1 later",)))],
        1.0,
    )
    assert b"message/global-delivery-status" in raw and b"Final-Recipient: utf-8; x@b.example" in raw
    assert b"Subject: Delivery delayed" in raw
    assert not should_notify("") and should_notify("a@a.example")


def test_success_dsn_with_envid_orcpt_and_full_return() -> None:
    rcpts = [
        DSNRecipient(
            "x@b.example", "relayed", Reply(250, ("2.0.0 queued",)), "mx.b.example", 1000.0, "rfc822;X@b.example"
        )
    ]
    raw = make_dsn("mx.a.example", "a@a.example", ORIGINAL, rcpts, 900.0, 1000.0, envid="QQ 314", ret_full=True)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == "Delivery report"
    text, status, returned = msg.get_payload()
    assert status.get_content_type() == "message/delivery-status"
    body = raw.decode()
    assert "Reporting-MTA: dns; mx.a.example\r\nOriginal-Envelope-Id: QQ 314\r\n" in body
    assert "Original-Recipient: rfc822;X@b.example\r\nFinal-Recipient: rfc822; x@b.example\r\n" in body
    assert "Action: relayed\r\nStatus: 2.0.0\r\n" in body
    # RET=FULL (RFC 3461 §4.3): the whole message comes back as message/rfc822.
    assert returned.get_content_type() == "message/rfc822"
    assert b"secret body" in raw and "do not confirm delivery" in text.get_content()


def test_delivered_status_without_enhanced_code() -> None:
    raw = make_dsn(
        "mx.a.example", "a@a.example", ORIGINAL, [DSNRecipient("x@a.example", "delivered", Reply(250, ("ok",)))], 1.0
    )
    assert b"Action: delivered\r\nStatus: 2.0.0\r\n" in raw and b"secret body" not in raw


def test_returned_header_is_capped_at_a_field_boundary() -> None:
    from mailsrv.queue.dsn import MAX_RETURNED_HEADER, _header_block

    folded = b"".join(b"X-Long-%d: start\r\n\t%s\r\n" % (i, b"c" * 100) for i in range(2000))
    head = _header_block(b"Subject: first\r\n" + folded + b"\r\nbody\r\n")
    assert len(head) <= MAX_RETURNED_HEADER and head.startswith(b"Subject: first\r\n")
    assert head.endswith(b"\r\n") and not head.startswith((b" ", b"\t"))
    assert _header_block(b"Subject: s\r\n\r\nbody") == b"Subject: s\r\n"
