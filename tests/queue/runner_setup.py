"""The queue runner as the runner-level tests build it: the test's DNS server, a peer on a
loopback port, short SMTP timeouts, a clock the test moves, DSNs handed to the test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet import reactor

from mailsrv.dns.resolver import Resolver
from mailsrv.queue.runner import QueueRunner, RunnerOptions
from mailsrv.queue.store import SQLiteOutgoingQueue
from mailsrv.smtpclient import SessionOptions, Timeouts
from tests.dnsserver import DNSServer

R: Any = reactor
FAST = Timeouts(connect=1, greeting=1, command=1, data_start=1, data_end=1, tls_handshake=1)


def make_runner(
    queue: SQLiteOutgoingQueue,
    dns: DNSServer,
    port: int,
    now: list[float],
    notify: Callable[[str, bytes], Awaitable[None]],
    retired_keep: Callable[[str], float],
    timeouts: Timeouts = FAST,
) -> QueueRunner:
    """`now[0]` is the runner's clock; `retired_keep(account)` its keep period per account."""
    options = RunnerOptions(
        helo_name="mx.a.example",
        remote_port=port,
        session=SessionOptions(helo_name="mx.a.example", timeouts=timeouts),
    )
    return QueueRunner(
        R,
        queue,
        Resolver(R, [dns.address], timeout=1),
        options,
        clock=lambda: now[0],
        notify=notify,
        retired_keep=retired_keep,
    )
