"""The webmail over real sockets: a daemon with the alias team@example.org (alice a member,
AllowMsgFrom), a JSON API client that logs in like the page does (LoginPrep, Login, the CSRF
header), SMTP delivery helpers, and an SSE reader."""

from __future__ import annotations

import http.client
import json
import smtplib
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.daemon import RunningDaemon
from tests.storeguard import guarded_daemon

ALIAS = '\n[aliases."team@example.org"]\nmembers = ["alice@example.org"]\nallow_msg_from = true\npost_public = true\n'


def webmail_daemon(directory: Path, extra_static: str = "") -> RunningDaemon:
    """The daemon with tests/storeguard.py's guard: a synchronous store read on a web request
    path fails the request and leaves a line in the log (`assert_no_violation`)."""
    daemon: RunningDaemon = guarded_daemon(directory, extra_dynamic=ALIAS, extra_static=extra_static)
    return daemon


class APIFailure(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


@dataclass
class WebmailClient:
    port: int
    prefix: str = "/webmail/"
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str = ""

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        all_headers = dict(headers or {})
        if self.cookies:
            all_headers["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, self.prefix + path, body=body, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";")[0]
        conn.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def call(self, method: str, *params: Any, csrf: str | None = None) -> Any:
        body = json.dumps({"params": list(params)}).encode()
        headers = {"content-type": "application/json", "x-mailsrv-csrf": self.csrf if csrf is None else csrf}
        status, _, data = self.request("POST", f"api/{method}", body, headers)
        answer = json.loads(data)
        if "error" in answer:
            raise APIFailure(status, answer["error"]["code"], answer["error"]["message"])
        return answer["result"]

    def login(self, username: str = "alice@example.org", password: str = "alicepass") -> WebmailClient:
        token = self.call("LoginPrep")
        self.csrf = self.call("Login", token, username, password)
        return self

    def get(self, path: str, csrf: bool = True) -> tuple[int, dict[str, str], bytes]:
        sep = "&" if "?" in path else "?"
        return self.request("GET", path + (f"{sep}csrf={self.csrf}" if csrf else ""))


def deliver(daemon: RunningDaemon, subject: str, body: str = "Hello\r\n", sender: str = "carol@elsewhere.example",
            extra: str = "", to: str = "alice@example.org") -> None:  # fmt: skip
    """Delivers a message over SMTP (port 25), as another server would."""
    message = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}\r\n{body}"
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=30) as smtp:
        smtp.sendmail(sender.rpartition("<")[2].strip(">"), [to], message.encode())


def wait_for(client: WebmailClient, subject: str, mailbox: str = "INBOX", timeout: float = 20) -> dict[str, Any]:
    """The list row of the newest message with `subject` in `mailbox` once it is there."""
    deadline = time.monotonic() + timeout
    while True:
        boxes = {b["name"]: b["id"] for b in client.call("Mailboxes")["mailboxes"]}
        page = client.call("MessageList", {"mailbox_id": boxes[mailbox], "count": 200})
        for row in page["messages"]:
            if row["subject"] == subject:
                return row  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"{subject!r} never arrived in {mailbox}"
        time.sleep(0.1)


class EventReader:
    """An SSE connection read line by line (blocking, with a timeout)."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
        self.file = self.sock.makefile("rb")
        self.status = int(self.file.readline().split()[1])
        self.headers: dict[str, str] = {}
        while (line := self.file.readline().strip()) != b"":
            name, _, value = line.decode().partition(":")
            self.headers[name.lower()] = value.strip()
        self.chunked = self.headers.get("transfer-encoding") == "chunked"
        self.buffer = b""

    def _more(self) -> None:
        if not self.chunked:
            self.buffer += self.file.read1(65536)  # type: ignore[attr-defined]
            return
        size = int(self.file.readline().strip(), 16)
        self.buffer += self.file.read(size)
        self.file.readline()

    def event(self) -> tuple[str, dict[str, Any] | None]:
        """The next event (name, data), skipping comments and the retry line."""
        while True:
            while b"\n\n" not in self.buffer:
                self._more()
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            name, data = "message", None
            for line in block.decode().split("\n"):
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
            if data is not None:
                return name, data

    def close(self) -> None:
        # The socket closes only once its file object is closed too.
        self.file.close()
        self.sock.close()
