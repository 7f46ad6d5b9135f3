"""The MTA-STS policy (RFC 8461 §3.2) from the real daemon's HTTPS listener, routed by Host:
`mta-sts.<local domain>` gets the policy, other hosts, plain HTTP and other domains do not;
quickstart prints the MTA-STS and TLSRPT records."""

from __future__ import annotations

import hashlib
import http.client
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsrv.dns.mtasts import parse_policy
from tests.daemon import RunningDaemon, start_daemon
from tests.ports import free_port


@pytest.fixture
def with_https(tmp_path: Path) -> Iterator[tuple[RunningDaemon, int]]:
    port = free_port()
    listener = (
        f'\n[[listeners]]\nname = "https"\nprotocol = "http"\naddress = "127.0.0.1"\nport = {port}\ntls = "implicit"\n'
    )
    daemon = start_daemon(tmp_path / "d", extra_static=listener)
    try:
        yield daemon, port
    finally:
        daemon.kill()


def _get(port: int, host: str, path: str, tls: bool = True) -> tuple[int, str, bytes]:
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", path, headers={"Host": host})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, response.getheader("content-type") or "", body


def test_policy_served_for_local_domains_over_https_only(with_https: tuple[RunningDaemon, int]) -> None:
    daemon, port = with_https
    status, ctype, body = _get(port, "mta-sts.example.org", "/.well-known/mta-sts.txt")
    assert status == 200 and ctype == "text/plain", body
    assert body == b"version: STSv1\r\nmode: testing\r\nmx: mail.example.org\r\nmax_age: 604800\r\n"
    # What our own queue's policy parser (the sending side) reads from it.
    policy = parse_policy(body.decode())
    assert (
        policy is not None
        and policy.mode == "testing"
        and policy.mx == ("mail.example.org",)
        and policy.max_age == 604800
    )
    assert _get(port, "MTA-STS.Example.ORG:443", "/.well-known/mta-sts.txt")[0] == 200
    for host in ("mta-sts.elsewhere.example", "example.org", "mail.example.org"):
        assert _get(port, host, "/.well-known/mta-sts.txt")[0] == 404, host
    assert _get(daemon.ports["http"], "mta-sts.example.org", "/.well-known/mta-sts.txt", tls=False)[0] == 404
    status, _, body = _get(port, "mta-sts.example.org", "/nothing")
    assert status == 404  # the rest of the site is the site's


def test_policy_per_domain_follows_its_settings(with_https: tuple[RunningDaemon, int]) -> None:
    daemon, port = with_https
    assert daemon.cli("domain", "add", "example.net").returncode == 0
    r = daemon.cli("domain", "set", "example.org", "--mta-sts-mode", "enforce", "--mta-sts-max-age", "1d")
    assert r.returncode == 0, r.stderr
    # The running daemon made the change (control socket): the next request sees it.
    status, _, body = _get(port, "mta-sts.example.org", "/.well-known/mta-sts.txt")
    assert status == 200 and body == b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.org\r\nmax_age: 86400\r\n"
    assert f"id={hashlib.sha256(body).hexdigest()[:20]}" in r.stdout  # the id is the served text's
    # The other domain keeps [smtp]'s default.
    status, _, body = _get(port, "mta-sts.example.net", "/.well-known/mta-sts.txt")
    assert status == 200 and b"mode: testing\r\n" in body and b"max_age: 604800\r\n" in body
    assert daemon.cli("domain", "set", "example.net", "--mta-sts-mode", "off").returncode == 0
    assert _get(port, "mta-sts.example.net", "/.well-known/mta-sts.txt")[0] == 404
    assert _get(port, "mta-sts.example.org", "/.well-known/mta-sts.txt")[0] == 200


def test_quickstart_prints_mta_sts_and_tlsrpt_records(tmp_path: Path) -> None:
    from mailsrv.quickstart import quickstart

    umask = os.umask(0o022)  # quickstart sets the process's umask (private files): restore it after
    try:
        text = quickstart(tmp_path / "q", "example.net", "admin@example.net", "pw-123456", None, None, None)
    finally:
        os.umask(umask)
    assert "mta-sts.example.net.  CNAME mail.example.net." in text
    assert '_mta-sts.example.net.  TXT "v=STSv1; id=' in text
    # The reports go to the admin's reports mailboxes, through addresses of their own (catchall "+").
    assert '_smtp._tls.example.net.  TXT "v=TLSRPTv1; rua=mailto:admin+tls@example.net"' in text
    assert '_dmarc.example.net.  TXT "v=DMARC1; p=reject; rua=mailto:admin+dmarc@example.net"' in text
    dynamic = (tmp_path / "q" / "data" / "dynamic.toml").read_text()
    assert 'dmarc_reports = "admin+dmarc@example.net"' in dynamic
