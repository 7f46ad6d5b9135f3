"""A daemon killed (SIGKILL) while its queue is busy resumes after a restart without losing
or duplicating a message.

200 messages (some with recipients at two domains) are submitted with smtplib while a hold
rule keeps them queued, then released at once: the runner delivers them to 10 domains, all
routed by the daemon's loopback DNS to a recording sink (tests/queue/sink.py) that answers
slowly. Once the sink has accepted some but not all, the daemon gets SIGKILL; it is then
started again on the same directory and ports and must empty its queue.

What must hold, per (Message-ID, recipient):
- it reached the sink (no loss: submission answered 250 only after the fsync);
- it reached the sink more than once only if every reception but the last was on a
  connection that said neither QUIT nor another MAIL after it. The runner commits a delivery
  as soon as the peer's 250 arrives and only then sends QUIT or, on a reused connection,
  the next MAIL (mailsrv/queue/runner.py), so a reception followed by either is durably
  recorded and never resent. A reception without QUIT is one the daemon was
  killed in the middle of: the sink accepted (or was about to accept) but our commit may
  not have happened — the window RFC 5321 §6.1 accepts ("the message may be delivered
  twice"). Such receptions are bounded by the sessions in flight at the kill: at most
  max_per_domain (2) per domain, 20 for 10 domains.
"""

from __future__ import annotations

import json
import smtplib
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import RunningDaemon, free_port, wait_until
from tests.queue.daemon_setup import start_queue_daemon
from tests.queue.sink import Accepted, RecordingSink

DOMAINS = [f"d{i}.example" for i in range(10)]
COUNT = 200
MAX_IN_FLIGHT = 2 * len(DOMAINS)  # RunnerOptions.max_per_domain per destination domain (max_total is 50)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[RunningDaemon, RecordingSink]]:
    # 30 ms before each 250: the queue stays busy for a while, deliveries overlap.
    sink = RecordingSink(free_port(), accept_delay=0.03)
    # alice keeps finished messages for a day: the retired list then shows each exactly once.
    daemon = start_queue_daemon(tmp_path / "daemon", sink.port, DOMAINS)
    try:
        yield daemon, sink
    finally:
        daemon.kill()
        sink.close()


def _submit_all(daemon: RunningDaemon) -> dict[str, list[str]]:
    """Message-ID -> recipients, every one acknowledged with 250."""
    submitted: dict[str, list[str]] = {}
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"], timeout=60) as s:
        s.starttls(context=daemon.ssl_context())
        s.login("alice@example.org", "alicepass")
        for n in range(COUNT):
            rcpts = [f"r{n}@{DOMAINS[n % len(DOMAINS)]}"]
            if n % 7 == 0:  # two destination domains: two groups, delivered independently
                rcpts.append(f"s{n}@{DOMAINS[(n + 3) % len(DOMAINS)]}")
            mid = f"<restart-{n}@example.org>"
            headers = f"From: alice@example.org\r\nTo: {', '.join(rcpts)}\r\nMessage-ID: {mid}\r\nSubject: {n}\r\n"
            body = f"{headers}\r\n{n}\r\n"
            refused = s.sendmail("alice@example.org", rcpts, body.encode())
            assert refused == {}
            submitted[mid] = rcpts
    return submitted


def test_sigkill_while_delivering_then_restart(setup: tuple[RunningDaemon, RecordingSink]) -> None:
    daemon, sink = setup
    assert "hold rule 1 added" in daemon.cli_ok("queue", "holdrules", "add")  # holds every new message
    submitted = _submit_all(daemon)
    daemon.cli_ok("queue", "holdrules", "rm", "1")
    assert daemon.cli_ok("queue", "release", "--held").strip() == f"{COUNT} message(s) released"

    total = sum(len(r) for r in submitted.values())
    wait_until(lambda: sink.count() >= total // 3, 60, "the first deliveries")
    daemon.kill()  # SIGKILL: no shutdown code runs
    at_kill = sink.count()
    assert at_kill < total, "everything was delivered before the kill: nothing was tested"
    time.sleep(0.2)  # sessions the sink was still answering end (their client is gone)

    daemon.start()
    wait_until(lambda: daemon.cli_json("queue", "list") == [], 120, "an empty queue")
    wait_until(sink.idle, 10, "the last sessions to end")

    by_key: dict[tuple[str, str], list[Accepted]] = defaultdict(list)
    for record in sink.records():
        for rcpt in record.recipients:
            by_key[(record.message_id, rcpt)].append(record)
    wanted = {(mid, r) for mid, rcpts in submitted.items() for r in rcpts}
    assert set(by_key) == wanted, f"lost: {sorted(wanted - set(by_key))[:5]}"
    unconfirmed = [r for r in sink.records() if not r.quit_after]
    duplicated = {k: v for k, v in by_key.items() if len(v) > 1}
    for key, receptions in duplicated.items():
        # Every reception but the last was cut off by the kill before QUIT.
        assert all(not r.quit_after for r in receptions[:-1]), (key, receptions)
    assert len(unconfirmed) <= MAX_IN_FLIGHT, unconfirmed
    print(
        f"accepted before the kill: {at_kill}/{total}; without QUIT at the kill: {len(unconfirmed)};"
        f" received twice: {len(duplicated)}"
    )

    # The retired list holds each message once, every recipient delivered.
    retired = json.loads(daemon.cli_ok("queue", "retired", "--json"))
    assert len(retired) == COUNT
    assert {r["status"] for m in retired for r in m["recipients"]} == {"delivered"}
