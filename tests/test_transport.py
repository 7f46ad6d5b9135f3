"""mailsrv.transport.Hangup: a hung-up connection is aborted if the peer holds it open."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from mailsrv.transport import HANGUP_GRACE, Hangup


def test_aborts_when_the_peer_holds_the_connection() -> None:
    clock = Clock()
    transport = StringTransport()
    hangup = Hangup(clock)
    hangup(transport)
    assert transport.disconnecting and not transport.disconnected
    clock.advance(HANGUP_GRACE)
    assert transport.disconnected  # StringTransport's abortConnection


def test_no_abort_once_the_connection_is_lost() -> None:
    clock = Clock()
    transport = StringTransport()
    hangup = Hangup(clock)
    hangup(transport)
    hangup(transport)  # a second hang-up keeps the one timer
    assert len(clock.getDelayedCalls()) == 1
    hangup.cancel()
    assert clock.getDelayedCalls() == []
    clock.advance(HANGUP_GRACE)
    assert not transport.disconnected
