"""The shape of a server-side SASL exchange (RFC 4422 §3), shared by IMAP AUTHENTICATE
and SMTP AUTH.

A `ServerMechanism` is a small state machine over raw bytes: protocol code does the
base64, the line framing, the "*" client abort (RFC 4422 §3.5; it raises `SASLAborted`
itself and never passes "*" to a mechanism) and the final "additional data with
success" handling. The exchange is:

    step = await mech.start(initial_response or None)   # None: no initial response
    while isinstance(step, Challenge):
        step = await mech.respond(client_data)
    # step is Success(identity, final_data)

`start(None)` means the client sent no initial response; `start(b"")` means it sent an
empty one (IMAP "=" / SMTP "="). When `Success.final_data` is not None the protocol must
deliver it before reporting success: IMAP and SMTP send it as one more challenge and
expect an empty response (RFC 9051 §6.2.2, RFC 4954 §4).

Failures are exceptions delivered through the Deferred: the `AuthError` family of
`mailsrv.auth.interfaces` (wrong credentials, backend down, rate limited, mechanism not
usable for this account) or `SASLError` for a malformed exchange. No other exception
type may escape a mechanism for any input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred

from mailsrv.auth.interfaces import LoginIdentity


class SASLError(Exception):
    """A malformed or out-of-order exchange. The message is safe to show to the peer."""


class SASLAborted(SASLError):
    """The client cancelled the exchange with "*" (RFC 4422 §3.5)."""


@dataclass(frozen=True)
class Challenge:
    """Send `data` to the client and wait for its response."""

    data: bytes


@dataclass(frozen=True)
class Success:
    """Authenticated. `final_data`, when not None, is the server's additional data (SCRAM's
    server-final-message) that the client must receive before the success reply."""

    identity: LoginIdentity
    final_data: bytes | None = None


Step = Challenge | Success

# An upper bound on any single client message: PLAIN with 255-octet fields (RFC 4616 §2)
# and SCRAM with long nonces fit easily. Anything longer is an attack or a bug.
MAX_CLIENT_MESSAGE = 4096


# Called with the login name (authcid) as soon as a mechanism has parsed it and before
# any credential is checked; it may raise an AuthError (typically RateLimited from
# `LoginAttempt.name(login)`), which fails the exchange.
LoginCheck = Callable[[str], None]


class ServerMechanism(Protocol):
    name: str
    # The login name the client gave (authcid), once parsed; None before, and for EXTERNAL.
    # The login policy counts the attempt against it (`mailsrv.ops.login`).
    login_name: str | None

    def start(self, initial: bytes | None) -> Deferred[Step]:
        """Begins the exchange with the client's initial response, if any."""

    def respond(self, data: bytes) -> Deferred[Step]:
        """Processes the client's response to the last challenge."""


def check_length(data: bytes) -> None:
    if len(data) > MAX_CLIENT_MESSAGE:
        raise SASLError("SASL message too long")


def decode_utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SASLError(f"{what} is not valid UTF-8") from None
