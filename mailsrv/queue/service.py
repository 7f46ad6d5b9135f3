"""The queue runner as a Twisted service of the daemon, built from the `Server`.

    service = QueueService(server, notify)   # needs server.queue and server.resolver
    service.runner.kick()            # after an enqueue, for an immediate first attempt

Invariants:
- Remote hosts are reached on `[smtp] remote_port` (25 except in tests), our EHLO name is
  the configured hostname, MTA-STS policies are enforced (`mailsrv.dns.mtasts`).
- DSNs are handed to `notify(mail_from, dsn)`, given by whoever builds the service (the daemon
  passes mailsrv.ops.delivery.deliver_dsn: the sender's INBOX or the queue). Likewise send
  later's `local_deliverer` and `save_sent` (mailsrv/ops/scheduled.py).
- In localserve mode nothing is sent out: `LocalserveDeliverer` puts messages into the
  sending account and simulates outcomes for special recipients (mailsrv/queue/localserve.py).
- A finished message is kept in the retired list for its account's `retired_keep` (dynamic
  config, read when the message finishes), else removed at once; `QueueRunner.tidy` runs
  at start and every `TIDY_INTERVAL` to forget expired retired messages and finish any a
  crash left unfinished.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsrv.config.transports import RouteConfig
from mailsrv.dns.mtasts import MTASTSPolicies
from mailsrv.queue import suppression
from mailsrv.queue.localserve import LocalserveDeliverer
from mailsrv.queue.routes import Routes
from mailsrv.queue.runner import Deliverer, QueueRunner, RunnerOptions, SentSaver
from mailsrv.queue.store import SQLiteOutgoingQueue
from mailsrv.smtpclient.session import SessionOptions

if TYPE_CHECKING:
    from mailsrv.server import Server

log = Logger()

TIDY_INTERVAL = 3600.0  # seconds between purges of expired retired messages
# Localserve's quick schedule: retries after 2, 4, 8, 8... seconds, a delay DSN after 10 s, failed
# (expired) after 30 s, so a developer sees "delayed" and then "failed" within a minute.
LOCALSERVE_OPTIONS: dict[str, Any] = {
    "first_retry": 2.0,
    "max_retry": 8.0,
    "delay_dsn_after": 10.0,
    "expire_seconds": 30.0,
    "interval": 1.0,
}


class QueueService(Service):
    name = "queue"

    def __init__(
        self,
        server: Server,
        notify: Callable[[str, bytes], Awaitable[None]],
        local_deliverer: Deliverer | None = None,
        save_sent: SentSaver | None = None,
    ) -> None:
        if not isinstance(server.queue, SQLiteOutgoingQueue):
            # The runner works on this engine's tables; another engine brings its own runner.
            raise TypeError("QueueService runs the SQLite queue's runner")
        queue = server.queue
        self.server = server
        smtp = server.config.smtp
        options = RunnerOptions(
            helo_name=server.config.hostname.ascii,
            remote_port=smtp.remote_port,
            session=SessionOptions(helo_name=server.config.hostname.ascii, ca_file=smtp.tls_ca_file),
            reuse_connections=True,
        )
        if server.config.localserve:
            options = dataclasses.replace(options, **LOCALSERVE_OPTIONS)
        # Transports and routes (docs/queue.md): new recipients start with the routes' choice.
        routes = Routes(server.config.transports, self._account_routes)
        queue.routes = routes
        self.runner = QueueRunner(
            server.reactor,
            queue,
            server.resolver,
            options,
            notify=notify,
            policies=MTASTSPolicies(
                server.reactor, server.resolver, https_port=smtp.mta_sts_port, ca_file=smtp.tls_ca_file
            ),
            deliverer=LocalserveDeliverer(server) if server.config.localserve else None,
            retired_keep=self._retired_keep,
            separator_of=suppression.separators(server.dynamic),
            routes=routes,
            local_deliverer=local_deliverer,
            save_sent=save_sent,
        )
        self._tidy_loop: task.LoopingCall | None = None
        self._tidy_running: defer.Deferred[None] | None = None

    def _account_routes(self, account: str) -> tuple[RouteConfig, ...]:
        config = self.server.dynamic.account_by_name(account)
        return config.routes if config is not None else ()

    def _retired_keep(self, account: str) -> float:
        config = self.server.dynamic.account_by_name(account) if account else None
        return float(config.retired_keep) if config is not None else 0.0

    def startService(self) -> None:
        base: Any = super()  # Twisted's Service methods are untyped
        base.startService()
        for warning in self.server.config.transports.warnings:
            log.warn("{config}: {warning}", config=self.server.config.source, warning=warning)
        self._reroute()
        self.runner.start()
        self.server.queue.on_enqueued.append(self._kick)
        self.runner.queue.on_finish_wanted.append(self.runner.finish_soon)
        self.runner.queue.on_due_later.append(self.runner.wake_at)
        self._tidy_loop = task.LoopingCall(self._tidy)
        self._tidy_loop.clock = self.server.reactor
        self._tidy_loop.start(TIDY_INTERVAL, now=True)

    def stopService(self) -> defer.Deferred[None]:
        base: Any = super()
        base.stopService()
        if self._tidy_loop is not None and self._tidy_loop.running:
            self._tidy_loop.stop()
        if self._kick in self.server.queue.on_enqueued:
            self.server.queue.on_enqueued.remove(self._kick)
        if self.runner.finish_soon in self.runner.queue.on_finish_wanted:
            self.runner.queue.on_finish_wanted.remove(self.runner.finish_soon)
        if self.runner.wake_at in self.runner.queue.on_due_later:
            self.runner.queue.on_due_later.remove(self.runner.wake_at)
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        await self.runner.stop()
        if self._tidy_running is not None:
            await self._tidy_running  # never fails: _tidy_once logs instead

    def _reroute(self) -> None:
        def done(result: object) -> None:
            if isinstance(result, Failure):
                log.failure("re-evaluating the queue's transports failed", result)
            elif result:
                log.info("transports or routes changed: {n} queued recipient(s) take another transport", n=result)

        defer.ensureDeferred(self.runner.reroute()).addBoth(done)

    def _kick(self, message_id: int) -> None:
        # Submission just queued a message: start its first attempt now (at the end of this
        # reactor turn, shared with other kicks in it), not at the next scan; not at all when
        # its destinations are busy (their next finished attempt scans).
        self.runner.kick_for(message_id)

    def _tidy(self) -> defer.Deferred[None]:
        # The loop waits for this Deferred; a failure is logged, never stops the loop.
        d = self._tidy_running = defer.ensureDeferred(self._tidy_once())
        return d

    async def _tidy_once(self) -> None:
        try:
            finished, purged = await self.runner.tidy()
        except Exception:
            log.failure("queue tidy failed")
            return
        if finished or purged:
            log.info(
                "queue tidy: {finished} finished, {purged} retired messages forgotten", finished=finished, purged=purged
            )
