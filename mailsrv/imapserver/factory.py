"""The protocol factory of one IMAP listener: per-address connection limits and the BYE
every session gets when the daemon stops."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from mailsrv.imapserver import responses
from mailsrv.imapserver.rendered import RenderedCache
from mailsrv.imapserver.session import Session
from mailsrv.transport import Hangup

if TYPE_CHECKING:
    from mailsrv.config.types import ListenerConfig
    from mailsrv.server import Server


class _Refuse(Protocol):
    """Answers a connection over the per-address limit with BYE and hangs up."""

    def __init__(self, reactor: Any) -> None:
        self._hangup = Hangup(reactor)

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.write(responses.untagged(b"BYE", b"too many connections from your address"))
        self._hangup(transport)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._hangup.cancel()


class SessionFactory(Factory):
    noisy = False  # sessions log their own connects; no "Starting factory" lines

    def __init__(self, server: Server, listener: ListenerConfig) -> None:
        self.server = server
        self.listener = listener
        self.connections_per_ip: dict[str, int] = {}
        self.sessions: set[Session] = set()
        self.rendered = RenderedCache()  # FETCH ENVELOPE/BODYSTRUCTURE, shared by the sessions
        self._shutdown_trigger: Any = None
        self._all_closed: Deferred[None] | None = None

    def startFactory(self) -> None:
        # At daemon shutdown the listening ports close and then every connection is cut in
        # the same reactor turn, before a BYE written at port close could be sent. So say
        # BYE from a "before shutdown" trigger and let the reactor wait for the goodbyes.
        add = getattr(self.server.reactor, "addSystemEventTrigger", None)
        if add is not None:
            self._shutdown_trigger = add("before", "shutdown", self._say_bye)

    def stopFactory(self) -> None:
        """The listener stops: tell every open session (RFC 9051 §7.1.5)."""
        if self._shutdown_trigger is not None:
            cast(Any, self.server.reactor).removeSystemEventTrigger(self._shutdown_trigger)
            self._shutdown_trigger = None
        self._say_bye()

    def _say_bye(self) -> Deferred[None] | None:
        for session in list(self.sessions):
            session.write(responses.untagged(b"BYE", b"server shutting down"))
            session.close()
        if not self.sessions:
            return None
        if self._all_closed is not None:
            return None  # already waiting (trigger first, then the port's stopFactory)
        done: Deferred[None] = Deferred()
        self._all_closed = done
        # Peers that do not read must not hold up the shutdown.
        timer = cast(Any, self.server.reactor).callLater(1.0, self._closed_all)
        done.addBoth(lambda result: timer.cancel() if timer.active() else None)
        return done

    def _closed_all(self) -> None:
        done, self._all_closed = self._all_closed, None
        if done is not None:
            done.callback(None)

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        ip = str(getattr(addr, "host", ""))
        count = self.connections_per_ip.get(ip, 0)
        if ip and count >= self.server.config.limits.max_connections_per_ip:
            refuse = _Refuse(self.server.reactor)
            refuse.factory = self
            return refuse
        self.connections_per_ip[ip] = count + 1
        session = Session(self.server, self.listener)
        session.factory = self
        self.sessions.add(session)
        return session

    def session_closed(self, session: Session, ip: str) -> None:
        self.sessions.discard(session)
        if not self.sessions:
            self._closed_all()
        count = self.connections_per_ip.get(ip, 0) - 1
        if count > 0:
            self.connections_per_ip[ip] = count
        else:
            self.connections_per_ip.pop(ip, None)
