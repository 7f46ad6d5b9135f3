"""Delivery status notifications (RFC 3464): the multipart/report message telling a sender
that recipients failed or are delayed.

Invariants:
- A DSN is never made for a message with the null reverse-path (RFC 5321 §4.5.5: no
  bounces of bounces); callers check `should_notify` first.
- The report carries the original's header only (text/rfc822-headers, which RFC 3464 §2
  allows as the third part): a bounce never re-sends a large or harmful body.
- Addresses with non-ASCII characters use the utf-8 address type and
  message/global-delivery-status (RFC 6533); otherwise message/delivery-status.
- Line ends are CRLF; the result is a complete message ready to deliver with MAIL FROM:<>.
"""

from __future__ import annotations

import email.utils
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mailsrv.smtpclient import Reply

Action = Literal["failed", "delayed"]


@dataclass(frozen=True)
class DSNRecipient:
    address: str
    action: Action
    reply: Reply  # the last reply or the synthesised failure
    remote_mta: str = ""  # host name of the MTA that answered, if any
    last_attempt: float = 0.0


def should_notify(mail_from: str) -> bool:
    return bool(mail_from)


def _status(reply: Reply, action: Action) -> str:
    code = reply.enhanced
    if code is None:
        code = f"{str(reply.code)[0]}.0.0" if reply.code >= 400 else "4.0.0"
    if action == "failed" and code.startswith("4"):
        code = "5" + code[1:]  # gave up after temporary failures: the final status is permanent
    return code


def _header_block(message: bytes) -> bytes:
    end = message.find(b"\r\n\r\n")
    if end < 0:
        end = message.find(b"\n\n")
    head = message if end < 0 else message[:end]
    return head.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n"


def _clean(text: str) -> str:
    return " ".join(text.split())  # no CR/LF from a peer's reply into our header fields


def make_dsn(
    reporting_mta: str,
    mail_from: str,
    original: bytes,
    recipients: Sequence[DSNRecipient],
    arrival: float,
    now: float | None = None,
) -> bytes:
    """The DSN message (headers and body, CRLF) to send to `mail_from` with MAIL FROM:<>."""
    if not recipients:
        raise ValueError("a DSN needs at least one recipient")
    now = time.time() if now is None else now
    boundary = "=_dsn_" + secrets.token_hex(12)
    utf8 = not (mail_from.isascii() and all(r.address.isascii() for r in recipients))
    failed = [r for r in recipients if r.action == "failed"]
    subject = "Delivery failure" if failed else "Delivery delayed"

    human = [
        f"This is the mail system at {reporting_mta}.",
        "",
    ]
    if failed:
        human.append("Your message could not be delivered to these recipients:")
    else:
        human.append("Your message has not been delivered yet to these recipients; we keep trying:")
    human.append("")
    for r in recipients:
        where = f" (answer from {r.remote_mta})" if r.remote_mta else ""
        human.append(f"  <{r.address}>: {_clean(str(r.reply))}{where}")
    human += ["", "The header of your message follows in the last part of this report.", ""]

    status_lines = [
        f"Reporting-MTA: dns; {reporting_mta}",
        f"Arrival-Date: {email.utils.formatdate(arrival)}",
        "",
    ]
    addr_type = "utf-8" if utf8 else "rfc822"
    for r in recipients:
        status_lines += [
            f"Final-Recipient: {addr_type}; {r.address}",
            f"Action: {r.action}",
            f"Status: {_status(r.reply, r.action)}",
        ]
        if r.remote_mta:
            status_lines.append(f"Remote-MTA: dns; {r.remote_mta}")
        status_lines.append(f"Diagnostic-Code: smtp; {_clean(str(r.reply))}")
        status_lines.append(f"Last-Attempt-Date: {email.utils.formatdate(r.last_attempt or now)}")
        status_lines.append("")
    status_type = "message/global-delivery-status" if utf8 else "message/delivery-status"
    headers_type = "message/global-headers" if utf8 else "text/rfc822-headers"

    crlf = "\r\n"
    head = crlf.join(
        [
            f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
            f"To: <{mail_from}>",
            f"Subject: {subject}",
            f"Date: {email.utils.formatdate(now)}",
            f"Message-ID: <{secrets.token_hex(16)}@{reporting_mta}>",
            "Auto-Submitted: auto-replied",  # RFC 3834 §5
            "MIME-Version: 1.0",
            f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
            "",
            "",
        ]
    )
    parts = [
        head.encode("utf-8"),
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".encode(),
        crlf.join(human).encode("utf-8"),
        f"\r\n--{boundary}\r\nContent-Type: {status_type}\r\n\r\n".encode(),
        crlf.join(status_lines).encode("utf-8"),
        f"\r\n--{boundary}\r\nContent-Type: {headers_type}\r\n\r\n".encode(),
        _header_block(original),
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts)
