"""What an SMTP client session produces: server replies, failures and per-recipient
outcomes, each classified temporary or permanent (RFC 5321 §4.2.1) so the queue knows
whether to retry or to bounce."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s|$)")


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]  # text after "NNN-" / "NNN ", in order

    @property
    def text(self) -> str:
        return " / ".join(self.lines)

    @property
    def enhanced(self) -> str | None:
        """The RFC 3463 enhanced status code of the first line, if any and consistent."""
        m = _ENHANCED.match(self.lines[0]) if self.lines else None
        if m is None or m.group(1) != str(self.code)[0]:
            return None
        return f"{m.group(1)}.{m.group(2)}.{m.group(3)}"

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 400

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


FailureKind = Literal["connection", "timeout", "protocol", "tls", "auth", "reply", "policy"]


class SMTPFailure(Exception):
    """A session that could not complete. `permanent` only when the peer said so (5xx) or
    delivery can never succeed as asked (message too big, SMTPUTF8 needed but not offered);
    lost connections, timeouts and garbage are temporary."""

    def __init__(self, kind: FailureKind, message: str, reply: Reply | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.reply = reply
        self.permanent = permanent

    def as_reply(self) -> Reply:
        """The reply to record for recipients this failure left unanswered."""
        if self.reply is not None:
            return self.reply
        if self.permanent:
            return Reply(554, (f"5.0.0 {self}",))
        code = {"connection": "4.4.2", "timeout": "4.4.2", "tls": "4.7.5", "protocol": "4.5.0"}.get(self.kind, "4.0.0")
        return Reply(451, (f"{code} {self}",))


@dataclass(frozen=True)
class RecipientOutcome:
    address: str
    reply: Reply  # the RCPT reply if refused there, else the reply to the message data
    # The peer offered DSN (RFC 3461), so any NOTIFY/ORCPT went on with the recipient.
    dsn_passed: bool = False

    @property
    def delivered(self) -> bool:
        return self.reply.positive

    @property
    def permanent(self) -> bool:
        return self.reply.permanent

    @property
    def temporary(self) -> bool:
        return self.reply.temporary


@dataclass(frozen=True)
class DeliveryResult:
    recipients: tuple[RecipientOutcome, ...]
    failure: SMTPFailure | None = None  # the session-level problem, if any
    tls: bool = False
    authenticated: bool = False
    extensions: frozenset[str] = frozenset()

    @property
    def delivered(self) -> tuple[str, ...]:
        return tuple(r.address for r in self.recipients if r.delivered)
