"""The web site as a user meets it: the real daemon over real sockets. Unknown paths 404 with
the security headers, HSTS on HTTPS, 413 for big bodies, Prometheus /metrics on the named
listener counting connections, logins and deliveries."""

from __future__ import annotations

import http.client
import imaplib
import smtplib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import RunningDaemon, start_daemon
from tests.ports import free_port


@pytest.fixture
def web_daemon(tmp_path: Path) -> Iterator[tuple[RunningDaemon, int]]:
    https = free_port()
    extra = (
        f'\n[[listeners]]\nname = "https"\nprotocol = "http"\naddress = "127.0.0.1"\nport = {https}\ntls = "implicit"\n'
        '\n[web]\nmetrics_listener = "http"\nhsts_max_age = 86400\n'
        "\n[limits]\nhttp_max_body = 4096\n"
    )
    daemon = start_daemon(tmp_path / "d", extra_static=extra)
    try:
        yield daemon, https
    finally:
        daemon.stop()


def _request(
    port: int, method: str, path: str, body: bytes | None = None, tls: bool = False
) -> http.client.HTTPResponse:
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request(method, path, body=body)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def _metrics(daemon: RunningDaemon) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", daemon.ports["http"], timeout=20)
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    assert response.status == 200
    values: dict[str, float] = {}
    for line in response.read().decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    conn.close()
    return values


def test_404_headers_hsts(web_daemon: tuple[RunningDaemon, int]) -> None:
    daemon, https = web_daemon
    plain = _request(daemon.ports["http"], "GET", "/no/such/page")
    assert plain.status == 404
    assert "frame-ancestors 'none'" in (plain.getheader("content-security-policy") or "")
    assert plain.getheader("x-content-type-options") == "nosniff"
    assert plain.getheader("strict-transport-security") is None
    secure = _request(https, "GET", "/no/such/page", tls=True)
    assert secure.status == 404 and secure.getheader("strict-transport-security") == "max-age=86400"
    assert _request(https, "GET", "/metrics", tls=True).status == 404  # only on the named listener


def test_413_for_big_bodies(web_daemon: tuple[RunningDaemon, int]) -> None:
    daemon, _ = web_daemon
    assert _request(daemon.ports["http"], "POST", "/webaccount/api/x", b"x" * 5000).status == 413
    # Refused on the headers: the daemon answers before the client sent its body.
    with socket.create_connection(("127.0.0.1", daemon.ports["http"]), timeout=20) as s:
        s.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 413 ")
    assert _request(daemon.ports["http"], "POST", "/x", b"x" * 4000).status == 404


def test_metrics_count_connections_logins_deliveries(web_daemon: tuple[RunningDaemon, int]) -> None:
    daemon, _ = web_daemon
    before = _metrics(daemon)
    imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
    imap.starttls(daemon.ssl_context())
    imap.login("alice@example.org", "alicepass")
    imap.logout()
    with pytest.raises(imaplib.IMAP4.error):
        imap = imaplib.IMAP4("127.0.0.1", daemon.ports["imap"])
        imap.starttls(daemon.ssl_context())
        imap.login("alice@example.org", "wrong")
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"]) as smtp:
        smtp.sendmail("someone@elsewhere.example", ["bob@example.org"], b"Subject: hi\r\n\r\nhello\r\n")
    after = _metrics(daemon)

    def grew(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert grew('mailsrv_connections_total{protocol="imap"}') == 2
    assert grew('mailsrv_connections_total{protocol="smtp"}') == 1
    assert grew('mailsrv_logins_total{result="ok"}') == 1
    assert grew('mailsrv_logins_total{result="failed"}') == 1
    assert grew('mailsrv_deliveries_total{result="delivered"}') == 1
    assert after['mailsrv_connections_open{protocol="http"}'] >= 1
    assert after["mailsrv_queue_size"] == 0
    daemon.cli_ok("queue", "holdrules", "add")  # the message stays queued (no DSN race)
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"]) as smtp:
        smtp.starttls(context=daemon.ssl_context())
        smtp.login("alice@example.org", "alicepass")
        smtp.sendmail(
            "alice@example.org", ["x@elsewhere.example"], b"From: alice@example.org\r\nSubject: out\r\n\r\nbye\r\n"
        )
    assert _metrics(daemon)["mailsrv_queue_size"] == 1
