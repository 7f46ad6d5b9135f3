"""The factory behind every SMTP and submission listener: per-IP connection counting and
the per-process secret for fake SCRAM salts of unknown users."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.protocol import Factory, Protocol

from mailsrv.config.types import ListenerConfig

if TYPE_CHECKING:
    from mailsrv.server import Server


class SMTPFactory(Factory):
    noisy = False

    def __init__(self, server: Server, listener: ListenerConfig) -> None:
        self.server = server
        self.listener = listener
        self._per_ip: dict[str, int] = {}

    def buildProtocol(self, addr: Any) -> Protocol:
        from mailsrv.smtpserver.session import SMTPSession

        p = SMTPSession(self, self.listener)
        return p

    def connection_opened(self, ip: str, limit: int) -> bool:
        count = self._per_ip.get(ip, 0) + 1
        self._per_ip[ip] = count
        return count <= limit

    def connection_closed(self, ip: str) -> None:
        count = self._per_ip.get(ip, 0) - 1
        if count <= 0:
            self._per_ip.pop(ip, None)
        else:
            self._per_ip[ip] = count
