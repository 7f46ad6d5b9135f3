"""Export and import over real sockets against the daemon: mail APPENDed over IMAP is
exported through the account page's export form (streamed zip), imported into another
account through the upload with its progress lines, and read back over IMAP with the same
bodies and flags; refusals without a session or CSRF token."""

from __future__ import annotations

import http.client
import imaplib
import io
import json
import re
import urllib.parse
import zipfile
from collections.abc import Iterator

import pytest

from tests.daemon import RunningDaemon
from tests.storeguard import assert_no_violation, guarded_daemon
from tests.web.apiclient import ApiClient

PREFIX = "/webaccount/"
MESSAGES = [
    (b"From: a@example.net\r\nSubject: one\r\n\r\nFrom the start\r\n", r"(\Seen)"),
    (b"From: b@example.net\r\nSubject: two\r\n\r\nSecond\r\n>From quoted\r\n", r"(\Flagged $Forwarded)"),
    (b"From: c@example.net\r\nSubject: three\r\n\r\nThird\r\n", "()"),
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    d: RunningDaemon = guarded_daemon(tmp_path_factory.mktemp("transfer") / "d")  # tests/storeguard.py
    try:
        yield d
    finally:
        d.stop()
        assert_no_violation(d)


def _imap(daemon: RunningDaemon, address: str, password: str) -> imaplib.IMAP4_SSL:
    imap = imaplib.IMAP4_SSL(daemon.address, daemon.ports["imaps"], ssl_context=daemon.ssl_context())
    imap.login(address, password)
    return imap


def _contents(daemon: RunningDaemon, address: str, password: str, mailbox: str) -> list[tuple[bytes, set[str]]]:
    imap = _imap(daemon, address, password)
    try:
        imap.select(mailbox, readonly=True)
        _, bodies = imap.fetch("1:*", "(BODY.PEEK[])")
        _, flag_lines = imap.fetch("1:*", "(FLAGS)")
        flags = []
        for line in flag_lines:
            assert isinstance(line, bytes)
            found = re.search(rb"FLAGS \(([^)]*)\)", line)
            assert found is not None, line
            flags.append(set(found.group(1).decode().split()))
        out = [(part[1], f) for part, f in zip((p for p in bodies if isinstance(p, tuple)), flags, strict=True)]
        return sorted(out)
    finally:
        imap.logout()


def _post(daemon: RunningDaemon, path: str, body: bytes, headers: dict[str, str]) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(daemon.address, daemon.ports["http"], timeout=60)
    conn.request("POST", path, body=body, headers=headers)
    return conn.getresponse()


def _cookie(client: ApiClient) -> str:
    return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


def test_export_then_import_into_another_account(daemon: RunningDaemon) -> None:
    imap = _imap(daemon, "alice@example.org", "alicepass")
    imap.create("Lists/Go")
    for data, flags in MESSAGES:
        imap.append("Lists/Go", flags, None, data)
    imap.logout()

    alice = ApiClient.for_daemon(daemon, PREFIX)
    alice.login("alice@example.org", "alicepass")
    form = urllib.parse.urlencode({"csrf": alice.csrf, "format": "maildir", "archive": "zip", "mailbox": "Lists/Go"})
    headers = {"Cookie": _cookie(alice), "Content-Type": "application/x-www-form-urlencoded"}
    response = _post(daemon, f"{PREFIX}export", form.encode(), headers)
    archive = response.read()
    assert response.status == 200, archive
    assert response.getheader("content-type") == "application/zip"
    assert "attachment" in (response.getheader("content-disposition") or "")
    assert response.getheader("transfer-encoding") == "chunked"  # streamed, no length known up front
    names = zipfile.ZipFile(io.BytesIO(archive)).namelist()
    assert sum(n.startswith("Lists/Go/cur/") for n in names) == 3

    bob = ApiClient.for_daemon(daemon, PREFIX)
    bob.login("bob@example.org", "bobpass")
    headers = {"Cookie": _cookie(bob), "x-mailsrv-csrf": bob.csrf or "", "Content-Type": "application/octet-stream"}
    response = _post(daemon, f"{PREFIX}import?mailbox=INBOX", archive, headers)
    lines = [json.loads(line) for line in response.read().splitlines()]
    assert response.status == 200 and response.getheader("content-type", "").startswith("application/x-ndjson")
    assert "progress" in lines[0], lines
    assert lines[-1] == {"result": {"messages": 3, "skipped": 0, "mailboxes": ["Lists/Go"], "problems": []}}
    assert _contents(daemon, "bob@example.org", "bobpass", "Lists/Go") == _contents(
        daemon, "alice@example.org", "alicepass", "Lists/Go"
    )


def test_refusals_without_session_or_csrf(daemon: RunningDaemon) -> None:
    alice = ApiClient.for_daemon(daemon, PREFIX)
    alice.login("alice@example.org", "alicepass")
    mbox = b"From x Sat Jan  3 01:05:34 1996\nSubject: s\n\nbody\n"
    # No cookie: noAuth; cookie without the CSRF header: badAuth. Nothing is imported.
    response = _post(daemon, f"{PREFIX}import", mbox, {})
    assert response.status == 401 and json.loads(response.read())["error"]["code"] == "user:noAuth"
    response = _post(daemon, f"{PREFIX}import", mbox, {"Cookie": _cookie(alice)})
    assert response.status == 401 and json.loads(response.read())["error"]["code"] == "user:badAuth"
    form = urllib.parse.urlencode({"format": "mbox"}).encode()
    response = _post(daemon, f"{PREFIX}export", form, {"Cookie": _cookie(alice)})
    assert response.status == 401
    response.read()
    # A wrong form value is a plain 400 before anything is streamed.
    form = urllib.parse.urlencode({"csrf": alice.csrf, "archive": "rar"}).encode()
    response = _post(
        daemon, f"{PREFIX}export", form, {"Cookie": _cookie(alice), "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status == 400 and b"archive" in response.read()
    assert daemon.inbox("alice@example.org", "alicepass") == []


def test_export_stops_when_the_client_goes_away(daemon: RunningDaemon) -> None:
    import base64
    import os
    import socket

    imap = _imap(daemon, "bob@example.org", "bobpass")
    imap.create("Big")
    for n in range(12):  # ~4 MB that does not compress: many chunks, so the producer must wait
        body = base64.encodebytes(os.urandom(250_000)).replace(b"\n", b"\r\n")
        imap.append("Big", None, None, b"Subject: big %d\r\n\r\n" % n + body)
    imap.logout()
    bob = ApiClient.for_daemon(daemon, PREFIX)
    bob.login("bob@example.org", "bobpass")
    form = urllib.parse.urlencode({"csrf": bob.csrf, "format": "mbox", "archive": "tgz", "mailbox": "Big"}).encode()
    request = (
        f"POST {PREFIX}export HTTP/1.1\r\nHost: x\r\nCookie: {_cookie(bob)}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(form)}\r\n\r\n"
    ).encode() + form
    with socket.create_connection((daemon.address, daemon.ports["http"]), timeout=30) as raw:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.sendall(request)
        first = raw.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
    # The daemon stops the export, logs no traceback, and serves the next request.
    assert bob.call("Account")["account"] == "bob"
    assert "Traceback" not in daemon.log()


def test_one_import_at_a_time_per_account(daemon: RunningDaemon) -> None:
    alice = ApiClient.for_daemon(daemon, PREFIX)
    alice.login("alice@example.org", "alicepass")
    headers = {"Cookie": _cookie(alice), "x-mailsrv-csrf": alice.csrf or "", "Content-Type": "application/octet-stream"}
    big = b"".join(b"From x Sat Jan  3 01:05:34 1996\nSubject: %d\n\nline\n\n" % n for n in range(20_000))
    first = _post(daemon, f"{PREFIX}import?mailbox=Many", big, headers)
    assert first.status == 200
    assert "progress" in json.loads(first.read1(65536).split(b"\n")[0])  # the first import runs now
    second = _post(daemon, f"{PREFIX}import?mailbox=Other", b"From x\nSubject: s\n\nx\n", headers)
    refused = json.loads(second.read())
    assert second.status == 400 and refused["error"]["code"] == "user:limitExceeded", refused
    assert json.loads(first.read().splitlines()[-1])["result"]["messages"] == 20_000
    # Once it is done, the next import runs.
    again = _post(daemon, f"{PREFIX}import?mailbox=Other", b"From x\nSubject: s\n\nx\n", headers)
    assert json.loads(again.read().splitlines()[-1])["result"]["messages"] == 1
