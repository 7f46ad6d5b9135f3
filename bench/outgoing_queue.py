#!/usr/bin/env python3
"""Queue benchmark: messages per second from enqueue to delivered at a local sink.

Enqueues N messages (10 KB) for recipients spread over 10 destination domains, whose MX
records (served by the loopback test DNS server) all point at Postfix's `smtp-sink` on
127.0.0.1, then runs the queue runner until every recipient is delivered. Measured: enqueue
rate (durable: file + directory fsync + index commit), delivery rate (MX lookup, SMTP session
with PIPELINING, status and attempt-history commit), and the total. Run as root or as a user
smtp-sink accepts (it drops privileges to `nobody`).

    python bench/outgoing_queue.py [--count N] [--per-domain K]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script: import mailsrv and tests from this checkout (bench/ itself holds no modules;
# a bench script must never be named like a standard-library module).
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from twisted.internet import defer, task  # noqa: E402

from mailsrv.address import Address  # noqa: E402
from mailsrv.dns.resolver import Resolver  # noqa: E402
from mailsrv.queue.runner import QueueRunner, RunnerOptions  # noqa: E402
from mailsrv.queue.store import OutgoingQueue  # noqa: E402
from tests.dnsserver import DNSServer  # noqa: E402

MESSAGE = b"From: bench@a.example\r\nTo: x@d0.example\r\nSubject: bench\r\n\r\n" + (b"x" * 76 + b"\r\n") * 128
DOMAINS = [f"d{i}.example" for i in range(10)]


def _as_user() -> list[str]:
    # smtp-sink must be told whom to become when started as root, and refuses -u otherwise.
    return ["-u", "nobody"] if os.geteuid() == 0 else []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main(reactor: Any, count: int, per_domain: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    port = _free_port()
    sink = subprocess.Popen(["/usr/sbin/smtp-sink", *_as_user(), f"127.0.0.1:{port}", "256"])
    dns = DNSServer()
    try:
        for d in DOMAINS:
            dns.set(d, "MX", f"10 mx.{d}.")
            dns.set(f"mx.{d}", "A", "127.0.0.1")
        time.sleep(0.3)
        queue = OutgoingQueue(directory)
        options = RunnerOptions(
            helo_name="bench.example", remote_port=port, max_per_domain=per_domain, max_total=100, interval=3600
        )
        runner = QueueRunner(reactor, queue, Resolver(reactor, [dns.address], timeout=2), options)
        sender = Address.parse("bench@a.example")
        start = time.perf_counter()
        pending = []
        for i in range(count):
            rcpt = Address.parse(f"user{i}@{DOMAINS[i % len(DOMAINS)]}")
            pending.append(queue.enqueue(sender, [rcpt], MESSAGE, "bench", False))
            if len(pending) >= 10:
                await defer.gatherResults(pending)
                pending = []
        await defer.gatherResults(pending)
        queued = time.perf_counter()
        runner.start()  # scans now, then starts more whenever a delivery finishes
        while queue.db.execute("SELECT COUNT(*) FROM recipient WHERE status = 'queued'").fetchone()[0]:
            await task.deferLater(reactor, 0.02, lambda: None)
        await runner.stop()
        done = time.perf_counter()
        delivered = queue.db.execute("SELECT COUNT(*) FROM recipient WHERE status = 'delivered'").fetchone()[0]
        print(f"messages: {count} of {len(MESSAGE)} bytes to {len(DOMAINS)} domains, {per_domain} sessions/domain")
        print(f"enqueue:  {count / (queued - start):7.0f} msg/s ({queued - start:.2f} s)")
        print(f"delivery: {count / (done - queued):7.0f} msg/s ({done - queued:.2f} s), delivered {delivered}")
        print(f"total:    {count / (done - start):7.0f} msg/s ({done - start:.2f} s)")
        queue.close()
    finally:
        dns.close()
        sink.kill()
        sink.wait()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--per-domain", type=int, default=2)
    args = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, args.count, args.per_domain)))
