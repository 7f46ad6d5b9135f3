"""Socket options that every protocol session sets on its connection."""

from __future__ import annotations

from typing import Any


def set_no_delay(transport: Any) -> None:
    """TCP_NODELAY on the socket under `transport` (plain, STARTTLS-capable or wrapped in
    implicit TLS). Without it a small reply, such as IMAP's "+" continuation before a
    synchronising literal or an SMTP reply the client waits for, is held back by Nagle's
    algorithm until the client's delayed ACK: about 40 ms per round trip."""
    for candidate in (transport, getattr(transport, "transport", None)):
        setter = getattr(candidate, "setTcpNoDelay", None)
        if setter is not None:
            try:
                setter(True)
            except OSError:
                pass
            return


# How long a peer may hold a connection open after we hung up (see `Hangup`).
HANGUP_GRACE = 2.0


class Hangup:
    """Ends a connection so that it cannot outlive its protocol.

    `loseConnection` alone waits, without any timeout, for the peer: for it to read what is
    still buffered (a client that stopped reading) and, under TLS, for its close_notify
    (Twisted's TLS transport sends ours and then waits for the answer before closing TCP;
    a client that just stops reading never sends it). So the transport is aborted if the
    connection is still open `grace` seconds after the hang-up. The protocol calls
    `cancel()` from its `connectionLost`.
    """

    def __init__(self, reactor: Any, grace: float = HANGUP_GRACE) -> None:
        self._reactor = reactor
        self._grace = grace
        self._timer: Any = None

    def __call__(self, transport: Any) -> None:
        if transport is None:
            return
        transport.loseConnection()
        if self._timer is None and hasattr(transport, "abortConnection"):
            self._timer = self._reactor.callLater(self._grace, self._abort, transport)

    def _abort(self, transport: Any) -> None:
        self._timer = None
        transport.abortConnection()

    def cancel(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
