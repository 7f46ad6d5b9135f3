"""The webhook sender: turns the queue's outbox events into webhooks for the accounts that
want them (mailsrv/webhooks/store.py) and calls them.

Invariants:
- Pulling: events after the stored cursor are read from the outbox, the webhooks made from
  them are committed with the new cursor (durably), and only then is the outbox acknowledged
  up to it: a crash repeats no webhook and loses none. Events of accounts without a
  matching webhook setting are skipped (and acknowledged).
- Only an HTTP 200 answer completes a webhook. Any other answer, a timeout or a connection
  failure schedules the next attempt after `backoff(attempts)`: 1 minute doubling to at most
  16 hours (localserve: 1 second doubling to 16 seconds, so a developer sees retries at
  once); after `max_attempts` the webhook is retired as failed.
- Redirects are not followed (a 3xx is a failed attempt). Targets are checked at connect
  time (mailsrv/webhooks/targets.py). At most `max_in_flight` calls run at once.
- Every call carries `X-Mox-Webhook-ID` and `X-Mox-Webhook-Attempt` (mox), the account's
  `Authorization` value if set, and the Standard Webhooks headers when the account has a
  signing secret (mailsrv/webhooks/signing.py). The webhook id is the same in both.
- The URL and Authorization value are read when the call is made: fixing a URL fixes the
  webhooks still queued; a URL removed retires them as "disabled".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from treq.client import HTTPClient
from twisted.application.service import Service
from twisted.internet import defer, protocol, task
from twisted.internet.base import DelayedCall
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool

from mailsrv.queue.interfaces import QueueEvent
from mailsrv.webhooks import payload, signing
from mailsrv.webhooks.store import Hook, NewHook, WebhookStore
from mailsrv.webhooks.targets import CheckedEndpointFactory

if TYPE_CHECKING:
    from mailsrv.server import Server

log = Logger()

PULL_BATCH = 500
MAX_RESPONSE = 64 * 1024  # octets of a response body read (and then ignored)
STOP_GRACE = 10.0
USER_AGENT = b"mailsrv-webhooks"
PURGE_INTERVAL = 3600.0


@dataclass(frozen=True)
class SenderOptions:
    first_retry: float = 60.0
    max_retry: float = 16 * 3600.0
    max_attempts: int = 14  # 1 min ... 16 h: about 3 days of trying
    timeout: float = 30.0
    max_in_flight: int = 20
    interval: float = 1.0  # seconds between looks at the outbox and the due webhooks
    allow_private: bool = False


LOCALSERVE = SenderOptions(first_retry=1.0, max_retry=16.0, max_attempts=10, interval=0.25, allow_private=True)


def backoff(attempts: int, options: SenderOptions) -> float:
    """Seconds until the next try after `attempts` failed ones: doubling from `first_retry`,
    at most `max_retry`."""
    return float(min(options.first_retry * 2 ** max(0, attempts - 1), options.max_retry))


def make_hook(store: WebhookStore, event: QueueEvent) -> NewHook | None:
    """The webhook an outbox event gives, or None when its account does not want it."""
    if not event.account:
        return None
    if event.kind == "incoming":
        if not store.has_incoming(event.account) or not event.payload:
            return None
        return NewHook(account=event.account, kind="incoming", event="incoming", payload=event.payload)
    if not store.wants_outgoing(event.account, event.kind):
        return None
    body = payload.outgoing(
        event.kind,
        queue_id=event.message_id,
        queued_at=time.time(),
        code=event.code,
        reply=event.reply,
        dsn=event.dsn,
        suppressing=event.suppressing,
        fromid=event.fromid,
        message_id=event.header_message_id,
        subject=event.subject,
        extra=event.extra,
    )
    return NewHook(
        account=event.account,
        kind="outgoing",
        event=event.kind,
        payload=payload.encode(body),
        queue_id=event.message_id,
        recipient=event.recipient,
    )


class _Discard(protocol.Protocol):
    """Reads a response body up to MAX_RESPONSE octets, keeps its start for the log."""

    def __init__(self, done: defer.Deferred[bytes]) -> None:
        self.done = done
        self.head = b""
        self.size = 0

    def dataReceived(self, data: bytes) -> None:
        self.size += len(data)
        if len(self.head) < 200:
            self.head += data[: 200 - len(self.head)]
        if self.size > MAX_RESPONSE and self.transport is not None:
            self.transport.stopProducing()

    def connectionLost(self, reason: Any = None) -> None:
        if not self.done.called:
            self.done.callback(self.head)


class WebhookSender(Service):
    name = "webhooks"

    def __init__(self, server: Server, options: SenderOptions) -> None:
        assert server.webhooks is not None
        self.server = server
        self.store: WebhookStore = server.webhooks
        self.options = options
        self.reactor: Any = server.reactor
        self.pool = HTTPConnectionPool(self.reactor, persistent=True)  # type: ignore[no-untyped-call]
        self.pool.maxPersistentPerHost = options.max_in_flight  # calls to one receiver reuse connections
        self.pool.cachedConnectionTimeout = 60
        factory = CheckedEndpointFactory(
            self.reactor, server.resolver.addresses, options.allow_private, options.timeout
        )
        agent = Agent.usingEndpointFactory(self.reactor, factory, pool=self.pool)  # type: ignore[no-untyped-call]
        self.http = HTTPClient(agent)
        self._next_purge = 0.0
        self._loop: task.LoopingCall | None = None
        self._first_tick: DelayedCall | None = None
        self._pulling = False
        self._ticking: defer.Deferred[None] | None = None
        self._running: set[defer.Deferred[None]] = set()
        self._stopping = False
        self.sent = 0  # calls completed with 200 (for measurements)

    # -- service life ----------------------------------------------------------------------

    def startService(self) -> None:
        base: Any = super()
        base.startService()
        self._stopping = False
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = self.reactor
        # The first tick waits for the reactor to run: a start-up that fails later (a port in use)
        # must not leave a pool thread of ours busy, or the process cannot exit.
        self._loop.start(self.options.interval, now=False)
        self._first_tick = cast(DelayedCall, self.reactor.callLater(0, self.tick))

    def stopService(self) -> defer.Deferred[None]:
        base: Any = super()
        base.stopService()
        self._stopping = True
        if self._first_tick is not None and self._first_tick.active():
            self._first_tick.cancel()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        if self._ticking is not None and not self._ticking.called:
            await self._ticking  # a pull moving events into the webhook queue finishes first
        running = list(self._running)
        if running:
            waiting: defer.Deferred[Any] = defer.DeferredList(running, consumeErrors=True)
            waiting.addTimeout(STOP_GRACE, self.reactor)
            try:
                await waiting
            except defer.TimeoutError:
                log.warn("{n} webhook calls cut off by the stop; sent again after the restart", n=len(self._running))
        await self.pool.closeCachedConnections()  # type: ignore[no-untyped-call]

    # -- one tick --------------------------------------------------------------------------

    def tick(self) -> defer.Deferred[None]:
        """Pulls new events, then starts the due calls. Never fails (logs instead)."""
        d = self._ticking = defer.ensureDeferred(self._tick())
        return d

    async def _tick(self) -> None:
        try:
            await self.pull()
        except Exception:
            log.failure("webhook queue: reading the event outbox failed")
        self.start_due()
        now = time.time()
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL
            try:
                purged = await self.store.purge_expired(now)
            except Exception:
                log.failure("webhook queue: forgetting expired retired webhooks failed")
            else:
                if purged:
                    log.info("webhook queue: {n} retired webhooks forgotten", n=purged)

    async def pull(self) -> int:
        """Turns outbox events into webhooks until the outbox is read; how many were made."""
        if self._pulling:
            return 0
        self._pulling = True
        made = 0
        try:
            while not self._stopping:
                cursor = self.store.cursor()
                events = await self.server.queue.events_after(cursor, PULL_BATCH)
                if not events:
                    break
                hooks = [h for h in (make_hook(self.store, e) for e in events) if h is not None]
                last = events[-1].seq
                await self.store.add(hooks, last)
                await self.server.queue.acknowledge_events(last)
                made += len(hooks)
                if hooks:
                    self.start_due()
                if len(events) < PULL_BATCH:
                    break
        finally:
            self._pulling = False
        return made

    def start_due(self) -> None:
        if self._stopping:
            return
        free = self.options.max_in_flight - len(self._running)
        if free <= 0:
            return
        for hook in self.store.due(time.time(), free):
            d = defer.ensureDeferred(self._call(hook))
            self._running.add(d)
            d.addBoth(self._finished, d)

    def _finished(self, _result: object, d: defer.Deferred[None]) -> None:
        self._running.discard(d)
        if not self._stopping:
            self.reactor.callLater(0, self.start_due)

    # -- one call --------------------------------------------------------------------------

    async def _call(self, hook: Hook) -> None:
        try:
            await self._attempt(hook)
        except Exception:
            log.failure("webhook {id}: recording the attempt failed", id=hook.id)
            self.store.release(hook.id)

    async def _attempt(self, hook: Hook) -> None:
        settings = self.store.settings(hook.account)
        if hook.kind == "incoming":
            url, authorization = settings.incoming_url, settings.incoming_authorization
        else:
            url, authorization = settings.outgoing_url, settings.outgoing_authorization
        now = time.time()
        if not url:
            await self.store.finish_attempt(hook.id, "webhook URL removed", now, outcome="disabled")
            return
        attempt = hook.attempts + 1
        body = hook.payload.encode("utf-8")
        webhook_id = str(hook.id)
        headers: dict[bytes | str, bytes | str] = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT.decode(),
            "X-Mox-Webhook-ID": webhook_id,
            "X-Mox-Webhook-Attempt": str(attempt),
        }
        headers.update(signing.headers(self.store.secret(hook.account), webhook_id, int(now), body))
        if authorization:
            headers["Authorization"] = authorization
        code, result = await self._post(url, headers, body)
        now = time.time()
        if code == 200:
            self.sent += 1
            await self.store.finish_attempt(hook.id, result, now, outcome="delivered")
        elif self._stopping and code == 0:
            self.store.release(hook.id)  # cut off by the stop: not an attempt
        elif attempt >= self.options.max_attempts:
            log.info("webhook {id} for {account} failed for good: {r}", id=hook.id, account=hook.account, r=result)
            await self.store.finish_attempt(hook.id, result, now, outcome="failed")
        else:
            delay = backoff(attempt, self.options)
            log.info(
                "webhook {id} for {account}: {result}; attempt {n} again in {delay:.0f}s",
                id=hook.id,
                account=hook.account,
                result=result,
                n=attempt + 1,
                delay=delay,
            )
            await self.store.finish_attempt(hook.id, result, now, next_attempt=now + delay)

    async def _post(self, url: str, headers: dict[bytes | str, bytes | str], body: bytes) -> tuple[int, str]:
        """(HTTP status, text for the record); status 0 when no answer came."""
        try:
            response = await self.http.post(
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                unbuffered=True,
                reactor=self.reactor,
                timeout=self.options.timeout,
            )
        except (defer.TimeoutError, defer.CancelledError):
            return 0, f"no answer within {self.options.timeout:.0f}s"
        except Exception as e:
            return 0, _describe(e)
        done: defer.Deferred[bytes] = defer.Deferred()
        response.deliverBody(_Discard(done))
        done.addTimeout(self.options.timeout, self.reactor)
        try:
            await done
        except Exception:
            pass  # the status is what counts
        return int(response.code), f"HTTP {response.code}"


def _describe(e: Exception) -> str:
    text = str(e) or type(e).__name__
    if hasattr(e, "reasons"):  # ResponseNeverReceived, RequestTransmissionFailed
        text = "; ".join(str(r.value) for r in e.reasons) or text
    return " ".join(text.split())[:300]
