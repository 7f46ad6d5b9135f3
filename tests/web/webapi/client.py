"""A webapi client for tests, on urllib only: calls with the request as a urlencoded form
field, as a JSON body or in a multipart form with files; answers as (status, headers, body).

    api = WebapiClient(f"http://127.0.0.1:{port}/webapi/v0/", "alice@example.org", "alicepass")
    result = api.ok("Send", {"To": [{"Address": "bob@example.org"}], "Text": "hi"})
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any


@dataclass
class Answer:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WebapiClient:
    def __init__(self, base_url: str, username: str | None, password: str | None) -> None:
        self.base_url = base_url
        self.username = username
        self.password = password

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Content-Type": content_type}
        if self.username is not None:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        return headers

    def post(self, method: str, body: bytes, content_type: str) -> Answer:
        req = urllib.request.Request(self.base_url + method, data=body, headers=self._headers(content_type))
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return Answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as e:
            return Answer(e.code, e.headers, e.read())

    def get(self, path: str) -> Answer:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=30) as response:
                return Answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as e:
            return Answer(e.code, e.headers, e.read())

    def call(self, method: str, request: Any, how: str = "form") -> Answer:
        """`how`: "form" (urlencoded field `request`), "json" (the body), "multipart"."""
        text = request if isinstance(request, str) else json.dumps(request)
        if how == "json":
            return self.post(method, text.encode(), "application/json")
        if how == "multipart":
            return self.multipart(method, text, [])
        return self.post(
            method, urllib.parse.urlencode({"request": text}).encode(), "application/x-www-form-urlencoded"
        )

    def multipart(self, method: str, request: str, files: list[tuple[str, str, str, bytes, str]]) -> Answer:
        """`files`: (field, file name, content type, data, Content-ID)."""
        boundary = os.urandom(12).hex()
        out = [f'--{boundary}\r\nContent-Disposition: form-data; name="request"\r\n\r\n'.encode(), request.encode()]
        for field, name, content_type, data, cid in files:
            head = f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            if content_type:
                head += f"Content-Type: {content_type}\r\n"
            if cid:
                head += f"Content-ID: {cid}\r\n"
            out += [head.encode() + b"\r\n", data]
        out.append(f"\r\n--{boundary}--\r\n".encode())
        return self.post(method, b"".join(out), f"multipart/form-data; boundary={boundary}")

    def ok(self, method: str, request: Any, how: str = "form") -> Any:
        answer = self.call(method, request, how)
        assert answer.status == 200, (answer.status, answer.body)
        return answer.json() if answer.headers.get_content_type() == "application/json" else answer.body

    def error(self, method: str, request: Any, how: str = "form") -> tuple[str, str]:
        answer = self.call(method, request, how)
        assert answer.status == 400, (answer.status, answer.body)
        body = answer.json()
        assert set(body) == {"Code", "Message"}, body
        return body["Code"], body["Message"]


def message_id_in_store(data_dir: Path, account: str, message_id: str) -> int | None:
    """The store's id (the webapi's MsgID) of the account's message with this Message-ID, read
    from the account's index read-only (what an incoming webhook would tell an application)."""
    db = sqlite3.connect(f"file:{data_dir / 'accounts' / account / 'index.db'}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute(
            "SELECT id FROM message WHERE json_extract(summary, '$.message_id') = ? ORDER BY id DESC",
            (message_id.strip("<>"),),
        ).fetchone()
    finally:
        db.close()
    return int(row[0]) if row else None


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def stored_count(data_dir: Path, account: str) -> int:
    """How many messages the account's store holds, all mailboxes together (0 before its store
    exists: a test may run on an xdist worker whose daemon has not delivered to it yet)."""
    path = data_dir / "accounts" / account / "index.db"
    if not path.exists():
        return 0
    db = _read_only(path)
    try:
        return int(db.execute("SELECT count(*) FROM message").fetchone()[0])
    finally:
        db.close()


def queue_high_water(data_dir: Path) -> int:
    """The highest id the outgoing queue has handed out (grows with every queued message)."""
    db = _read_only(data_dir / "queue" / "index.db")
    try:
        return int(db.execute("SELECT COALESCE(MAX(value), 0) FROM sequence").fetchone()[0])
    finally:
        db.close()
