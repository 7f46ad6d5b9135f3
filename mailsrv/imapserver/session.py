"""The IMAP session protocol (being written: see the package notes in `mailsrv.imapserver`)."""

from __future__ import annotations

from twisted.internet.protocol import Factory, Protocol


class Session(Protocol):
    pass


class SessionFactory(Factory):
    protocol = Session

    def __init__(self, server: object, listener: object) -> None:
        self.server = server
        self.listener = listener
