"""Webhook deliveries to a local receiver: the sender's CPU time per webhook.

Run from the checkout: `PYTHONPATH=. python bench/webhooks.py [N]`. Writes N delivery events
into a queue outbox, then runs the webhook sender (mailsrv/webhooks/sender.py: outbox ->
webhook queue -> signed HTTP POST -> recorded) against a receiver in another process (stdlib
http.server, HTTP/1.1 keep-alive, answering 200) until every webhook is delivered. Prints the
sender process's CPU time per webhook and the webhooks per CPU-second; wall time too, which
on a shared machine says little.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parents[1])

from twisted.internet import defer, reactor, task  # noqa: E402

from mailsrv.queue import outbox  # noqa: E402
from mailsrv.queue.interfaces import QueueEvent  # noqa: E402
from mailsrv.queue.store import SQLiteOutgoingQueue  # noqa: E402
from mailsrv.webhooks.sender import SenderOptions, WebhookSender  # noqa: E402
from mailsrv.webhooks.store import WebhookStore  # noqa: E402
from tests.ports import free_port  # noqa: E402

RECEIVER = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)


async def run(n: int) -> None:
    R: Any = reactor
    directory = Path(tempfile.mkdtemp())
    queue = SQLiteOutgoingQueue(directory)
    store = WebhookStore(directory)
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    try:
        await task.deferLater(R, 0.5, lambda: None)
        await store.save_outgoing("alice", f"http://127.0.0.1:{port}/hook", "Bearer x", [])
        await store.rotate_secret("alice")
        now = time.time()
        for i in range(n):
            outbox.record_event(
                queue.db,
                QueueEvent(0, now, "delivered", i + 1, "alice", "alice@a.example", f"r{i}@b.example", "", 250, "ok"),
            )
        await queue.commit()
        server = SimpleNamespace(webhooks=store, queue=queue, reactor=R, resolver=SimpleNamespace(addresses=None))
        sender = WebhookSender(server, SenderOptions(allow_private=True, interval=0.05, max_in_flight=20))  # type: ignore[arg-type]
        cpu, wall = time.process_time(), time.perf_counter()
        sender.startService()
        while sender.sent < n:
            await task.deferLater(R, 0.05, lambda: None)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await sender.stopService()
        per = cpu / n * 1e6
        print(f"{n} webhooks: sender CPU {cpu:.2f} s = {per:.0f} µs per webhook = {n / cpu:.0f} per CPU-second")
        print(f"wall {wall:.2f} s ({n / wall:.0f}/s on this machine, receiver in another process)")
    finally:
        receiver.kill()
        queue.close()
        store.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    d = defer.ensureDeferred(run(n))
    d.addErrback(lambda f: f.printTraceback())
    d.addBoth(lambda _: reactor.stop())  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
