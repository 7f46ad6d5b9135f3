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
- A delivery is committed as soon as the peer's final reply to the data is positive,
  before QUIT (`on_accepted`): a crash can then resend only messages whose 250 arrived in
  the instant before the crash — the duplicate window every SMTP client has (RFC 5321 §6.1).
- A message is finished once no recipient of it is "queued" any more and any DSN owed is
  handed over: then it is retired (rows and history kept until `retired_until`, content
  removed) when `retired_keep(account)` is positive, else removed at once. `tidy()` (the
  service runs it at start and hourly) finishes messages a crash or a failed DSN left
  unfinished and forgets retired messages whose keep period has passed.
- With `reuse_connections` (the daemon), a session to an MX host is kept idle after a
  message and carries the next message to the same host (`mailsrv.smtpclient.cache`); it
  starts another transaction only after the previous delivery was committed, as QUIT does.
  `stop()` closes the idle ones.
- Held messages (`message.hold = 1`) are skipped until released.
- When recipients fail (permanently or by expiry), one DSN (RFC 3464) goes to
  `notify(mail_from, dsn_bytes)` — the daemon delivers it to the sender's account — before
  the content is removed; never for the null reverse-path. It is sent by the last group of
  the message to finish among those in flight, so recipients failing together share one
  DSN, and `dsn_sent` makes sure no recipient is reported twice (also across restarts: the
  row is committed after `notify` returns). Recipients still queued `delay_dsn_after`
  seconds after arrival get one "delayed" DSN the same way (RFC 3464 Action: delayed).
- DSN requests (RFC 3461): a recipient gets a failure or delay DSN only when its NOTIFY
  allows it (no NOTIFY: both; NEVER: none). NOTIFY=SUCCESS gets a "relayed" DSN when the
  host that accepted the message did not offer DSN; when it did, NOTIFY/ORCPT/RET/ENVID went
  on with the message (`dsn_passed`) and success is that host's to report (§5.2.2.2). RET
  and ENVID choose what the DSN returns and carries (`mailsrv.queue.dsn`).
- Send later: recipients on this server queued with a release time have the fixed transport
  `LOCAL_TRANSPORT` and go to `local_deliverer` (mailsrv/ops/scheduled.py: the same local
  delivery as an immediate one) instead of over SMTP, with the same attempts, retries, events
  and DSNs, but no suppression list. A message marked `sent_copy` has its submitter's Sent
  copy stored by `save_sent` at its first attempt, then the mark is cleared (`save_sent` is
  idempotent: a crash in between stores nothing twice).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsrv.dns.resolver import Resolver
from mailsrv.dsnparams import MessageDSN, RecipientDSN
from mailsrv.maillog import Attempt
from mailsrv.queue import outbox, suppression
from mailsrv.queue.admin import attempt_history, delete_rows, ensure_attempt_transport, expired_retired
from mailsrv.queue.dsn import Action, DSNRecipient, make_dsn, should_notify
from mailsrv.queue.interfaces import LOCAL_TRANSPORT
from mailsrv.queue.remote import (
    AcceptedByHost,
    DomainDelivery,
    HostAttempt,
    PolicySource,
    deliver_to_domain,
    tls_optional,
)
from mailsrv.queue.routes import DIRECT, Routes
from mailsrv.queue.smarthost import deliver_via_smarthost
from mailsrv.queue.store import SQLiteOutgoingQueue
from mailsrv.smtpclient import Envelope, RecipientOutcome, Reply, SessionOptions
from mailsrv.smtpclient.cache import ConnectionCache

log = Logger()
# Seconds a stopping runner waits for deliveries in flight (systemd's default stop timeout is 90).
STOP_GRACE = 15.0

_HISTORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempt (
    id INTEGER PRIMARY KEY,
    recipient_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    time REAL NOT NULL,
    host TEXT NOT NULL,               -- "host [ip]" of the last host tried, "" if none
    code INTEGER NOT NULL,
    reply TEXT NOT NULL,
    transport TEXT NOT NULL DEFAULT ''  -- the transport of the attempt (mailsrv/config/transports.py)
);
CREATE INDEX IF NOT EXISTS attempt_recipient ON attempt (recipient_id);
CREATE TABLE IF NOT EXISTS dsn_sent (
    recipient_id INTEGER NOT NULL,
    action TEXT NOT NULL,             -- "failed", "delayed" or "relayed": each is reported at most once
    PRIMARY KEY (recipient_id, action)
);
"""

FIRST_RETRY = 7.5 * 60
MAX_RETRY = 16 * 3600
PURGE_BATCH = 500  # retired messages forgotten per reactor turn (each batch is one commit)
SCAN_PAGE = 200  # due recipients read per query when looking for attempts to start


def backoff(attempts: int, first: float = FIRST_RETRY, maximum: float = MAX_RETRY) -> float:
    """Seconds until the next try after `attempts` failed ones: 7.5 min doubling, at most 16 h
    (the total reaches ~4 days after 10 attempts); localserve passes seconds."""
    return float(min(first * (2 ** max(0, attempts - 1)), maximum))


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
# The Sent copy of a send-later message: (queue id, account, message as queued, every recipient).
SentSaver = Callable[[int, str, bytes, Sequence[str]], Awaitable[None]]


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
    # Keep idle connections for the next message to the same host (mailsrv.smtpclient.cache).
    # The daemon does; off by default so that a runner used without `stop()` leaves nothing open.
    reuse_connections: bool = False
    first_retry: float = FIRST_RETRY  # `backoff`: localserve retries within seconds
    max_retry: float = MAX_RETRY


class QueueRunner:
    def __init__(
        self,
        reactor: Any,
        queue: SQLiteOutgoingQueue,
        resolver: Resolver,
        options: RunnerOptions,
        clock: Callable[[], float] = time.time,
        notify: Callable[[str, bytes], Awaitable[None]] | None = None,
        policies: PolicySource | None = None,
        deliverer: Deliverer | None = None,
        retired_keep: Callable[[str], float] | None = None,
        separator_of: suppression.SeparatorOf = suppression.default_separator,
        routes: Routes | None = None,
        local_deliverer: Deliverer | None = None,
        save_sent: SentSaver | None = None,
    ) -> None:
        self.reactor = reactor
        self.local_deliverer = local_deliverer  # LOCAL_TRANSPORT: send later's recipients on this server
        self.save_sent = save_sent
        # Transports and routes (mailsrv/config/transports.py): which way each recipient goes.
        self.routes = routes or Routes()
        self.transports = self.routes.config.transports
        # The catchall separator of a recipient domain, for suppression lists' base addresses.
        self.separator_of = separator_of
        # Seconds a finished message of an account stays in the retired list (0: removed at once).
        self.retired_keep = retired_keep or (lambda account: 0.0)
        self.queue = queue
        self.resolver = resolver
        self.options = options
        self.clock = clock
        self.notify = notify
        self.policies = policies  # MTA-STS; None: not enforced
        self.deliverer = deliverer  # None: SMTP to the domain's MX hosts
        self.session = options.session or SessionOptions(helo_name=options.helo_name)
        queue.db.executescript(_HISTORY_SCHEMA)
        ensure_attempt_transport(queue.db)
        queue.db.commit()
        self._in_flight: set[tuple[int, str]] = set()
        self._per_domain: dict[str, int] = {}
        self._loop: task.LoopingCall | None = None
        self._running: set[defer.Deferred[None]] = set()
        self._commit_waiters: list[defer.Deferred[None]] = []
        self._kick_pending = False
        self._stopping = False
        self._wake: Any = None  # the DelayedCall of `wake_at`
        self._wake_time = 0.0
        self.connections = ConnectionCache(reactor) if options.reuse_connections else None
        self._tidying = False
        self._finishing = False
        self._finish_again = False

    # -- service life ----------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._loop = task.LoopingCall(self.kick)
        self._loop.clock = self.reactor
        self._loop.start(self.options.interval, now=True)
        self._wake_for_next()

    def wake_at(self, when: float) -> None:
        """Scans at `when` (a message due then: send later), not only at the next periodic scan;
        one timer, for the earliest time asked."""
        if self._stopping:
            return
        if self._wake is not None and self._wake.active():
            if self._wake_time <= when:
                return
            self._wake.cancel()
        self._wake_time = when
        self._wake = self.reactor.callLater(max(0.0, when - self.clock()), self._woken)

    def _woken(self) -> None:
        self._wake = None
        self.kick()
        self._wake_for_next()

    def _wake_for_next(self) -> None:
        # Retries are found by the periodic scan; this keeps send-later times exact.
        when = self.queue.next_due_after(self.clock())
        if when is not None:
            self.wake_at(when)

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stops starting deliveries and waits up to `grace` seconds for those in flight to
        record their outcome. A peer that stalls would otherwise hold the daemon's stop for
        its whole timeout (minutes, longer than systemd waits); what is cut off stays
        queued and is retried after the restart."""
        self._stopping = True
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._wake is not None and self._wake.active():
            self._wake.cancel()
        running = list(self._running)
        if running:
            waiting: defer.Deferred[Any] = defer.DeferredList(running, consumeErrors=True)
            waiting.addTimeout(grace, self.reactor)
            try:
                await waiting
            except defer.TimeoutError:
                log.warn("{n} deliveries still running after {s}s; left queued", n=len(self._running), s=grace)
        if self.connections is not None:
            await self.connections.close()

    def kick(self) -> None:
        """Starts the due deliveries (call after enqueue for an immediate first attempt)."""
        if self._stopping:
            return
        for d in self.start_due():
            self._running.add(d)
            d.addCallback(self._finished, d)  # _attempt never fails: it logs instead

    def kick_soon(self) -> None:
        """`kick` at the end of this reactor turn: under load many enqueues and finished
        attempts land in one turn, and they share one scan."""
        if not self._kick_pending:
            self._kick_pending = True
            self.reactor.callLater(0, self._kick_now)

    def _kick_now(self) -> None:
        self._kick_pending = False
        self.kick()

    def _finished(self, _result: None, d: defer.Deferred[None]) -> None:
        self._running.discard(d)

    # -- one scan --------------------------------------------------------------------------

    def start_due(self) -> list[defer.Deferred[None]]:
        """Starts attempts for the due groups, earliest first, within the limits. Walks the
        due recipients in `recipient_next` index order a page at a time and stops once the
        free slots are taken: under load the queue holds a backlog, and every finished attempt
        scans (grouping the whole backlog per scan cost time in proportion to it)."""
        started: list[defer.Deferred[None]] = []
        now = self.clock()
        after: tuple[float, int] | None = None
        while len(self._in_flight) < self.options.max_total:
            # Destinations at their limit are left out by the query: under load most of the
            # queue waits for a few busy domains.
            full = [d for d, n in self._per_domain.items() if n >= self.options.max_per_domain]
            page = "" if after is None else " AND (r.next_attempt, r.id) > (?, ?)"
            rows = self.queue.db.execute(
                "SELECT r.message_id, r.domain, r.next_attempt, r.id FROM recipient r"
                " JOIN message m ON m.id = r.message_id"
                " WHERE r.status = 'queued' AND r.next_attempt <= ? AND m.hold = 0"
                f" AND r.domain NOT IN ({', '.join('?' * len(full))}){page}"
                " ORDER BY r.next_attempt, r.id LIMIT ?",
                (now, *full, *(after or ()), SCAN_PAGE),
            ).fetchall()
            for message_id, domain, _next, _rid in rows:
                key = (int(message_id), str(domain))
                if key in self._in_flight:
                    continue  # in flight, or started for an earlier recipient of the group
                if len(self._in_flight) >= self.options.max_total:
                    break
                if self._per_domain.get(key[1], 0) >= self.options.max_per_domain:
                    continue
                self._in_flight.add(key)
                self._per_domain[key[1]] = self._per_domain.get(key[1], 0) + 1
                started.append(defer.ensureDeferred(self._attempt(*key)))
            if len(rows) < SCAN_PAGE:
                break
            after = (float(rows[-1][2]), int(rows[-1][3]))
        return started

    def kick_for(self, message_id: int) -> None:
        """`kick_soon` for a message just queued, unless every destination of it is at its
        session limit (or all sessions are busy): the attempt finishing there scans anyway,
        and under load a scan per enqueue walked a backlog that could not start."""
        if self._kick_pending or self._stopping:
            return
        if len(self._in_flight) < self.options.max_total:
            domains = self.queue.just_queued(message_id)
            if domains is None:
                rows = self.queue.db.execute("SELECT domain FROM recipient WHERE message_id = ?", (message_id,))
                domains = frozenset(str(r[0]) for r in rows)
            if not domains or any(self._per_domain.get(d, 0) < self.options.max_per_domain for d in domains):
                self.kick_soon()

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
                self.kick_soon()

    async def _deliver_group(self, message_id: int, domain: str) -> None:
        db = self.queue.db
        msg = db.execute(
            "SELECT mail_from, created, account, requiretls, ret, envid, sent_copy FROM message WHERE id = ?",
            (message_id,),
        ).fetchone()
        # Every recipient of the message: this group's are the queued ones at `domain`.
        rows = db.execute(
            "SELECT id, address, attempts, notify, orcpt, transport, transport_fixed, domain, status FROM recipient"
            " WHERE message_id = ?",
            (message_id,),
        ).fetchall()
        rcpts = [r[:7] for r in rows if r[7] == domain and r[8] == "queued"]
        if msg is None or not rcpts:
            return
        data = await self.queue.read_content(message_id)
        if data is None:
            return  # dropped (`mailsrv queue drop`) since the scan
        account = str(msg[2])
        if msg[6]:
            await self._save_sent(message_id, account, data, [str(r[1]) for r in rows])
        if account:
            rcpts = await self._skip_suppressed(message_id, account, rcpts)
            if not rcpts:
                await self._after_group(message_id, domain, msg, data, self.clock())
                return
        groups = self._by_transport(account, str(msg[0]), domain, rcpts)
        # One session for the whole message (none suppressed): its delivery may finish it in the same transaction.
        whole_message = len(rcpts) == len(rows) and len(groups) == 1
        for transport, subset in groups:
            done = await self._deliver_through(message_id, domain, msg, data, transport, subset, whole_message)
            if done == "dropped":
                return  # dropped during the attempt: its rows are gone, there is nothing to record
            if done == "finished":
                # Rows first, content after: a crash in between leaves a file that start-up removes.
                await self.queue.drop_content(message_id)
                return
        await self._after_group(message_id, domain, msg, data, self.clock())

    def _by_transport(self, account: str, mail_from: str, domain: str, rcpts: list[Any]) -> list[tuple[str, list[Any]]]:
        """The recipients grouped by the transport of this attempt: an administrator's choice
        (`transport_fixed`), else the routes' now (they may have changed since the recipient
        was queued, and `minimum_attempts` depends on the attempts made)."""
        routes = self.routes
        groups: dict[str, list[Any]] = {}
        for row in rcpts:
            name = str(row[5]) if row[6] else routes.choose(account, mail_from, domain, int(row[2]))
            groups.setdefault(name, []).append(row)
        return list(groups.items())

    def _transport_after(
        self, row: Any, account: str, mail_from: str, domain: str, used: str, status: str
    ) -> str | None:
        """The recipient's `transport` once this attempt is recorded: the next attempt's for a
        recipient still queued whose transport the routes choose, else the one used; None when
        that is what the row says already (the usual case: no index update)."""
        after = used
        if status == "queued" and not row[6]:
            after = self.routes.choose(account, mail_from, domain, int(row[2]) + 1)
        return None if after == row[5] else after

    async def _deliver_through(
        self,
        message_id: int,
        domain: str,
        msg: Any,
        data: bytes,
        transport: str,
        rcpts: list[Any],
        whole_message: bool = False,
    ) -> Literal["recorded", "finished", "dropped"]:
        """One attempt for `rcpts` through `transport`, recorded; "dropped" if the message was
        dropped meanwhile. With `whole_message` (`rcpts` are all the message's recipients), a
        session that delivers to all of them with no DSN owed also retires or removes the
        message in the transaction that records it: "finished" (the content is left to drop)."""
        db = self.queue.db
        account = str(msg[2])
        mail_from = str(msg[0])
        ret = str(msg[4])
        envelope = Envelope(
            mail_from,
            tuple(str(r[1]) for r in rcpts),
            MessageDSN("FULL" if ret == "FULL" else "HDRS" if ret == "HDRS" else "", str(msg[5])),
            tuple(RecipientDSN.stored(str(r[3]), str(r[4])) for r in rcpts),
        )
        rows = {str(r[1]): r for r in rcpts}
        arrival = float(msg[1])
        recorded: set[str] = set()  # recipients whose delivery is already committed
        finished: list[bool] = []  # [True] once `accepted` finished the message

        async def accepted(host: HostAttempt, outcomes: Sequence[RecipientOutcome]) -> None:
            # The peer said 250: commit before the session goes on (QUIT), so a crash from
            # here on does not send these recipients the message again.
            if db.execute("SELECT 1 FROM message WHERE id = ?", (message_id,)).fetchone() is None:
                return
            now = self.clock()
            where = f"{host.host} [{host.ip}]"
            dsn_owed = False
            # The whole message delivered at its first attempt to an account that keeps no
            # retired messages: its rows go in this transaction, so the recipients' updates and
            # attempt rows would be deleted at once; only the events (and the log) are written.
            removing = (
                whole_message
                and not recorded
                and len(rows) == len(rcpts)
                and {o.address for o in outcomes if o.reply.positive} >= set(rows)
                and all(int(r[2]) == 0 for r in rcpts)
                and not any(
                    self._relayed_dsn_owed(mail_from, RecipientDSN.stored(str(r[3]), str(r[4])), o.dsn_passed)
                    for o in outcomes
                    if (r := rows.get(o.address)) is not None
                )
                and self.retired_keep(account) <= 0
            )
            for outcome in outcomes:
                row = rows.get(outcome.address)
                if row is None or outcome.address in recorded or not outcome.reply.positive:
                    continue
                self._record(
                    int(row[0]),
                    message_id,
                    outcome.address,
                    now,
                    where,
                    outcome.reply,
                    "delivered",
                    now,
                    outcome.dsn_passed,
                    account,
                    transport,
                    None if transport == row[5] else transport,
                    removing,
                )
                self._log_attempt(
                    message_id,
                    outcome.address,
                    where,
                    int(row[2]) + 1,
                    now - arrival,
                    "delivered",
                    outcome.reply,
                    transport,
                )
                recorded.add(outcome.address)
                dsn = RecipientDSN.stored(str(row[3]), str(row[4]))
                dsn_owed = dsn_owed or self._relayed_dsn_owed(mail_from, dsn, outcome.dsn_passed)
            if removing:
                # First attempt: no attempt or DSN rows exist; the events were written above.
                db.execute("DELETE FROM recipient WHERE message_id = ?", (message_id,))
                db.execute("DELETE FROM message WHERE id = ?", (message_id,))
                finished.append(True)
            elif whole_message and len(recorded) == len(rcpts) and not dsn_owed:
                # Every recipient delivered and no DSN owed: finished, in this same
                # transaction (one commit per message instead of three).
                self._retire(message_id, account, now)
                finished.append(True)
            await self._commit()

        result = await self._send(message_id, account, domain, envelope, data, rcpts, transport, accepted, msg)
        if finished:
            return "finished"
        if db.execute("SELECT 1 FROM message WHERE id = ?", (message_id,)).fetchone() is None:
            return "dropped"
        now = self.clock()
        expired = now - arrival >= self.options.expire_seconds
        host = f"{result.hosts[-1].host} [{result.hosts[-1].ip}]" if result.hosts else ""
        for row in rcpts:
            rid, address, attempts = int(row[0]), str(row[1]), int(row[2])
            if address in recorded:
                continue
            reply = result.replies.get(address) or Reply(451, ("4.0.0 no reply",))
            if reply.positive:
                status, next_attempt = "delivered", now
            elif reply.permanent or expired:
                status, next_attempt = "failed", now
            else:
                status, next_attempt = (
                    "queued",
                    now + backoff(attempts + 1, self.options.first_retry, self.options.max_retry),
                )
            passed = reply.positive and address in result.dsn_passed
            after = self._transport_after(row, account, mail_from, domain, transport, status)
            suppressing = "" if transport == LOCAL_TRANSPORT else account  # not for our own recipients
            self._record(
                rid, message_id, address, now, host, reply, status, next_attempt, passed, suppressing, transport, after
            )
            self._log_attempt(message_id, address, host, attempts + 1, now - arrival, status, reply, transport)
        if len(recorded) < len(rcpts):
            await self._commit()  # else `accepted` committed every outcome already
        return "recorded"

    async def _send(
        self,
        message_id: int,
        account: str,
        domain: str,
        envelope: Envelope,
        data: bytes,
        rcpts: list[Any],
        transport: str,
        accepted: AcceptedByHost,
        msg: Any,
    ) -> DomainDelivery:
        """The attempt itself: send later's local delivery, localserve's deliverer, the domain's
        MX hosts, or a smarthost."""
        if transport == LOCAL_TRANSPORT and self.local_deliverer is not None:
            group = GroupToDeliver(message_id, account, domain, envelope, data, [int(r[2]) for r in rcpts])
            return await self.local_deliverer(group)
        if self.deliverer is not None:
            group = GroupToDeliver(message_id, account, domain, envelope, data, [int(r[2]) for r in rcpts])
            return await self.deliverer(group)
        config = self.transports.get(transport)
        if config is None:
            # An administrator's choice that a restart with another configuration removed.
            reply = Reply(451, (f"4.3.5 transport {transport} is not configured (mailsrv queue transport)",))
            return DomainDelivery({r: reply for r in envelope.recipients})
        if config.smarthost:
            return await deliver_via_smarthost(
                self.reactor,
                self.resolver,
                config,
                envelope,
                data,
                self.session,
                accepted,
                self.connections,
                requiretls=bool(msg[3]),
            )
        session = self.session
        if config.source_ip is not None:
            session = replace(session, source_address=config.source_ip)
        return await deliver_to_domain(
            self.reactor,
            self.resolver,
            domain,
            envelope,
            data,
            session,
            self.options.remote_port,
            self.policies,
            accepted,
            self.connections,
            requiretls=bool(msg[3]),
            tls_optional=tls_optional(data),
        )

    async def _save_sent(self, message_id: int, account: str, data: bytes, rcpts: list[str]) -> None:
        """The Sent copy owed for a send-later message (`rcpts`: all its recipients), then its
        mark cleared. A failure is logged: the message goes out anyway."""
        db = self.queue.db
        if self.save_sent is not None:
            try:
                await self.save_sent(message_id, account, data, rcpts)
            except Exception:
                log.failure("Sent copy of queued message {message_id} not stored", message_id=message_id)
        db.execute("UPDATE message SET sent_copy = 0 WHERE id = ?", (message_id,))
        await self._commit()

    async def _after_group(self, message_id: int, domain: str, msg: Any, data: bytes, now: float) -> None:
        """DSNs owed and finishing, by the last group of the message to finish."""
        others_busy = any(k[0] == message_id and k[1] != domain for k in self._in_flight)
        if not others_busy:
            told = await self._notify(message_id, "failed", str(msg[0]), float(msg[1]), data, now)
            told = await self._notify(message_id, "relayed", str(msg[0]), float(msg[1]), data, now) and told
            if now - float(msg[1]) >= self.options.delay_dsn_after:
                await self._notify(message_id, "delayed", str(msg[0]), float(msg[1]), data, now)
            if told:
                await self._finish(message_id, str(msg[2]), now)

    async def _skip_suppressed(self, message_id: int, account: str, rcpts: list[Any]) -> list[Any]:
        """Fails, without an attempt, the recipients on the account's suppression list (event
        "suppressed"); the others are returned."""
        if not self.queue.may_suppress(account):
            return rcpts  # the account has no suppression list: nothing to look up
        db = self.queue.db
        left = []
        now = self.clock()
        for row in rcpts:
            address = str(row[1])
            if row[6] and row[5] == LOCAL_TRANSPORT:
                left.append(row)  # our own recipients are not on suppression lists
                continue
            entry = suppression.find(db, account, suppression.base_address(address, self.separator_of))
            if entry is None:
                left.append(row)
                continue
            reply = Reply(550, (f"5.7.1 {address} is on the suppression list of the account, not attempted",))
            db.execute(
                "UPDATE recipient SET status = 'failed', next_attempt = ?, last_error = ? WHERE id = ?",
                (now, str(reply), int(row[0])),
            )
            db.execute(
                "INSERT INTO attempt (recipient_id, message_id, time, host, code, reply) VALUES (?, ?, ?, '', ?, ?)",
                (int(row[0]), message_id, now, reply.code, str(reply)),
            )
            outbox.record(db, now, "suppressed", message_id, address, "", reply.code, str(reply))
            self._log_attempt(message_id, address, "", int(row[2]), 0.0, "suppressed", reply)
        if len(left) != len(rcpts):
            await self._commit()
        return left

    def _suppress_after(self, account: str, address: str, reply: Reply, status: str) -> bool:
        """Suppression bookkeeping for an outcome, in the open transaction: whether this
        failure puts `address` on the account's suppression list (module suppression.py)."""
        if not account or status == "queued":
            return False
        db = self.queue.db
        base = suppression.base_address(address, self.separator_of)
        if status == "delivered":
            if self.queue.may_suppress(account):  # else it has no failures counted to reset
                suppression.reset_failures(db, account, base)
            return False
        self.queue.suppressing(account)
        if suppression.suppresses(reply):
            why = f"permanent failure: {reply}"
        elif suppression.count_failure(db, account, base) >= suppression.FAILURE_LIMIT:
            why = f"{suppression.FAILURE_LIMIT} failures in a row, the last: {reply}"
        else:
            return False
        _entry, new = suppression.add(db, account, base, address, False, " ".join(why.split()), self.clock())
        if new:
            log.info("{account}: {base} added to the suppression list: {why}", account=account, base=base, why=why)
        return new

    def _record(
        self,
        rid: int,
        message_id: int,
        address: str,
        now: float,
        host: str,
        reply: Reply,
        status: str,
        next_attempt: float,
        dsn_passed: bool = False,
        account: str = "",
        transport: str = DIRECT,
        transport_after: str | None = None,
        removing: bool = False,
    ) -> None:
        """One attempt's outcome for one recipient, in the open transaction (the caller commits):
        `transport` was used, `transport_after` is the recipient's from now on (None: unchanged).
        `removing`: the caller deletes the message's rows in this transaction, so only the event
        is written."""
        suppressing = self._suppress_after(account, address, reply, status)
        if not removing:
            self._record_rows(
                rid, message_id, now, host, reply, status, next_attempt, dsn_passed, transport, transport_after
            )
        # The event goes into the outbox in this same transaction (mailsrv/queue/outbox.py).
        kind = "delayed" if status == "queued" else status
        outbox.record(
            self.queue.db, now, kind, message_id, address, host, reply.code, " ".join(str(reply).split()), suppressing
        )

    def _record_rows(
        self,
        rid: int,
        message_id: int,
        now: float,
        host: str,
        reply: Reply,
        status: str,
        next_attempt: float,
        dsn_passed: bool,
        transport: str,
        transport_after: str | None,
    ) -> None:
        error = "" if reply.positive else str(reply)[:1000]
        if transport_after is None:
            self.queue.db.execute(
                "UPDATE recipient SET status = ?, attempts = attempts + 1, next_attempt = ?, last_error = ?,"
                " dsn_passed = ? WHERE id = ?",
                (status, next_attempt, error, int(dsn_passed), rid),
            )
        else:
            self.queue.db.execute(
                "UPDATE recipient SET status = ?, attempts = attempts + 1, next_attempt = ?, last_error = ?,"
                " dsn_passed = ?, transport = ? WHERE id = ?",
                (status, next_attempt, error, int(dsn_passed), transport_after, rid),
            )
        self.queue.db.execute(
            "INSERT INTO attempt (recipient_id, message_id, time, host, code, reply, transport)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (rid, message_id, now, host, reply.code, str(reply)[:1000], transport),
        )

    @staticmethod
    def _log_attempt(
        message_id: int,
        address: str,
        host: str,
        attempt: int,
        delay: float,
        status: str,
        reply: Reply,
        transport: str = "",
    ) -> None:
        """The attempt's log line (mailsrv/maillog.py, docs/operations.md)."""
        line = Attempt(
            queue=message_id,
            recipient=address,
            relay=host,
            attempt=attempt,
            delay=delay,
            status="deferred" if status == "queued" else status,
            reply=" ".join(str(reply).split()),
            transport=transport,
        )
        log.info("{line}", line=line.line(), **line.fields())

    async def _notify(
        self, message_id: int, action: Action, mail_from: str, arrival: float, data: bytes, now: float
    ) -> bool:
        """Sends one DSN for the recipients of `message_id` newly in the `action` state ("failed",
        "delayed", or "relayed": delivered to a host without DSN) whose NOTIFY asks for it. False
        when a DSN is owed but could not be handed over (the content is then kept)."""
        if self.notify is None or not should_notify(mail_from):
            return True
        db = self.queue.db
        status = {"failed": "failed", "delayed": "queued", "relayed": "delivered"}[action]
        rows = db.execute(
            "SELECT r.id, r.address, a.host, a.code, a.reply, r.notify, r.orcpt, r.dsn_passed FROM recipient r"
            " JOIN attempt a ON a.id = (SELECT MAX(id) FROM attempt WHERE recipient_id = r.id)"
            " WHERE r.message_id = ? AND r.status = ?"
            " AND r.id NOT IN (SELECT recipient_id FROM dsn_sent WHERE action = ?) ORDER BY r.id",
            (message_id, status, action),
        ).fetchall()
        # RFC 3461 §4.1: only what NOTIFY asks for; success only where the next hop could
        # not take the request over.
        rows = [r for r in rows if RecipientDSN.stored(str(r[5]), "").wants(action) and not int(r[7])]
        if not rows:
            return True
        reported = []
        for _rid, address, host, code, text, _notify, orcpt, _passed in rows:
            reply = Reply(int(code), (str(text)[4:] if str(text)[:3].isdigit() else str(text),))
            reported.append(DSNRecipient(str(address), action, reply, str(host).split(" [")[0], now, str(orcpt)))
        request = db.execute("SELECT ret, envid FROM message WHERE id = ?", (message_id,)).fetchone()
        ret, envid = (str(request[0]), str(request[1])) if request is not None else ("", "")
        # RFC 3461 §4.3: RET=FULL asks for the whole message in a "failed" DSN; any other
        # DSN returns the header only.
        full = ret == "FULL" and action == "failed"
        dsn = make_dsn(self.options.helo_name, mail_from, data, reported, arrival, now, envid, full)
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
        it, and fires once that is durable (`SQLiteOutgoingQueue.commit`: the WAL fsync runs in a
        pool thread and is shared with every other commit made meanwhile)."""
        d: defer.Deferred[None] = defer.Deferred()
        self._commit_waiters.append(d)
        if len(self._commit_waiters) == 1:
            self.reactor.callLater(0, self._commit_now)
        return d

    def _commit_now(self) -> None:
        waiters, self._commit_waiters = self._commit_waiters, []

        def fire(result: object) -> None:
            for d in waiters:
                if isinstance(result, Failure):
                    d.errback(result)
                else:
                    d.callback(None)

        self.queue.commit().addBoth(fire)

    def _relayed_dsn_owed(self, mail_from: str, dsn: RecipientDSN, dsn_passed: bool) -> bool:
        """Whether a recipient just delivered is owed a "relayed" DSN (NOTIFY=SUCCESS to a host
        that could not take the request over, RFC 3461 §5.2.2.2; `_notify`'s rule)."""
        return self.notify is not None and should_notify(mail_from) and dsn.wants("relayed") and not dsn_passed

    def _retire(self, message_id: int, account: str, now: float) -> None:
        """Retires or removes a finished message's rows in the open transaction (the caller
        commits, then drops the content)."""
        keep = self.retired_keep(account)
        if keep > 0:
            self.queue.db.execute("UPDATE message SET retired_until = ? WHERE id = ?", (now + keep, message_id))
        else:
            delete_rows(self.queue.db, [message_id], runner_tables=True)

    async def _finish(self, message_id: int, account: str, now: float) -> None:
        """Retires or removes a message none of whose recipients is queued any more (its DSN,
        if one was owed, has been handed over)."""
        db = self.queue.db
        left = db.execute(
            "SELECT COUNT(*) FROM recipient WHERE message_id = ? AND status = 'queued'", (message_id,)
        ).fetchone()
        if int(left[0]):
            return
        self._retire(message_id, account, now)
        await self._commit()
        # Rows first, content after: a crash in between leaves a file that start-up removes.
        await self.queue.drop_content(message_id)

    async def tidy(self) -> tuple[int, int]:
        """Finishes messages left unfinished (a crash after the last outcome was committed,
        or a DSN that could not be handed over) and forgets retired messages whose keep
        period has passed. Returns (finished, purged). Runs on the reactor thread like every
        other use of the queue database, in batches so that no turn holds it for long."""
        if self._tidying:
            return 0, 0
        self._tidying = True
        try:
            return await self._finish_unfinished(), await self._purge_expired()
        finally:
            self._tidying = False

    def finish_soon(self) -> None:
        """Finishes, at the end of this reactor turn, messages an admin left with no queued
        recipient (`OutgoingQueue.fail`): their DSNs go out now, not at the next hourly tidy."""
        self.reactor.callLater(0, self._finish_now)

    def _finish_now(self) -> None:
        if self._finishing:
            self._finish_again = True
            return
        self._finishing = True

        def done(result: object) -> None:
            self._finishing = False
            if isinstance(result, Failure):
                log.failure("finishing failed messages", result)
            if self._finish_again:
                self._finish_again = False
                self.finish_soon()

        defer.ensureDeferred(self._finish_unfinished()).addBoth(done)

    async def _finish_unfinished(self) -> int:
        db = self.queue.db
        rows = db.execute(
            "SELECT m.id, m.mail_from, m.created, m.account FROM message m WHERE m.retired_until IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM recipient r WHERE r.message_id = m.id AND r.status = 'queued')"
            " ORDER BY m.id"
        ).fetchall()
        finished = 0
        for message_id, mail_from, created, account in rows:
            mid = int(message_id)
            if any(k[0] == mid for k in self._in_flight):
                continue  # its last attempt finishes it
            now = self.clock()
            # No content: it goes only after any DSN was handed over, so none is owed.
            data = await self.queue.read_content(mid)
            if data is not None and not (
                await self._notify(mid, "failed", str(mail_from), float(created), data, now)
                and await self._notify(mid, "relayed", str(mail_from), float(created), data, now)
            ):
                continue  # the DSN could not be handed over: kept, tried again at the next tidy
            row = db.execute("SELECT retired_until FROM message WHERE id = ?", (mid,)).fetchone()
            if row is None or row[0] is not None:
                continue  # dropped or finished meanwhile
            await self._finish(mid, str(account), now)
            finished += 1
        return finished

    async def _purge_expired(self) -> int:
        purged = 0
        while True:
            ids = expired_retired(self.queue.db, self.clock(), PURGE_BATCH)
            if not ids:
                return purged
            delete_rows(self.queue.db, ids, runner_tables=True)
            await self._commit()
            purged += len(ids)
            if len(ids) < PURGE_BATCH:
                return purged
            await task.deferLater(self.reactor, 0, lambda: None)  # let other work run between batches

    async def reroute(self, batch: int = 2000) -> int:
        """At start: when the transports or routes differ from those the queue last evaluated
        (`queue_state`), the recipients whose transport the routes choose are evaluated again,
        so listings filtered by transport say what the next attempt does. Returns how many
        changed. In batches, one commit each, letting other work run between them."""
        db = self.queue.db
        db.execute("CREATE TABLE IF NOT EXISTS queue_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        fingerprint = self.routes.fingerprint()
        row = db.execute("SELECT value FROM queue_state WHERE name = 'routes'").fetchone()
        if row is not None and str(row[0]) == fingerprint:
            return 0
        changed, last = 0, 0
        while True:
            rows = db.execute(
                "SELECT r.id, m.account, m.mail_from, r.domain, r.attempts, r.transport FROM recipient r"
                " JOIN message m ON m.id = r.message_id"
                " WHERE r.id > ? AND r.status = 'queued' AND r.transport_fixed = 0 ORDER BY r.id LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                break
            updates = []
            for rid, account, mail_from, domain, attempts, current in rows:
                chosen = self.routes.choose(str(account), str(mail_from), str(domain), int(attempts))
                if chosen != current:
                    updates.append((chosen, int(rid)))
            db.executemany("UPDATE recipient SET transport = ? WHERE id = ?", updates)
            changed += len(updates)
            last = int(rows[-1][0])
            await self._commit()
            await task.deferLater(self.reactor, 0, lambda: None)
        db.execute("INSERT OR REPLACE INTO queue_state (name, value) VALUES ('routes', ?)", (fingerprint,))
        await self._commit()
        return changed

    def history(self, message_id: int) -> list[tuple[str, float, str, int, str]]:
        """(recipient, time, host, code, reply) of every attempt for a message, oldest first."""
        return [(a.recipient, a.time, a.host, a.code, a.reply) for a in attempt_history(self.queue.db, message_id)]
