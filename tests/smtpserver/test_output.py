"""mailsrv.smtpserver.output.send_now: on a plain TCP connection with nothing buffered a reply is sent at
once (no writability registration, no reactor round); otherwise it goes through the transport."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.trial.unittest import TestCase

from mailsrv.smtpserver.output import send_now

R: Any = reactor


class Sender(Protocol):
    def connectionMade(self) -> None:
        send_now(self.transport, b"220 first\r\n")
        self.factory.registered.append(self.transport in R.getWriters())  # type: ignore[attr-defined]
        # Something already buffered: the next reply queues behind it, in order.
        self.transport.write(b"250 second\r\n")  # type: ignore[union-attr]
        send_now(self.transport, b"250 third\r\n")
        self.factory.registered.append(self.transport in R.getWriters())  # type: ignore[attr-defined]


class Receiver(Protocol):
    def __init__(self, done: Deferred[bytes]) -> None:
        self.data = b""
        self.done = done

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if self.data.endswith(b"third\r\n"):
            self.transport.loseConnection()  # type: ignore[union-attr]
            self.done.callback(self.data)


class SendNowTests(TestCase):
    async def test_sent_at_once_then_queued_in_order(self) -> None:
        factory = Factory.forProtocol(Sender)
        factory.registered = []  # type: ignore[attr-defined]
        port = R.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        done: Deferred[bytes] = Deferred()
        client = ClientFactory.forProtocol(lambda: Receiver(done))
        R.connectTCP("127.0.0.1", port.getHost().port, client)
        self.assertEqual(await done, b"220 first\r\n250 second\r\n250 third\r\n")
        self.assertEqual(factory.registered, [False, True])  # type: ignore[attr-defined]
