# mypy: disable-error-code="no-untyped-call"
# (Twisted services, web and endpoints are unannotated; calling them is fine.)
"""From configuration to running services.

`make_service(server)` returns the `MultiService` that twistd runs: one listener per
configured (address, port, protocol, TLS mode), the control socket, the dynamic config
reloader, the outgoing queue runner (remote delivery, mailsrv/queue/service.py), and a
last service that closes the stores when everything else has stopped.

This is the only module that imports protocol packages (DESIGN.md): the registry below maps
a listener's protocol name to the factory of its package.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, cast

from twisted.application.internet import TimerService
from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import UNIXServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory

from mailsrv.config.types import ListenerConfig
from mailsrv.connlimit import REFUSALS, ConnectionCounter, LimitedFactory, global_cap, raise_open_file_limit
from mailsrv.listen import listen_tcp
from mailsrv.server import Server

log = Logger()
# Seconds a stopping daemon waits for deliveries and APPENDs that are writing mail.
DRAIN_TIMEOUT = 20.0

FactoryMaker = Callable[[Server, ListenerConfig], IProtocolFactory]


def fatal(message: str) -> NoReturn:
    """Stops start-up with one line on stderr and exit code 1 (twistd and twist let
    SystemExit through without a traceback)."""
    sys.stderr.write(f"mailsrv: {message}\n")
    sys.stderr.flush()
    raise SystemExit(1)


def _imap_factory(server: Server, listener: ListenerConfig) -> IProtocolFactory:
    from mailsrv.imapserver import make_factory

    return make_factory(server, listener)


def _smtp_factory(server: Server, listener: ListenerConfig) -> IProtocolFactory:
    from mailsrv.smtpserver import make_factory

    return make_factory(server, listener)


def _http_factory(server: Server, listener: ListenerConfig) -> IProtocolFactory:
    from mailsrv.web.site import web_site

    return web_site(server, listener)


PROTOCOLS: dict[str, FactoryMaker] = {
    "imap": _imap_factory,
    "smtp": _smtp_factory,
    "submission": _smtp_factory,
    "http": _http_factory,
}


class _ListeningService(Service):
    """A service holding one listening port (`self.port`, once bound); stopping it stops
    listening (connections already accepted go on until the reactor stops)."""

    port: Any = None

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            result: Deferred[None] | None = port.stopListening()
            return result
        return None


class ListenerService(_ListeningService):
    """Listens on one configured socket; logs the address actually bound (port 0 in tests).
    Its connections count against `counter` (the daemon-wide cap) and the per-address cap
    (mailsrv/connlimit.py)."""

    def __init__(self, server: Server, listener: ListenerConfig, counter: ConnectionCounter | None = None) -> None:
        self.server = server
        self.listener = listener
        self.counter = counter
        self.name = f"listener-{listener.name}"
        self.port: Any = None

    def startService(self) -> None:
        super().startService()
        listener = self.listener
        factory = PROTOCOLS[listener.protocol](self.server, listener)
        if listener.tls == "implicit":
            assert self.server.tls is not None, "config validation requires a TLS key pair"
            factory = cast(IProtocolFactory, TLSMemoryBIOFactory(cast(Any, self.server.tls), False, factory))
        if self.counter is not None:
            refusal = REFUSALS[listener.protocol] if listener.tls != "implicit" else b""
            per_address = self.server.config.limits.max_connections_per_ip
            limited = LimitedFactory(factory, self.counter, per_address, refusal, listener.protocol)
            factory = cast(IProtocolFactory, limited)
        # A bind error (port in use) surfaces here, before the reactor runs, and stops start-up.
        try:
            port = listen_tcp(self.server.reactor, listener.address, listener.port, factory)
        except (OSError, CannotListenError) as e:
            fatal(f"cannot listen on {listener.address}:{listener.port} ({listener.name}): {e}")
        self._listening(port)

    def _listening(self, port: Any) -> None:
        self.port = port
        host = port.getHost()
        log.info(
            "listening on {address}:{port} for {protocol} (tls: {tls}, listener {name})",
            address=getattr(host, "host", "?"),
            port=getattr(host, "port", 0),
            protocol=self.listener.protocol,
            tls=self.listener.tls,
            name=self.listener.name,
        )


class ControlSocketService(_ListeningService):
    name = "control"

    def __init__(self, server: Server) -> None:
        self.server = server
        self.port: Any = None

    def startService(self) -> None:
        super().startService()
        from mailsrv.control import ControlFactory, daemon_running

        path = self.server.config.control_socket
        if daemon_running(path):
            fatal(f"another mailsrv daemon is running on {self.server.config.data_dir}")
        path.unlink(missing_ok=True)  # stale socket of a daemon that died
        endpoint = UNIXServerEndpoint(self.server.reactor, str(path), mode=0o600)
        endpoint.listen(ControlFactory(self.server)).addCallback(self._listening)

    def _listening(self, port: Any) -> None:
        self.port = port


class StoresService(Service):
    """Started first, so stopped last. Account stores open on first use, not at start: an
    index of an older version migrates then (one account at a time, logged), and a store
    removes its orphan files (of deliveries a crash interrupted) as it opens, before its
    first operation, so start-up does not wait for either. At stop it closes the databases
    after all listeners are gone."""

    name = "stores"

    def __init__(self, server: Server) -> None:
        self.server = server

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return ensureDeferred(self._drain_and_close())

    async def _drain_and_close(self) -> None:
        # Deliveries and APPENDs running now finish before the databases close, so their
        # clients get the answer (250 / OK) rather than a 451 for a store that went away.
        drained = self.server.stores.drain()
        drained.addTimeout(DRAIN_TIMEOUT, self.server.reactor)
        try:
            await drained
        except defer.TimeoutError:
            log.warn("appends still running after {s}s; closing the stores anyway", s=DRAIN_TIMEOUT)
        except Exception:
            pass  # their own callers report their failures
        self.server.close()
        log.info("stores closed; mailsrv stopped")


class RecentLogService(Service):
    """Keeps the last warnings and errors in `server.recent_log` while the daemon runs (the
    admin interface shows them)."""

    name = "recent-log"

    def __init__(self, server: Server) -> None:
        self.server = server

    def startService(self) -> None:
        from twisted.logger import globalLogPublisher

        super().startService()
        globalLogPublisher.addObserver(self.server.recent_log.observer())

    def stopService(self) -> None:
        from twisted.logger import globalLogPublisher

        super().stopService()
        globalLogPublisher.removeObserver(self.server.recent_log.observer())


class OrderedStopService(MultiService):
    """Stops its children one at a time, the last added first, each once the previous one
    has finished stopping. Twisted's MultiService stops them all at once, so the stores
    would close while the queue still records the outcome of deliveries in flight."""

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        return ensureDeferred(self._stop_children())

    async def _stop_children(self) -> None:
        for child in reversed(list(self)):
            try:
                await defer.maybeDeferred(child.stopService)
            except Exception:
                log.failure("stopping {name} failed", name=getattr(child, "name", "?"))


class CleanStopService(Service):
    """SIGTERM and SIGINT stop the reactor and the daemon exits with code 0.

    twistd's own handlers make the process re-kill itself with the signal after shutdown
    (exit status -15), which systemd and scripts read as a failure; an orderly stop on
    request is a success. Installed once the reactor runs (its handlers are in place then)."""

    name = "clean-stop"

    def __init__(self, server: Server) -> None:
        self.server = server

    def startService(self) -> None:
        super().startService()
        reactor: Any = self.server.reactor

        def stop(signum: int, frame: object) -> None:
            log.info("signal {signum}: stopping", signum=signum)
            reactor.callFromThread(reactor.stop)

        def install() -> None:
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            # Ports accept connections (kernel backlog) before the reactor runs; this line says
            # the daemon serves and a signal now stops it cleanly. tests/daemon.py waits for it.
            log.info("mailsrv started; SIGTERM or SIGINT stops it")

        reactor.callWhenRunning(install)


def _reload_dynamic_in_thread(server: Server) -> Deferred[bool]:
    """Reading and validating a hand-edited dynamic.toml (10k accounts: ~1 s) runs in the
    thread pool; DynamicConfigStore replaces `.current` in one assignment and calls its
    listeners on the reactor thread. TimerService waits for it before the next check."""
    reactor: Any = server.reactor
    return deferToThreadPool(reactor, reactor.getThreadPool(), server.dynamic.reload_if_changed)


def _log_dkim_problems(server: Server) -> None:
    """Loudly, once at start: every local domain whose mail would leave unsigned (issue: a
    quickstart server never signed, silently). The signer logs it again for each message."""
    from mailsrv.ops.dkim import dkim_problems

    if server.config.localserve:
        return  # nothing leaves the machine
    for problem in dkim_problems(server):
        log.error("DKIM: cannot sign mail from {problem}", problem=problem)


def _log_postmaster_problem(server: Server) -> None:
    """RFC 5321 §4.5.1 mail must reach someone: say so when the configured account is missing
    (delivery then falls back to the domain's first account)."""
    name = server.config.smtp.postmaster_account
    if name is not None and name not in server.dynamic.current.accounts:
        log.error(
            "[smtp] postmaster_account {name!r} is no account;"
            " postmaster@ and abuse@ go to each domain's first account",
            name=name,
        )


def make_service(server: Server) -> MultiService:
    _log_dkim_problems(server)
    _log_postmaster_problem(server)
    top = OrderedStopService()
    StoresService(server).setServiceParent(top)
    RecentLogService(server).setServiceParent(top)
    CleanStopService(server).setServiceParent(top)
    reloader = TimerService(2.0, _reload_dynamic_in_thread, server)
    reloader.clock = server.reactor
    reloader.setName("dynamic-config-reloader")
    reloader.setServiceParent(top)
    # After the stores, before the listeners: stopped after submission can no longer
    # queue, and before the stores and the queue database close (reverse order).
    from mailsrv.ops.delivery import deliver_dsn
    from mailsrv.queue.service import QueueService

    async def notify(mail_from: str, dsn: bytes) -> None:
        await deliver_dsn(server, mail_from, dsn)

    from mailsrv.ops.scheduled import deliver_released, save_sent_copy
    from mailsrv.queue.remote import DomainDelivery
    from mailsrv.queue.runner import GroupToDeliver

    async def released(group: GroupToDeliver) -> DomainDelivery:
        return await deliver_released(server, group)

    async def sent_copy(queue_id: int, account: str, message: bytes, recipients: Sequence[str]) -> None:
        await save_sent_copy(server, queue_id, account, message, recipients)

    QueueService(server, notify, released, sent_copy).setServiceParent(top)
    if server.webhooks is not None:
        from mailsrv.webhooks.sender import LOCALSERVE, SenderOptions, WebhookSender

        hooks_config = server.config.webhooks
        options = (
            LOCALSERVE
            if server.config.localserve
            else SenderOptions(timeout=hooks_config.timeout, allow_private=hooks_config.allow_private_targets)
        )
        WebhookSender(server, options).setServiceParent(top)
    if server.junk is not None:
        from mailsrv.ops.junk import REJECTS_CHECK_SECONDS, expire_rejects

        def expire() -> Deferred[int]:
            return Deferred.fromCoroutine(expire_rejects(server))

        rejects = TimerService(REJECTS_CHECK_SECONDS, expire)
        rejects.clock = server.reactor
        rejects.setName("junk-rejects-expiry")
        rejects.setServiceParent(top)
    if server.tls is not None:
        from mailsrv.certreload import CertificateReloadService

        reloading = CertificateReloadService(server.reactor, server.tls)
        reloading.setServiceParent(top)
        if server.config.acme is not None:
            from mailsrv.certacme import ACMEService, ACMESettings

            acme = server.config.acme
            settings = ACMESettings(
                directory_url=acme.directory_url,
                hostnames=acme.hostnames,
                account_key_file=acme.account_key_file or server.config.data_dir / "acme" / "account.pem",
                cert_file=server.config.tls[0].cert_file,
                key_file=server.config.tls[0].key_file,
                email=acme.email,
            )
            ACMEService(server.reactor, settings, server.acme_challenges, reloading.reloader.reload).setServiceParent(
                top
            )
    ControlSocketService(server).setServiceParent(top)
    open_files = raise_open_file_limit()
    counter = ConnectionCounter(global_cap(open_files, server.config.limits.max_connections))
    log.info(
        "connection limits: {total} in all (open files {open_files}), {per_ip} per address and listener",
        total=counter.limit,
        open_files=open_files,
        per_ip=server.config.limits.max_connections_per_ip,
    )
    for listener in server.config.listeners:
        ListenerService(server, listener, counter).setServiceParent(top)
    return top
