"""The wire side of the SMTP client: writes commands, assembles replies (RFC 5321 §4.2),
and hands them to the session one at a time through `next_reply`.

Invariants:
- A reply line that is not "NNN", "NNN text" or "NNN-text" with the same code on every
  line of a reply, an over-long line (RFC 5321 §4.5.3.1.5: 512; we allow 4096) or an endless
  multi-line reply is a protocol failure: the connection is closed and every waiting and
  later `next_reply` fails with `SMTPFailure("protocol")`.
- A lost connection fails waiters with `SMTPFailure("connection")`; a reply that does not
  come within its timeout aborts the connection and fails with `SMTPFailure("timeout")`.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from mailsrv.smtpclient.reply import Reply, SMTPFailure

MAX_LINE = 4096
MAX_REPLY_LINES = 200


@implementer(IHandshakeListener)
class SMTPClientProtocol(Protocol):
    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._buffer = b""
        self._partial: list[str] = []
        self._partial_code: int | None = None
        self._replies: list[Reply] = []
        self._waiters: list[defer.Deferred[Reply]] = []
        self._failure: SMTPFailure | None = None
        self.connected_deferred: defer.Deferred[None] = defer.Deferred()
        self.disconnected: defer.Deferred[None] = defer.Deferred()  # fires once the connection is gone
        self._handshake: defer.Deferred[None] | None = None

    @property
    def _transport(self) -> Any:
        # Twisted's zope interfaces do not type-check as methods: go through Any.
        return self.transport

    # -- Twisted callbacks ---------------------------------------------------------------

    def connectionMade(self) -> None:
        self.connected_deferred.callback(None)

    def dataReceived(self, data: bytes) -> None:
        if self._failure is not None:
            return
        self._buffer += data
        while self._failure is None:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    self._protocol_error("reply line too long")
                return
            line, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
            if len(line) > MAX_LINE:
                self._protocol_error("reply line too long")
                return
            self._line(line.rstrip(b"\r"))

    def handshakeCompleted(self) -> None:
        if self._handshake is not None and not self._handshake.called:
            self._handshake.callback(None)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._failure is None:
            self._failure = SMTPFailure("connection", f"connection lost: {reason.getErrorMessage()}")
        if self._handshake is not None and not self._handshake.called:
            self._handshake.errback(SMTPFailure("tls", f"TLS handshake failed: {reason.getErrorMessage()}"))
        self._fail_waiters()
        if not self.disconnected.called:
            self.disconnected.callback(None)

    # -- reply assembly ------------------------------------------------------------------

    def _line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace")
        if len(text) < 3 or not text[:3].isdigit() or (len(text) > 3 and text[3] not in " -"):
            self._protocol_error(f"malformed reply line {text[:60]!r}")
            return
        code = int(text[:3])
        if not 200 <= code <= 599 or (self._partial_code is not None and code != self._partial_code):
            self._protocol_error(f"unexpected reply code in {text[:60]!r}")
            return
        self._partial_code = code
        self._partial.append(text[4:])
        if len(self._partial) > MAX_REPLY_LINES:
            self._protocol_error("reply with too many lines")
            return
        if len(text) > 3 and text[3] == "-":
            return
        reply = Reply(code, tuple(self._partial))
        self._partial, self._partial_code = [], None
        if self._waiters:
            self._waiters.pop(0).callback(reply)
        else:
            self._replies.append(reply)

    def _protocol_error(self, why: str) -> None:
        self._failure = SMTPFailure("protocol", why)
        self._fail_waiters()
        if self._transport is not None:
            self._transport.loseConnection()

    def _fail_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            assert self._failure is not None
            d.errback(self._failure)

    # -- what the session uses -----------------------------------------------------------

    @property
    def reusable(self) -> bool:
        """Connected, nothing failed, and nothing unread: safe to start another transaction
        on (`mailsrv.smtpclient.cache`)."""
        return (
            self._failure is None
            and self._transport is not None
            and not self._replies
            and not self._partial
            and not self._buffer
            and not self._waiters
        )

    def send(self, data: bytes) -> None:
        if self._failure is None and self._transport is not None:
            self._transport.write(data)

    async def next_reply(self, timeout: float) -> Reply:
        if self._replies:
            return self._replies.pop(0)
        if self._failure is not None:
            raise self._failure
        d: defer.Deferred[Reply] = defer.Deferred()
        self._waiters.append(d)

        def expired() -> None:
            if d.called:
                return
            self._failure = SMTPFailure("timeout", f"no reply within {timeout:g}s")
            if self._transport is not None:
                self._transport.abortConnection()
            self._fail_waiters()

        call = self._reactor.callLater(timeout, expired)
        try:
            return await d
        finally:
            if call.active():
                call.cancel()

    async def start_tls(self, options: Any, timeout: float) -> None:
        """Starts TLS as client and waits for the handshake to complete."""
        assert self._transport is not None
        self._handshake = defer.Deferred()
        handshake = self._handshake
        self._transport.startTLS(options)

        def expired() -> None:
            if not handshake.called:
                self._failure = SMTPFailure("timeout", "TLS handshake timed out")
                handshake.errback(self._failure)
                assert self._transport is not None
                self._transport.abortConnection()

        call = self._reactor.callLater(timeout, expired)
        try:
            await handshake
        finally:
            if call.active():
                call.cancel()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.loseConnection()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abortConnection()
