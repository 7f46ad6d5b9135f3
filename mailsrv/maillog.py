"""The log lines that trace mail: one per accepted message, one per refusal, one per queue
delivery attempt. Their text is a stable format (docs/operations.md "Log lines that trace
mail") for grep, log shippers and fail2ban, modelled on Postfix's so that filters written for
it need little change. Each line is also a log event whose fields carry the same values, for
the JSON log format.

Values a peer controls (addresses, HELO, reply texts) are cleaned of control characters and
bounded here, so one line stays one line and a filter's anchors cannot be forged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
MAX_FIELD = 300  # characters of one peer-controlled value in a line


def clean(value: str, limit: int = MAX_FIELD) -> str:
    """`value` with control characters as '?' and at most `limit` characters (then '...')."""
    if not value.isprintable():  # printable text has no control characters: nothing to replace
        value = _UNSAFE.sub("?", value)
    return value if len(value) <= limit else value[:limit] + "..."


def client(peer_ip: str, peer_name: str | None = None) -> str:
    """Postfix's `name[ip]`; `unknown` when the address has no (checked) name."""
    return f"{clean(peer_name or 'unknown', 100)}[{clean(peer_ip, 60)}]"


def bracketed(address: str | None) -> str:
    """An address as `<addr>`, the null reverse-path as `<>`."""
    return f"<{clean(address or '')}>"


@dataclass(frozen=True)
class Rejection:
    """A refused command in a transaction (no queue id yet: Postfix's NOQUEUE)."""

    stage: str  # "MAIL", "RCPT", "DATA" (end of data, BDAT LAST included)
    peer_ip: str
    code: int
    enhanced: str
    reason: str
    sender: str | None
    recipient: str | None  # the refused RCPT, or None
    protocol: str  # "SMTP" or "ESMTP"
    helo: str

    def line(self) -> str:
        subject = f" {bracketed(self.recipient)}:" if self.recipient is not None else ""
        to = f" to={bracketed(self.recipient)}" if self.recipient is not None else ""
        return (
            f"NOQUEUE: reject: {self.stage} from {client(self.peer_ip)}: {self.code} {self.enhanced}{subject}"
            f" {clean(self.reason)}; from={bracketed(self.sender)}{to} proto={self.protocol}"
            f" helo=<{clean(self.helo, 100)}>"
        )

    def fields(self) -> dict[str, Any]:
        return {
            "event": "reject",
            "stage": self.stage,
            "client_ip": self.peer_ip,
            "code": self.code,
            "enhanced": self.enhanced,
            "reason": clean(self.reason),
            "sender": self.sender or "",
            "recipient": self.recipient or "",
        }


@dataclass(frozen=True)
class Copy:
    """Where one recipient's message went: local accounts with their mailbox, or the queue."""

    recipient: str
    mailboxes: Sequence[tuple[str, str]] = ()  # (account, mailbox)
    queue: int | None = None  # the outgoing queue's message id


@dataclass(frozen=True)
class Acceptance:
    """A message taken responsibility for (the 250 after DATA)."""

    queue_id: str  # the id in the message's Received: fields
    message_id: str
    sender: str | None
    size: int
    peer_ip: str
    account: str | None  # the authenticated submitter
    copies: Sequence[Copy]

    def line(self) -> str:
        where = []
        for copy in self.copies:
            places = [f"{clean(account, 100)}:{clean(box, 100)}" for account, box in copy.mailboxes]
            if copy.queue is not None:
                places.append(f"queue {copy.queue}")
            where.append(f"to={bracketed(copy.recipient)} ({', '.join(places) or 'none'})")
        auth = f" sasl_username={clean(self.account, 100)}" if self.account else ""
        return (
            f"{self.queue_id}: accepted message-id=<{clean(self.message_id.strip('<>'))}> from={bracketed(self.sender)}"
            f" size={self.size} client={client(self.peer_ip)}{auth} {', '.join(where)}"
        )

    def fields(self) -> dict[str, Any]:
        return {
            "event": "accepted",
            "queue_id": self.queue_id,
            "message_id": clean(self.message_id),
            "sender": self.sender or "",
            "size": self.size,
            "client_ip": self.peer_ip,
            "recipients": ",".join(c.recipient for c in self.copies),
        }


@dataclass(frozen=True)
class Attempt:
    """One outgoing delivery attempt's outcome for one recipient."""

    queue: int
    recipient: str
    relay: str  # "host [ip]" as the queue records it, or ""
    attempt: int
    delay: float  # seconds since the message was queued
    status: str  # "sent", "deferred", "bounced"
    reply: str
    # The queue's transport for the attempt (docs/queue.md): in the JSON fields, not the text line,
    # whose format is fixed (a smarthost shows as the relay).
    transport: str = ""

    def line(self) -> str:
        host, _, ip = self.relay.partition(" [")
        relay = f"{clean(host, 255)}[{clean(ip.rstrip(']'), 60)}]" if self.relay else "none"
        return (
            f"queue {self.queue}: to={bracketed(self.recipient)}, relay={relay}, attempt={self.attempt},"
            f" delay={self.delay:.1f}, status={self.status} ({clean(self.reply)})"
        )

    def fields(self) -> dict[str, Any]:
        return {
            "event": "attempt",
            "queue": self.queue,
            "recipient": self.recipient,
            "relay": self.relay,
            "attempt": self.attempt,
            "delay": round(self.delay, 1),
            "status": self.status,
            "reply": clean(self.reply),
            "transport": self.transport,
        }


def message_id_of(headers: Iterable[tuple[str, str]]) -> str:
    """The first Message-ID field's value, or '' (logging only: never trusted)."""
    for name, value in headers:
        if name.lower() == "message-id":
            return value.strip()
    return ""
