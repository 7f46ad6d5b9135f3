"""A webhook receiver for tests, written only with the standard library (as an application
would): `http.server` on a loopback port in a thread, recording every request.

    with Receiver() as r:
        ... r.url ...
        r.status = 500          # answer 500 from now on
        r.stop(); r.start()     # down for a while, back on the same port
        r.wait_for(lambda reqs: len(reqs) >= 3)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.ports import free_port


@dataclass
class Request:
    time: float
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.status = 200
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.start()

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = receiver.status
                with receiver._lock:
                    receiver.requests.append(
                        Request(time.time(), self.path, {k.lower(): v for k, v in self.headers.items()}, body, status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def snapshot(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def wait_for(
        self, condition: Callable[[list[Request]], bool], timeout: float = 60.0, what: str = ""
    ) -> list[Request]:
        deadline = time.monotonic() + timeout
        while True:
            requests = self.snapshot()
            if condition(requests):
                return requests
            assert time.monotonic() < deadline, f"timed out waiting for {what or 'webhooks'}: got {len(requests)}"
            time.sleep(0.05)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
