"""Server time of the webmail's common operations on a 10,000-message Inbox.

Run from the checkout: `PYTHONPATH=. python bench/webmail.py [COUNT]`. Fills a temporary
account with COUNT varied messages (text, HTML, replies, attachments) through the store's
batch append, then measures, each several times (best and median of wall time, and CPU
time, in the process: no HTTP):

- the first page of the list (50 rows by date, flat and threaded),
- opening a message (the view: read, parse, sanitise),
- a search for a word in all messages (body text, so every file is read),
- a search on an envelope field (from:).

No throughput comparison: one operation at a time, the figures for docs/performance.md.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parents[1])

from twisted.internet import defer, task  # noqa: E402

from mailsrv.ops import webmail as wmops  # noqa: E402
from mailsrv.ops.search import InlineScheduler  # noqa: E402
from mailsrv.store.interfaces import NewMessage, SortKey  # noqa: E402
from tests.ops.webmailworld import webmail, webmail_server  # noqa: E402

WORDS = "alpha beta gamma delta report budget meeting lunch travel invoice project review".split()


def sample(i: int) -> bytes:
    word = WORDS[i % len(WORDS)]
    refs = f"In-Reply-To: <m{i - 1}@bench.example>\r\n" if i % 5 else ""
    head = (
        f"From: Sender {i % 97} <s{i % 97}@bench.example>\r\nTo: alice@example.org\r\n"
        f"Subject: {'Re: ' if refs else ''}{word} number {i // 5}\r\nMessage-ID: <m{i}@bench.example>\r\n"
        f"Date: Sun, 7 Dec 2025 {i % 24:02d}:{i % 60:02d}:00 +0000\r\n{refs}"
    )
    body = f"Hello,\r\n\r\nthis is about the {word} (message {i}).\r\n" + ("Some more text here.\r\n" * 20)
    if i == 4321:
        body += "The needle word is zanzibar.\r\n"
    if i % 10 == 3:
        html = f"<html><body><p>Hi <b>{word}</b></p><img src='http://t.example/{i}.gif'></body></html>"
        return (
            head
            + "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
            + body
            + "\r\n--b\r\nContent-Type: text/html\r\n\r\n"
            + html
            + "\r\n--b--\r\n"
        ).encode()
    return (head + "\r\n" + body).encode()


async def timed(label: str, rounds: int, f: Callable[[], Awaitable[Any]]) -> None:
    walls, cpus = [], []
    for _ in range(rounds):
        w, c = time.perf_counter(), time.process_time()
        await f()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    print(
        f"{label}: best {min(walls) * 1000:.1f} ms, median {statistics.median(walls) * 1000:.1f} ms wall; "
        f"median {statistics.median(cpus) * 1000:.1f} ms CPU ({rounds} rounds)"
    )


async def run(count: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mailsrv-bench-webmail-"))
    try:
        server = webmail_server(tmp)
        wm = webmail(server)
        wm.scheduler = InlineScheduler()
        store = wm.store
        start = time.perf_counter()
        for base in range(0, count, 500):
            batch = [NewMessage(sample(i)) for i in range(base, min(base + 500, count))]
            await store.append_many("INBOX", batch, delivery=True)
        print(f"filled {count} messages in {time.perf_counter() - start:.1f} s; load {os.getloadavg()}")
        inbox = store.mailbox("INBOX").id
        await timed(
            "first list page (50, by date)",
            10,
            lambda: wmops.list_messages(wm, wmops.ListRequest(mailbox_id=inbox, sort=SortKey.DATE)),
        )
        await timed(
            "first list page (50, threaded)",
            10,
            lambda: wmops.list_messages(wm, wmops.ListRequest(mailbox_id=inbox, threaded=True)),
        )
        page = await wmops.list_messages(wm, wmops.ListRequest(mailbox_id=inbox, count=20))
        ids = [m.id for m in page.messages]
        await timed("open a message (view)", len(ids), lambda: wmops.open_message(wm, ids.pop()))
        await timed(
            "search a word in the text of all (zanzibar)",
            3,
            lambda: _uncached(wm, "zanzibar"),
        )
        await timed(
            "search from: (envelope)",
            3,
            lambda: _uncached(wm, "from:s42@bench.example"),
        )
        found = await wmops.search(wm, wmops.SearchRequest(query="zanzibar"))
        print(f"zanzibar found {found.total}; load {os.getloadavg()}")
        server.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _uncached(wm: Any, query: str) -> Any:
    wmops._search_cache._entries.clear()
    return await wmops.search(wm, wmops.SearchRequest(query=query))


def main(reactor: Any) -> defer.Deferred[None]:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    return defer.ensureDeferred(run(count))


if __name__ == "__main__":
    task.react(main)
