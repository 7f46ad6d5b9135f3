# mypy: disable-error-code="no-untyped-call"
# (Twisted services, web and endpoints are unannotated; calling them is fine.)
"""The control socket: how the `mailsrv` CLI asks the running daemon to change things.

A Unix stream socket at `<data_dir>/ctl.sock`, mode 0600 (only the daemon's user may talk to
it). The protocol is one JSON object per line each way:

    request:  {"command": "account.add", "args": {"account": "bob", ...}}
    response: {"ok": true, "result": ...}  or  {"ok": false, "error": "one line", "code": "notFound"}

Requests on one connection are answered in order. Commands are the ops operations
(`mailsrv.ops.catalog.OPERATIONS`, run through `mailsrv.admin.run`); `code` is the
`OpsError.code` of a refusal ("error" for other refusals, "internal" for a bug).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, cast

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from mailsrv import admin
from mailsrv.ops.errors import InvalidInput, OpsError
from mailsrv.server import Server

log = Logger()
MAX_REQUEST = 1024 * 1024


@implementer(IHalfCloseableProtocol)
class ControlProtocol(LineOnlyReceiver):
    """Requests are queued and answered strictly in order, even when one of them runs in a
    thread. A client that shuts down its sending side after its requests (`socat`, a shell
    pipe) still gets every answer before the connection closes."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_REQUEST
    # Reading pauses while this many requests wait; pipelining beyond it costs nothing to the daemon.
    MAX_QUEUED = 8

    def __init__(self, server: Server) -> None:
        self.server = server
        self._tail: Deferred[None] = succeed(None)
        self._queued = 0
        self._read_closed = False

    def lineReceived(self, line: bytes) -> None:
        self._queued += 1
        if self._queued == self.MAX_QUEUED:
            cast(Any, self.transport).pauseProducing()
        self._tail.addCallback(lambda _: self._process(line))

    def _process(self, line: bytes) -> Deferred[None]:
        d = maybeDeferred(self._handle, line)
        d.addCallbacks(self._respond, self._respond_error)
        # Whatever happened, the queue moves on (a failure here would stop every later answer).
        d.addErrback(lambda f: log.failure("control reply failed", failure=f))
        d.addBoth(self._done)
        return d

    def _done(self, _: object) -> None:
        self._queued -= 1
        transport: Any = self.transport
        if self._queued == self.MAX_QUEUED - 1 and transport.connected and not self._read_closed:
            transport.resumeProducing()
        if self._queued == 0 and self._read_closed:
            transport.loseConnection()

    def readConnectionLost(self) -> None:
        self._read_closed = True
        if self._queued == 0:
            cast(Any, self.transport).loseConnection()

    def writeConnectionLost(self) -> None:
        cast(Any, self.transport).loseConnection()

    def _handle(self, line: bytes) -> Deferred[Any]:
        try:
            request = json.loads(line)
            name = request["command"]
            args = request.get("args", {})
            if not isinstance(name, str) or not isinstance(args, dict):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise InvalidInput("malformed control request") from None
        log.info("control command {command}", command=name)
        return admin.run(self.server, name, args)

    def _respond(self, result: Any) -> None:
        self.sendLine(json.dumps({"ok": True, "result": result}).encode())

    def _respond_error(self, failure: Failure) -> None:
        error = failure.value
        if isinstance(error, OpsError):
            message, code = error.message, error.code
        elif isinstance(error, admin.AdminError):
            message, code = str(error), "error"
        else:
            log.failure("control command failed", failure=failure)
            message, code = f"internal error: {failure.getErrorMessage()}", "internal"
        message = " ".join(message.split())  # one line, whatever the message held
        self.sendLine(json.dumps({"ok": False, "error": message, "code": code}).encode())

    def lineLengthExceeded(self, line: bytes) -> None:
        self.sendLine(json.dumps({"ok": False, "error": "request too long", "code": "invalid"}).encode())
        transport: Any = self.transport
        transport.loseConnection()


class ControlFactory(Factory):
    noisy = False

    def __init__(self, server: Server) -> None:
        self.server = server

    def buildProtocol(self, addr: Any) -> Protocol:
        p = ControlProtocol(self.server)
        p.factory = self
        return p


class DaemonNotRunning(Exception):
    pass


class ControlError(Exception):
    """The daemon refused the request; `str()` is its one-line reason."""


def daemon_running(control_socket: Path) -> bool:
    """True when a daemon answers on this control socket (it owns the data directory)."""
    if not control_socket.exists():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(control_socket))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def call(socket_path: Path, command: str, args: dict[str, Any], timeout: float = 60.0) -> Any:
    """Client side (blocking, for the CLI). Raises DaemonNotRunning when nobody listens."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(socket_path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise DaemonNotRunning() from None
        sock.sendall(json.dumps({"command": command, "args": args}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ControlError("the daemon closed the control connection")
            buf += chunk
    finally:
        sock.close()
    reply = json.loads(buf)
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "unknown error"))
    return reply.get("result")
