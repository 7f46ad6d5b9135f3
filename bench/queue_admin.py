"""Server time of the admin queue listing over a large queue (issue 14: first and later pages
of 100,000 queued messages each under 200 ms).

Run from the checkout: `python3 bench/queue_admin.py [--messages 100000] [--dir DIR]`. Fills a
fresh queue through `OutgoingQueue.enqueue` (the path submission takes: file, rows, hold
rules; in a tmpfs directory by default so the fill is not fsync-bound), spreads next attempts
with `set_next_attempt` and holds with a hold rule, then times `mailsrv.ops.queue.list_queue`
in-process (CPU and wall) for first pages and deep keyset pages in every sort, with filters.
Nothing here is a throughput figure.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parents[1])

from twisted.internet import defer, task  # noqa: E402

from mailsrv.address import Address  # noqa: E402
from mailsrv.ops import queue as ops_queue  # noqa: E402
from mailsrv.queue.interfaces import HoldRule, QueueFilter, QueuePage  # noqa: E402
from mailsrv.queue.store import SQLiteOutgoingQueue  # noqa: E402

BODY = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: bench\r\n\r\n" + b"x" * 400 + b"\r\n"


async def fill(queue: SQLiteOutgoingQueue, count: int) -> None:
    await queue.add_hold_rule(HoldRule(account="acct7"))  # 1 in 50 messages is held
    batch = 500
    started = time.perf_counter()
    for start in range(0, count, batch):
        pending = []
        for i in range(start, min(count, start + batch)):
            account = f"acct{i % 50}"
            sender = Address.parse(f"{account}@example.org")
            rcpts = [Address.parse(f"user{i % 97}@dest{i % 1000}.example")]
            if i % 5 == 0:
                rcpts.append(Address.parse(f"other{i % 13}@dest{(i * 7) % 1000}.example"))
            pending.append(queue.enqueue(sender, rcpts, BODY, account, False))
        await defer.gatherResults(pending)
        if start and start % 20000 == 0:
            print(f"  queued {start} ({time.perf_counter() - started:.0f} s)", flush=True)
    # Spread next attempts as retries would: per account, a different delay.
    now = time.time()
    for n in range(50):
        await queue.set_next_attempt(QueueFilter(account=f"acct{n}"), now + n * 600)


def timed(server: Any, req: ops_queue.ListMessages) -> tuple[QueuePage, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    out: list[Any] = []
    defer.Deferred.fromCoroutine(ops_queue.list_queue(server, req)).addBoth(out.append)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    page = out[0]
    if not isinstance(page, QueuePage):
        page.raiseException()
    return page, cpu * 1000, wall * 1000


def deep_anchor(server: Any, req: ops_queue.ListMessages, pages: int) -> tuple[Any, int]:
    """The anchor after up to `pages` pages of 1,000 (walked unmeasured), and how many messages
    lie before it; the last full page's anchor when the listing is shorter."""
    after, walked = None, 0
    for _ in range(pages):
        page, _, _ = timed(server, ops_queue.ListMessages(**{**_fields(req), "limit": 1000, "after": after}))
        if page.next is None:
            break
        after, walked = page.next, walked + len(page.messages)
    return after, walked


def _fields(req: ops_queue.ListMessages) -> dict[str, Any]:
    return {f: getattr(req, f) for f in req.__struct_fields__}


async def main(reactor: Any, args: argparse.Namespace) -> None:
    base = Path(args.dir) if args.dir else Path("/dev/shm" if Path("/dev/shm").is_dir() else tempfile.gettempdir())
    directory = Path(tempfile.mkdtemp(prefix="mailsrv-bench-", dir=base))
    try:
        queue = SQLiteOutgoingQueue(directory)
        started = time.perf_counter()
        await fill(queue, args.messages)
        total = queue.db.execute("SELECT COUNT(*) FROM message").fetchone()[0]
        print(f"queued {total} messages in {time.perf_counter() - started:.0f} s (fill time is not a figure)")
        server = SimpleNamespace(queue=queue)
        cases = [
            ("sort id", ops_queue.ListMessages()),
            ("sort created, descending", ops_queue.ListMessages(sort="created", descending=True)),
            ("sort next attempt", ops_queue.ListMessages(sort="next_attempt")),
            ("account acct3, sort next attempt", ops_queue.ListMessages(account="acct3", sort="next_attempt")),
            ("held", ops_queue.ListMessages(held=True)),
            ("recipient domain @dest500.example", ops_queue.ListMessages(recipient="@dest500.example")),
            ("next attempt before +1 h", ops_queue.ListMessages(next_before=time.time() + 3600, sort="next_attempt")),
            ("sender @example.org, sort created", ops_queue.ListMessages(sender="@example.org", sort="created")),
        ]
        print(f"{'listing (100 per page)':44} {'first page':>22} {'a later page':>22}")
        for name, req in cases:
            runs = [timed(server, req) for _ in range(3)]
            first = min(runs, key=lambda r: r[2])
            anchor, walked = deep_anchor(server, req, 50)
            if anchor is None:
                deep = "(one page only)"
            else:
                later = [timed(server, ops_queue.ListMessages(**{**_fields(req), "after": anchor})) for _ in range(3)]
                best = min(later, key=lambda r: r[2])
                deep = f"{best[1]:6.1f} cpu {best[2]:6.1f} wall  (after {walked:,})"
            print(f"{name:44} {first[1]:6.1f} cpu {first[2]:6.1f} wall   {deep}  ms", flush=True)
        queue.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--dir", help="where the temporary queue goes (default: /dev/shm)")
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, parser.parse_args())))
