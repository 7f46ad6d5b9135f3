"""Idle SMTP client connections, kept for the next message to the same peer.

RFC 5321 §3.3 lets one session carry several mail transactions. Reusing a session saves
the TCP connect, greeting, EHLO, STARTTLS and AUTH of every message after the first (the
same idea as Postfix's connection cache). Queue delivery uses it; `mailsrv sendmail` does not.

Invariants:
- A connection is parked only between transactions: after the final reply to a message's
  data (the peer is back in its initial state, RFC 5321 §4.1.4), with no unread reply and
  no failure on it, and after fewer than `max_transactions` transactions.
- The key is (host, port, session options): a connection is never reused for another TLS
  name or policy, client certificate or login.
- An idle connection is closed with QUIT after `idle_timeout` seconds, well below the
  server's 5-minute timeout (RFC 5321 §4.5.3.2.7), when `max_idle` already wait for the
  same key, and by `close()`. One the peer closed or wrote to meanwhile is never handed out.
- `take` hands a connection over exclusively; the taker parks it again or closes it.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer

from mailsrv.smtpclient.protocol import SMTPClientProtocol


@dataclass
class IdleConnection:
    """What a session learnt on a connection, so the next one can go straight to MAIL."""

    proto: SMTPClientProtocol
    extensions: dict[str, str]
    tls: bool
    authenticated: bool
    transactions: int  # mail transactions done on it so far


class ConnectionCache:
    def __init__(self, reactor: Any, idle_timeout: float = 5.0, max_transactions: int = 100, max_idle: int = 4) -> None:
        self.reactor = reactor
        self.idle_timeout = idle_timeout
        self.max_transactions = max_transactions
        self.max_idle = max_idle
        self._idle: dict[Hashable, list[tuple[IdleConnection, Any]]] = {}  # key -> (connection, expiry call)
        self._closed = False

    def take(self, key: Hashable) -> IdleConnection | None:
        waiting = self._idle.get(key)
        found = None
        while waiting and found is None:
            conn, expiry = waiting.pop()
            expiry.cancel()
            if conn.proto.reusable:
                found = conn
            else:
                conn.proto.abort()  # closed by the peer, or it said something (421) meanwhile
        if not waiting:
            self._idle.pop(key, None)
        return found

    def park(self, key: Hashable, conn: IdleConnection) -> None:
        waiting = self._idle.setdefault(key, [])
        if (
            self._closed
            or conn.transactions >= self.max_transactions
            or not conn.proto.reusable
            or len(waiting) >= self.max_idle
        ):
            if not waiting:
                del self._idle[key]
            _quit(conn)
            return
        expiry = self.reactor.callLater(self.idle_timeout, self._expire, key, conn)
        waiting.append((conn, expiry))

    def _expire(self, key: Hashable, conn: IdleConnection) -> None:
        waiting = self._idle.get(key, [])
        waiting[:] = [(c, e) for c, e in waiting if c is not conn]
        if not waiting:
            self._idle.pop(key, None)
        _quit(conn)

    def idle_count(self) -> int:
        return sum(len(w) for w in self._idle.values())

    def close(self, timeout: float = 2.0) -> defer.Deferred[None]:
        """Closes every idle connection (later parks close at once); fires once they are gone,
        after at most `timeout` seconds (then the rest are aborted)."""
        self._closed = True
        idle, self._idle = self._idle, {}
        conns = [conn for waiting in idle.values() for conn, _ in waiting]
        for waiting in idle.values():
            for conn, expiry in waiting:
                expiry.cancel()
                _quit(conn)
        if not conns:
            return defer.succeed(None)

        def abort() -> None:
            for conn in conns:
                conn.proto.abort()

        call = self.reactor.callLater(timeout, abort)

        def done(_: object) -> None:
            if call.active():
                call.cancel()

        gone = defer.gatherResults([conn.proto.disconnected for conn in conns])
        return gone.addCallback(done)


def _quit(conn: IdleConnection) -> None:
    # Nothing depends on QUIT's reply (RFC 5321 §4.1.1.10): send it and close once written.
    conn.proto.send(b"QUIT\r\n")
    conn.proto.close()
