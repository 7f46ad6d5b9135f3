"""The webmail as a user meets it, on a 10,000-message Inbox: the real daemon on loopback.

Run from the checkout: `PYTHONPATH=. python bench/webmail_e2e.py [COUNT]`. Fills alice's
store before the daemon starts (bench/webmail.py's messages), then measures:

- the first list page and opening a message, as HTTP round trips of the JSON API (server
  time plus loopback; the server's share is in the log-free daemon);
- a search for a word in the text of every message (uncached: a new query each round);
- in chromium (Playwright): from the login click to the first page of the list on screen;
- SMTP 250 to the change on the event stream, and to the row in the browser.

Prints the machine's load with the figures: it is shared, so wall times vary.
"""

from __future__ import annotations

import os
import smtplib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parents[1])

from twisted.internet import defer, task  # noqa: E402

from bench.webmail import sample  # noqa: E402
from mailsrv.store.interfaces import NewMessage  # noqa: E402
from tests.daemon import write_config  # noqa: E402
from tests.web.webmail.harness import ALIAS, EventReader, WebmailClient  # noqa: E402


def fill(data_dir: Path, count: int) -> None:
    from mailsrv.store.registry import SQLiteStoreRegistry

    async def run() -> None:
        registry = SQLiteStoreRegistry(data_dir)
        store = registry.open("alice")
        for base in range(0, count, 500):
            batch = [NewMessage(sample(i)) for i in range(base, min(base + 500, count))]
            await store.append_many("INBOX", batch, delivery=True)
        registry.close_all()

    task.react(lambda reactor: defer.ensureDeferred(run()))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of the daemon so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(label: str, rounds: int, f: Callable[[int], object], pid: int) -> None:
    walls = []
    cpu = server_cpu(pid)
    for i in range(rounds):
        start = time.perf_counter()
        f(i)
        walls.append(time.perf_counter() - start)
    cpu = (server_cpu(pid) - cpu) / rounds
    print(
        f"{label}: best {ms(min(walls))}, median {ms(statistics.median(walls))} wall; "
        f"daemon CPU {ms(cpu)} per call ({rounds} rounds)"
    )


def smtp_250(daemon: Any, subject: str) -> float:
    """Sends one message over SMTP; the time its DATA got the 250 (before QUIT)."""
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=30) as smtp:
        smtp.ehlo("bench.example")
        smtp.mail("carol@elsewhere.example")
        smtp.rcpt("alice@example.org")
        smtp.data(f"From: carol@elsewhere.example\r\nTo: alice@example.org\r\nSubject: {subject}\r\n\r\nhi\r\n")
        return time.perf_counter()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    directory = Path(tempfile.mkdtemp(prefix="mailsrv-webmail-e2e-"))
    daemon = write_config(directory, extra_dynamic=ALIAS)
    start = time.perf_counter()
    if os.fork() == 0:  # the filling reactor cannot be restarted in this process
        fill(directory / "data", count)
        os._exit(0)
    os.wait()
    print(f"filled {count} messages in {time.perf_counter() - start:.1f} s")
    daemon.start()
    assert daemon.process is not None
    pid = daemon.process.pid
    try:
        client = WebmailClient(daemon.ports["http"]).login()
        mailboxes = {b["name"]: b for b in client.call("Mailboxes")["mailboxes"]}
        inbox = mailboxes["INBOX"]["id"]
        assert mailboxes["INBOX"]["messages"] == count, mailboxes["INBOX"]
        print(f"load before: {os.getloadavg()}")
        timed(
            "API MessageList first page (50 by date)",
            20,
            lambda i: client.call("MessageList", {"mailbox_id": inbox}),
            pid,
        )
        timed(
            "API MessageList first page threaded",
            20,
            lambda i: client.call("MessageList", {"mailbox_id": inbox, "threaded": True}),
            pid,
        )
        ids = [m["id"] for m in client.call("MessageList", {"mailbox_id": inbox, "count": 30})["messages"]]
        print(f"opening {len(ids)} different messages")
        timed("API Message (open)", 30, lambda i: client.call("Message", ids[i % len(ids)]), pid)
        words = ["zanzibar", "budget", "invoice"]
        timed(
            "API Search a word in all messages (text)",
            3,
            lambda i: client.call("Search", {"query": words[i], "mailbox_id": inbox}),
            pid,
        )
        seq = client.call("Mailboxes")["seq"]
        latencies = []
        for i in range(5):
            token = client.call("EventToken")
            reader = EventReader(daemon.ports["http"], f"/webmail/events?token={token}&since={seq}")
            t250 = smtp_250(daemon, f"latency {i}")
            while True:
                _, data = reader.event()
                if data and data.get("kind") == "delivered":
                    break
            latencies.append(time.perf_counter() - t250)
            seq = data["seq"]
            reader.close()
        print(f"SSE: SMTP 250 to the event: median {ms(statistics.median(latencies))}, max {ms(max(latencies))}")
        browser_figures(daemon)
        print(f"load after: {os.getloadavg()}")
    finally:
        daemon.stop()


def browser_figures(daemon: object) -> None:
    from playwright.sync_api import sync_playwright

    port = daemon.ports["http"]  # type: ignore[attr-defined]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"http://127.0.0.1:{port}/webmail/")
        page.fill("form.login input[name=username]", "alice@example.org")
        page.fill("form.login input[name=password]", "alicepass")
        start = time.perf_counter()
        page.click("form.login button[type=submit]")
        page.wait_for_selector("#messages li.msg")
        print(f"browser: login click to the first list page on screen: {(time.perf_counter() - start) * 1000:.0f} ms")
        page.reload()
        start = time.perf_counter()
        page.wait_for_selector("#messages li.msg")
        print(f"browser: reload (logged in) to the first list page on screen: {ms(time.perf_counter() - start)}")
        page.wait_for_timeout(1000)
        rows = []
        for i in range(5):
            t250 = smtp_250(daemon, f"row latency {i}")
            page.wait_for_selector(f"#messages li.msg:has-text('row latency {i}')")
            rows.append(time.perf_counter() - t250)
        print(f"browser: SMTP 250 to the row on screen: median {ms(statistics.median(rows))}, max {ms(max(rows))}")
        browser.close()


if __name__ == "__main__":
    main()
