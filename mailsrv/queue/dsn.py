"""Delivery status notifications (RFC 3464): the multipart/report message telling a sender
that recipients failed, are delayed, or (when asked for with NOTIFY=SUCCESS, RFC 3461) were
delivered, relayed to a next hop without DSN support, or expanded (a list).

Invariants:
- A DSN is never made for a message with the null reverse-path (RFC 5321 §4.5.5: no
  bounces of bounces); callers check `should_notify` first.
- The report carries the original's header only (text/rfc822-headers, which RFC 3464 §2
  allows as the third part), at most MAX_RETURNED_HEADER octets, unless the caller passes
  `ret_full` (a "failed" DSN for a sender who asked for RET=FULL, RFC 3461 §4.3): then the
  whole message (message/rfc822, or message/global for UTF-8 addresses, RFC 6533).
- ENVID and ORCPT, when the sender gave them, come back as `Original-Envelope-Id:` and
  `Original-Recipient:` (RFC 3464 §2.2.1, §2.3.1), decoded from xtext.
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

from mailsrv.dsnparams import DSNAction
from mailsrv.smtpclient import Reply

Action = DSNAction
# Octets of the original's header a DSN returns (docs/security.md): enough for every
# ordinary header, far less than a forged header block an attacker would have reflected.
MAX_RETURNED_HEADER = 32 * 1024


@dataclass(frozen=True)
class DSNRecipient:
    address: str
    action: Action
    reply: Reply  # the last reply or the synthesised failure
    remote_mta: str = ""  # host name of the MTA that answered, if any
    last_attempt: float = 0.0
    original_recipient: str = ""  # ORCPT as "addr-type;address", if the sender gave one


def should_notify(mail_from: str) -> bool:
    return bool(mail_from)


def _status(reply: Reply, action: Action) -> str:
    code = reply.enhanced
    if code is None:
        code = f"{str(reply.code)[0]}.0.0" if reply.code >= 200 else "4.0.0"
    if action in ("delivered", "relayed", "expanded"):
        return code if code.startswith("2") else "2.0.0"
    if action == "failed" and code.startswith("4"):
        code = "5" + code[1:]  # gave up after temporary failures: the final status is permanent
    return code


def _header_block(message: bytes) -> bytes:
    """The original's header, at most MAX_RETURNED_HEADER octets, cut at a line end: a
    sender who forges a 2 MB header block must not have us mail it to a third party
    (issue 17 item 5). The headers that identify a message come first and stay."""
    end = message.find(b"\r\n\r\n")
    if end < 0:
        end = message.find(b"\n\n")
    head = message if end < 0 else message[:end]
    head = head.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n"
    if len(head) > MAX_RETURNED_HEADER:
        cut = head.rfind(b"\r\n", 0, MAX_RETURNED_HEADER)
        head = head[: cut + 2] if cut >= 0 else b""
        # A continuation line left without its field's first line would not parse.
        while head and head[:1] in b" \t":
            head = head[head.find(b"\r\n") + 2 :]
    return head


def _clean(text: str) -> str:
    return " ".join(text.split())  # no CR/LF from a peer's reply into our header fields


def make_dsn(
    reporting_mta: str,
    mail_from: str,
    original: bytes,
    recipients: Sequence[DSNRecipient],
    arrival: float,
    now: float | None = None,
    envid: str = "",
    ret_full: bool = False,
) -> bytes:
    """The DSN message (headers and body, CRLF) to send to `mail_from` with MAIL FROM:<>."""
    if not recipients:
        raise ValueError("a DSN needs at least one recipient")
    now = time.time() if now is None else now
    boundary = "=_dsn_" + secrets.token_hex(12)
    utf8 = not (mail_from.isascii() and all(r.address.isascii() for r in recipients))
    failed = [r for r in recipients if r.action == "failed"]
    delayed = [r for r in recipients if r.action == "delayed"]
    subject = "Delivery failure" if failed else "Delivery delayed" if delayed else "Delivery report"

    human = [
        f"This is the mail system at {reporting_mta}.",
        "",
    ]
    intro = {
        "failed": "Your message could not be delivered to these recipients:",
        "delayed": "Your message has not been delivered yet to these recipients; we keep trying:",
        "delivered": "Your message was delivered to these recipients, as you asked:",
        "relayed": "Your message was handed to these recipients' mail systems, which do not confirm delivery:",
        "expanded": "Your message was delivered to these lists, as you asked:",
    }
    for action in ("failed", "delayed", "delivered", "relayed", "expanded"):
        group = [r for r in recipients if r.action == action]
        if not group:
            continue
        human += [intro[action], ""]
        for r in group:
            where = f" (answer from {r.remote_mta})" if r.remote_mta else ""
            human.append(f"  <{r.address}>: {_clean(str(r.reply))}{where}")
        human.append("")
    returned = "your message" if ret_full else "the header of your message"
    human += [f"{returned[0].upper()}{returned[1:]} follows in the last part of this report.", ""]

    status_lines = [f"Reporting-MTA: dns; {reporting_mta}"]
    if envid:
        status_lines.append(f"Original-Envelope-Id: {_clean(envid)}")
    status_lines += [f"Arrival-Date: {email.utils.formatdate(arrival)}", ""]
    addr_type = "utf-8" if utf8 else "rfc822"
    for r in recipients:
        if r.original_recipient:
            status_lines.append(f"Original-Recipient: {_clean(r.original_recipient)}")
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
    if ret_full:
        returned_type = "message/global" if utf8 else "message/rfc822"
        returned_part = original.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if not returned_part.endswith(b"\r\n"):
            returned_part += b"\r\n"
    else:
        returned_type = "message/global-headers" if utf8 else "text/rfc822-headers"
        returned_part = _header_block(original)
    # RFC 2046 §5.2.1: message/rfc822 is 7bit, 8bit or binary; say 8bit when it is not ASCII.
    encoding = "" if returned_part.isascii() else "Content-Transfer-Encoding: 8bit\r\n"

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
        f"\r\n--{boundary}\r\nContent-Type: {returned_type}\r\n{encoding}\r\n".encode(),
        returned_part,
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts)
