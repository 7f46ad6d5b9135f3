# mypy: disable-error-code="no-untyped-call"
# (twisted.web's Resource and Request methods are unannotated.)
"""Live updates for the webmail: a Server-Sent Events stream of the account's change log.

`GET <webmail>/events?token=T&since=SEQ`. EventSource cannot send the CSRF header, so the
stream is authorised by a token from the `EventToken` API call: random, bound to the
session's account, valid for `TOKEN_TTL` seconds and for one connection only. The stream
sends every change after `since` (`ops.webmail.changes_after`: the log entry with the list
rows of the messages it added or changed) as

    id: <seq>\\nevent: change\\ndata: <ChangeItem JSON>\\n\\n

and `event: reload` with `{"next_seq": N}` when the log no longer reaches back to `since`.
A client that loses the connection asks for a new token and reconnects with the last id it
saw, and gets exactly what it missed (the log is the truth; the store's change listener is
only the hint to read it). A comment line every `KEEPALIVE` seconds keeps proxies and the
site's idle timeout from closing a quiet stream. At most `MAX_STREAMS` streams per account.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from typing import Any

import msgspec
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from mailsrv.ops import webmail as wmops
from mailsrv.ops.webmail import Webmail
from mailsrv.server import Server

log = Logger()

TOKEN_TTL = 60.0
MAX_TOKENS = 10_000
MAX_STREAMS = 20
KEEPALIVE = 15.0
_encode = msgspec.json.Encoder().encode


class EventTokens:
    """Single-use tokens for event streams: token → (account, expiry)."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self._tokens: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def issue(self, account: str) -> str:
        now = self.clock.seconds()
        while self._tokens and (len(self._tokens) >= MAX_TOKENS or next(iter(self._tokens.values()))[1] < now):
            self._tokens.popitem(last=False)
        token = secrets.token_urlsafe(24)
        self._tokens[token] = (account, now + TOKEN_TTL)
        return token

    def take(self, token: str) -> str | None:
        """The account the token was issued to, once; None when unknown, used or expired."""
        found = self._tokens.pop(token, None)
        if found is None or found[1] < self.clock.seconds():
            return None
        return found[0]


class _Stream:
    """One open event stream."""

    def __init__(self, wm: Webmail, request: Request, since: int, clock: Any, done: Any) -> None:
        self.wm = wm
        self.request = request
        self.seq = since
        self.clock = clock
        self.done = done
        self.closed = False
        self.pumping = False
        self.again = False
        self.remove_listener = wm.store.add_listener(self.changed)
        self.keepalive = clock.callLater(KEEPALIVE, self.ping)

    def changed(self, change: object, origin: object | None) -> None:
        self.pump()

    def pump(self) -> None:
        if self.closed:
            return
        if self.pumping:
            self.again = True  # more arrived while reading: read once more after
            return
        self.pumping = True
        d = Deferred.fromCoroutine(self._pump())
        d.addErrback(lambda f: log.failure("event stream of {account} failed", f, account=self.wm.account))
        d.addBoth(self._pumped)

    def _pumped(self, _: object) -> None:
        self.pumping = False
        if self.again:
            self.again = False
            self.pump()

    async def _pump(self) -> None:
        while not self.closed:
            batch = await wmops.changes_after(self.wm, self.seq, 200)
            if self.closed:
                return
            if batch.reload:
                self.write(b"event: reload\ndata: " + _encode({"next_seq": batch.next_seq}) + b"\n\n")
            for change in batch.changes:
                self.write(b"id: %d\nevent: change\ndata: " % change.seq + _encode(change) + b"\n\n")
            self.seq = batch.next_seq
            if not batch.more:
                return

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.request.write(data)

    def ping(self) -> None:
        self.write(b": keepalive\n\n")
        if not self.closed:
            self.keepalive = self.clock.callLater(KEEPALIVE, self.ping)

    def close(self, _: object = None) -> None:
        if self.closed:
            return
        self.closed = True
        self.remove_listener()
        if self.keepalive.active():
            self.keepalive.cancel()
        self.done()


class EventStreamResource(Resource):
    """`<webmail>/events`: see the module docstring."""

    isLeaf = True

    def __init__(self, server: Server, tokens: EventTokens) -> None:
        super().__init__()
        self.mailsrv = server
        self.tokens = tokens
        self.open: dict[str, int] = {}

    def render_GET(self, request: Request) -> Any:
        token = (request.args.get(b"token") or [b""])[0].decode("ascii", "replace")
        account = self.tokens.take(token)
        if account is None:
            request.setResponseCode(403)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"event stream token missing, used or expired: ask for a new one\n"
        if self.open.get(account, 0) >= MAX_STREAMS:
            request.setResponseCode(429)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"too many event streams for this account\n"
        raw_since = (request.args.get(b"since") or [request.getHeader(b"last-event-id") or b""])[0]
        since = int(raw_since) if raw_since.isdigit() and len(raw_since) < 19 else -1
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-accel-buffering", b"no")
        wm = Webmail(self.mailsrv, account)
        self.open[account] = self.open.get(account, 0) + 1

        def done() -> None:
            self.open[account] -= 1
            if not self.open[account]:
                del self.open[account]

        clock: Any = self.mailsrv.reactor
        request.write(b"retry: 3000\n\n")

        # Registered now: the client may go away before the stream exists.
        opened: list[_Stream] = []
        gone: list[bool] = []

        def finished(_: object) -> None:
            gone.append(True)
            if opened:
                opened[0].close()
            else:
                done()

        request.notifyFinish().addBoth(finished)

        async def start() -> None:
            start_seq = since if since >= 0 else await wmops.last_change(wm)
            if gone:
                return
            stream = _Stream(wm, request, start_seq, clock, done)
            opened.append(stream)
            stream.pump()

        def failed(failure: Any) -> None:
            log.failure("event stream of {account} did not start", failure, account=account)
            request.finish()

        Deferred.fromCoroutine(start()).addErrback(failed)
        return NOT_DONE_YET
