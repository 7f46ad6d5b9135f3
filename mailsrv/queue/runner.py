"""The queue runner: delivers due recipients of the outgoing queue (`queue/store.py`) to
their destination domains, records every attempt, and reschedules temporary failures.

Invariants:
- One attempt handles one (message, destination domain) group: the recipients of a message
  at the same domain share a session (RFC 5321 §3.3 allows many RCPTs per transaction).
- At most `max_per_domain` groups per destination domain and `max_total` overall are in
  flight; a slow or dead destination never blocks others, and a group already in flight
  is never started twice.
- Outcome per recipient: 2xx → "delivered", 5xx → "failed", 4xx or no answer → back to
  "queued" with `attempts + 1` and `next_attempt` from `backoff`, or "failed" once the
  message is older than `expire_seconds`. Every attempt is a row in `attempt` (the history
  shown by the CLI and web API), written in the same transaction as the status change.
- A message file is removed once no recipient of it is "queued" any more.
- Held messages (`message.hold = 1`) are skipped until released.
- When recipients fail (permanently or by expiry), one DSN (RFC 3464) goes to
  `notify(mail_from, dsn_bytes)` — the daemon delivers it to the sender's account — before
  the content is removed; never for the null reverse-path. It is sent by the last group of
  the message to finish among those in flight, so recipients failing together share one
  DSN, and `dsn_sent` makes sure no recipient is reported twice (also across restarts: the
  row is committed after `notify` returns). Recipients still queued `delay_dsn_after`
  seconds after arrival get one "delayed" DSN the same way (RFC 3464 Action: delayed).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from mailsrv.dns.resolver import Resolver
from mailsrv.queue.dsn import Action, DSNRecipient, make_dsn, should_notify
from mailsrv.queue.remote import DomainDelivery, PolicySource, deliver_to_domain
from mailsrv.queue.store import OutgoingQueue
from mailsrv.smtpclient import Envelope, Reply, SessionOptions

log = Logger()

_HISTORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempt (
    id INTEGER PRIMARY KEY,
    recipient_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    time REAL NOT NULL,
    host TEXT NOT NULL,               -- "host [ip]" of the last host tried, "" if none
    code INTEGER NOT NULL,
    reply TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempt_recipient ON attempt (recipient_id);
CREATE TABLE IF NOT EXISTS dsn_sent (
    recipient_id INTEGER NOT NULL,
    action TEXT NOT NULL,             -- "failed" or "delayed": each is reported at most once
    PRIMARY KEY (recipient_id, action)
);
"""

FIRST_RETRY = 7.5 * 60
MAX_RETRY = 16 * 3600


def backoff(attempts: int) -> float:
    """Seconds until the next try after `attempts` failed ones: 7.5 min doubling, at most 16 h
    (the total reaches ~4 days after 10 attempts)."""
    return float(min(FIRST_RETRY * (2 ** max(0, attempts - 1)), MAX_RETRY))


@dataclass(frozen=True)
class GroupToDeliver:
    """What an alternative deliverer (localserve) gets for one attempt."""

    message_id: int
    account: str  # the submitting account
    domain: str
    envelope: Envelope
    message: bytes
    attempts: Sequence[int]  # attempts made so far, per recipient of `envelope`


Deliverer = Callable[[GroupToDeliver], Awaitable[DomainDelivery]]


@dataclass(frozen=True)
class RunnerOptions:
    helo_name: str
    remote_port: int = 25  # [smtp] remote_port: only tests change it
    expire_seconds: float = 4 * 24 * 3600 + 3600
    delay_dsn_after: float = 4 * 3600
    max_per_domain: int = 2
    max_total: int = 50
    interval: float = 30.0  # seconds between scans when nothing wakes the runner earlier
    session: SessionOptions | None = None  # defaults: opportunistic TLS, RFC 5321 timeouts


class QueueRunner:
    def __init__(
        self,
        reactor: Any,
        queue: OutgoingQueue,
        resolver: Resolver,
        options: RunnerOptions,
        clock: Callable[[], float] = time.time,
        notify: Callable[[str, bytes], Awaitable[None]] | None = None,
        policies: PolicySource | None = None,
        deliverer: Deliverer | None = None,
    ) -> None:
        self.reactor = reactor
        self.queue = queue
        self.resolver = resolver
        self.options = options
        self.clock = clock
        self.notify = notify
        self.policies = policies  # MTA-STS; None: not enforced
        self.deliverer = deliverer  # None: SMTP to the domain's MX hosts
        self.session = options.session or SessionOptions(helo_name=options.helo_name)
        queue.db.executescript(_HISTORY_SCHEMA)
        queue.db.commit()
        self._in_flight: set[tuple[int, str]] = set()
        self._per_domain: dict[str, int] = {}
        self._loop: task.LoopingCall | None = None
        self._running: set[defer.Deferred[None]] = set()
        self._commit_waiters: list[defer.Deferred[None]] = []

    # -- service life ----------------------------------------------------------------------

    def start(self) -> None:
        self._loop = task.LoopingCall(self.kick)
        self._loop.clock = self.reactor
        self._loop.start(self.options.interval, now=True)

    async def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        for d in list(self._running):
            try:
                await d
            except Exception:
                pass

    def kick(self) -> None:
        """Starts the due deliveries (call after enqueue for an immediate first attempt)."""
        for d in self.start_due():
            self._running.add(d)
            d.addCallback(self._finished, d)  # _attempt never fails: it logs instead

    def _finished(self, _result: None, d: defer.Deferred[None]) -> None:
        self._running.discard(d)

    # -- one scan --------------------------------------------------------------------------

    def start_due(self) -> list[defer.Deferred[None]]:
        now = self.clock()
        rows = self.queue.db.execute(
            "SELECT r.message_id, r.domain FROM recipient r JOIN message m ON m.id = r.message_id"
            " WHERE r.status = 'queued' AND r.next_attempt <= ? AND m.hold = 0"
            " GROUP BY r.message_id, r.domain ORDER BY MIN(r.next_attempt)",
            (now,),
        ).fetchall()
        started = []
        for message_id, domain in rows:
            key = (int(message_id), str(domain))
            if key in self._in_flight:
                continue
            if len(self._in_flight) >= self.options.max_total:
                break
            if self._per_domain.get(key[1], 0) >= self.options.max_per_domain:
                continue
            self._in_flight.add(key)
            self._per_domain[key[1]] = self._per_domain.get(key[1], 0) + 1
            started.append(defer.ensureDeferred(self._attempt(*key)))
        return started

    async def run_once(self) -> None:
        """Delivers everything due now and waits for it (tests, `queue retry`)."""
        for d in self.start_due():
            await d

    async def _attempt(self, message_id: int, domain: str) -> None:
        try:
            await self._deliver_group(message_id, domain)
        except Exception:
            log.failure("queue delivery of {message_id} to {domain} failed", message_id=message_id, domain=domain)
        finally:
            self._in_flight.discard((message_id, domain))
            self._per_domain[domain] -= 1
            if not self._per_domain[domain]:
                del self._per_domain[domain]
            if self._loop is not None and self._loop.running:
                # A slot is free: start whatever is due now rather than at the next scan.
                self.reactor.callLater(0, self.kick)

    async def _deliver_group(self, message_id: int, domain: str) -> None:
        db = self.queue.db
        msg = db.execute("SELECT mail_from, created, account FROM message WHERE id = ?", (message_id,)).fetchone()
        rcpts = db.execute(
            "SELECT id, address, attempts FROM recipient WHERE message_id = ? AND domain = ? AND status = 'queued'",
            (message_id, domain),
        ).fetchall()
        if msg is None or not rcpts:
            return
        try:
            data = await self.resolver.in_thread(self.queue.path(message_id).read_bytes)
        except FileNotFoundError:
            return  # dropped (`mailsrv queue drop`) since the scan
        envelope = Envelope(str(msg[0]), tuple(str(r[1]) for r in rcpts))
        if self.deliverer is not None:
            group = GroupToDeliver(message_id, str(msg[2]), domain, envelope, data, [int(r[2]) for r in rcpts])
            result = await self.deliverer(group)
        else:
            result = await deliver_to_domain(
                self.reactor,
                self.resolver,
                domain,
                envelope,
                data,
                self.session,
                self.options.remote_port,
                self.policies,
            )
        if db.execute("SELECT 1 FROM message WHERE id = ?", (message_id,)).fetchone() is None:
            return  # dropped during the attempt: its rows are gone, there is nothing to record
        now = self.clock()
        expired = now - float(msg[1]) >= self.options.expire_seconds
        host = f"{result.hosts[-1].host} [{result.hosts[-1].ip}]" if result.hosts else ""
        for rid, address, attempts in rcpts:
            reply = result.replies.get(str(address)) or Reply(451, ("4.0.0 no reply",))
            if reply.positive:
                status, next_attempt = "delivered", now
            elif reply.permanent or expired:
                status, next_attempt = "failed", now
            else:
                status, next_attempt = "queued", now + backoff(int(attempts) + 1)
            db.execute(
                "UPDATE recipient SET status = ?, attempts = attempts + 1, next_attempt = ?, last_error = ?"
                " WHERE id = ?",
                (status, next_attempt, "" if reply.positive else str(reply)[:1000], rid),
            )
            db.execute(
                "INSERT INTO attempt (recipient_id, message_id, time, host, code, reply) VALUES (?, ?, ?, ?, ?, ?)",
                (rid, message_id, now, host, reply.code, str(reply)[:1000]),
            )
            log.info(
                "queue message {id} to {address}: {status} via {host}: {reply}",
                id=message_id,
                address=str(address),
                status="deferred" if status == "queued" else status,
                host=host or "-",
                reply=str(reply)[:300],
            )
        await self._commit()
        others_busy = any(k[0] == message_id and k[1] != domain for k in self._in_flight)
        if not others_busy:
            told = await self._notify(message_id, "failed", str(msg[0]), float(msg[1]), data, now)
            if now - float(msg[1]) >= self.options.delay_dsn_after:
                await self._notify(message_id, "delayed", str(msg[0]), float(msg[1]), data, now)
            if told:
                await self._remove_if_done(message_id)

    async def _notify(
        self, message_id: int, action: Action, mail_from: str, arrival: float, data: bytes, now: float
    ) -> bool:
        """Sends one DSN for the recipients of `message_id` newly in the `action` state. False
        when a DSN is owed but could not be handed over (the content is then kept)."""
        if self.notify is None or not should_notify(mail_from):
            return True
        db = self.queue.db
        rows = db.execute(
            "SELECT r.id, r.address, a.host, a.code, a.reply FROM recipient r"
            " JOIN attempt a ON a.id = (SELECT MAX(id) FROM attempt WHERE recipient_id = r.id)"
            " WHERE r.message_id = ? AND r.status = ?"
            " AND r.id NOT IN (SELECT recipient_id FROM dsn_sent WHERE action = ?) ORDER BY r.id",
            (message_id, "failed" if action == "failed" else "queued", action),
        ).fetchall()
        if not rows:
            return True
        failed = []
        for _rid, address, host, code, text in rows:
            reply = Reply(int(code), (str(text)[4:] if str(text)[:3].isdigit() else str(text),))
            failed.append(DSNRecipient(str(address), action, reply, str(host).split(" [")[0], now))
        dsn = make_dsn(self.options.helo_name, mail_from, data, failed, arrival, now)
        try:
            await self.notify(mail_from, dsn)
        except Exception:
            log.failure("DSN for queued message {message_id} not delivered", message_id=message_id)
            return False
        db.executemany(
            "INSERT OR IGNORE INTO dsn_sent (recipient_id, action) VALUES (?, ?)", [(int(r[0]), action) for r in rows]
        )
        db.commit()
        log.info(
            "queue message {id}: {action} DSN to {sender} for {count} recipient(s)",
            id=message_id,
            action=action,
            sender=mail_from,
            count=len(rows),
        )
        return True

    def _commit(self) -> defer.Deferred[None]:
        """Commits at the end of this reactor turn, once for every attempt that finished in
        it (group commit: each commit is an fsync with synchronous=FULL)."""
        d: defer.Deferred[None] = defer.Deferred()
        self._commit_waiters.append(d)
        if len(self._commit_waiters) == 1:
            self.reactor.callLater(0, self._commit_now)
        return d

    def _commit_now(self) -> None:
        waiters, self._commit_waiters = self._commit_waiters, []
        self.queue.db.commit()
        for d in waiters:
            d.callback(None)

    async def _remove_if_done(self, message_id: int) -> None:
        left = self.queue.db.execute(
            "SELECT COUNT(*) FROM recipient WHERE message_id = ? AND status = 'queued'", (message_id,)
        ).fetchone()
        if int(left[0]) == 0:
            # Rows stay (history, retired list); only the content goes, after any DSN.
            await self.resolver.in_thread(self.queue.path(message_id).unlink, True)

    def history(self, message_id: int) -> list[tuple[str, float, str, int, str]]:
        """(recipient, time, host, code, reply) of every attempt for a message, oldest first."""
        rows = self.queue.db.execute(
            "SELECT r.address, a.time, a.host, a.code, a.reply FROM attempt a JOIN recipient r ON r.id = a.recipient_id"
            " WHERE a.message_id = ? ORDER BY a.id",
            (message_id,),
        ).fetchall()
        return [(str(r[0]), float(r[1]), str(r[2]), int(r[3]), str(r[4])) for r in rows]
