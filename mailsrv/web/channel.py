# mypy: disable-error-code="no-untyped-call,misc"
# (twisted.web's HTTPChannel is unannotated.)
"""The HTTP connection: Twisted's HTTPChannel with an absolute deadline per request.

Twisted's own timeout restarts on every byte received, so a client trickling one byte
every few seconds kept a connection (and a file descriptor) for ever (issue 17 item 3).
Here each request must arrive complete, headers and body, within `request_timeout`
seconds of the connection opening or of the previous response; the deadline is not
moved by data. It also bounds how long an idle keep-alive connection stays open.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.web.http import HTTPChannel

log = Logger()


class DeadlineHTTPChannel(HTTPChannel):
    request_timeout: float = 30.0  # set per site by `deadline_channel`
    _deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._arm()

    def _arm(self) -> None:
        if self._deadline is None or not self._deadline.active():
            self._deadline = self.callLater(self.request_timeout, self._deadline_passed)

    def _disarm(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def allContentReceived(self) -> None:
        self._disarm()  # the request is in: answering it is our business, not a deadline's
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        super().requestDone(request)
        if self.transport is not None and not getattr(self.transport, "disconnecting", False):
            self._arm()

    def connectionLost(self, reason: Any = None) -> None:
        self._disarm()
        super().connectionLost(reason)

    def _deadline_passed(self) -> None:
        self._deadline = None
        peer = self.transport.getPeer() if self.transport is not None else None
        log.info("HTTP request deadline passed: closing the connection from {peer}", peer=getattr(peer, "host", "?"))
        if self.transport is not None:
            self.transport.abortConnection()


def deadline_channel(request_timeout: float) -> type[DeadlineHTTPChannel]:
    """A DeadlineHTTPChannel class with this deadline, for `Site.protocol`."""
    return type("DeadlineHTTPChannel", (DeadlineHTTPChannel,), {"request_timeout": float(request_timeout)})
