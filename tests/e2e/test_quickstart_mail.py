"""A new user's path, end to end (issue 17 items 10 and 11): `mailsrv quickstart`, the real
daemon (twistd, tests/daemon.py) on the configuration it wrote, a message submitted with smtplib,
and the message as it leaves the queue (at a recording SMTP sink) carries an ed25519 and an RSA
DKIM signature that both verify (dkimpy) against the DNS records quickstart printed, served by
tests/dnsserver.py. Then postmaster@ and abuse@ (any domain of ours, the host name, the bare
`<postmaster>`) reach the admin account.

Before the fix quickstart wrote `<selector>.<kind>.pem` and no selector: mail left unsigned and
nothing said so; postmaster@ was "550 no such user"."""

from __future__ import annotations

import os
import re
import smtplib
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import dkim
import dns.resolver
import pytest

from tests.daemon import REPO, RunningDaemon, wait_until
from tests.dnsserver import DNSServer
from tests.ports import free_port
from tests.queue.sink import RecordingSink

PASSWORD = "quickstart-secret-1"


class Started:
    def __init__(self, daemon: RunningDaemon, dns: DNSServer, sink: RecordingSink, records: dict[str, str]) -> None:
        self.daemon = daemon
        self.dns = dns
        self.sink = sink
        self.records = records


def _options(directory: Path) -> list[str]:
    return ["--dir", str(directory), "--password", PASSWORD]


def _quickstart(directory: Path) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run(
        [sys.executable, "-m", "mailsrv.cli", "quickstart", "example.net", "admin@example.net", *_options(directory)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def _printed_txt_records(output: str) -> dict[str, str]:
    """name -> TXT value, joined from its character-strings, as an admin would publish them."""
    out = {}
    for line in output.splitlines():
        m = re.match(r"\s*(\S+)\.\s+TXT\s+(.*)$", line)
        if m:
            out[m.group(1)] = "".join(re.findall(r'"([^"]*)"', m.group(2)))
    return out


def _local_config(config_path: Path, sink_port: int, dns: DNSServer) -> dict[str, int]:
    """Quickstart's production config, moved to loopback and free ports, its queue pointed at
    the sink and its resolver at the test DNS server. Everything else stays as written."""
    text = config_path.read_text()
    ports: dict[str, int] = {}

    def local(m: re.Match[str]) -> str:
        ports[m.group(1)] = free_port()
        return f'name = "{m.group(1)}"\n{m.group(2)}address = "127.0.0.1"\nport = {ports[m.group(1)]}\n'

    # Every listener, the "-ipv6" ones on "::" too: a production port left in would collide with other tests.
    text = re.sub(r'name = "([\w-]+)"\n(protocol = "\w+"\n)address = "[^"]*"\nport = \d+\n', local, text)
    assert not re.search(r'address = "(::|0\.0\.0\.0)"', text), text
    assert "[smtp]\n" in text
    text = text.replace("[smtp]\n", f"[smtp]\nremote_port = {sink_port}\n", 1)
    text += f'\n[dns]\nnameservers = ["{dns.nameserver}"]\ntimeout = 2\n'
    config_path.write_text(text)
    return ports


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    directory = Path(tmp_path_factory.mktemp("quickstart"))
    output = _quickstart(directory)
    records = _printed_txt_records(output)
    with DNSServer() as dns, RecordingSink() as sink:
        for name, value in records.items():
            dns.set(name, "TXT", value)
        dns.set("remote.example", "MX", "10 mx.remote.example.")
        dns.set("mx.remote.example", "A", "127.0.0.1")
        config_path = directory / "mailsrv.toml"
        ports = _local_config(config_path, sink.port, dns)
        daemon = RunningDaemon(
            directory=directory,
            config_path=config_path,
            ports=ports,
            cert_path=directory / "tls" / "cert.pem",
            log_path=directory / "daemon.log",
            accounts={"admin": ("admin@example.net", PASSWORD)},
        )
        daemon.start()
        try:
            yield Started(daemon, dns, sink, records)
        finally:
            log = daemon.stop()
        assert "Traceback" not in log, log


def _dns_txt(started: Started) -> object:
    resolver = dns.resolver.Resolver(configure=False)
    host, port = started.dns.nameserver.rsplit(":", 1)
    resolver.nameservers = [host]
    resolver.port = int(port)

    def txt(name: bytes, timeout: int = 5) -> bytes | None:
        try:
            answer = resolver.resolve(name.decode().rstrip("."), "TXT")
        except dns.resolver.NXDOMAIN:
            return None
        return b"".join(b"".join(r.strings) for r in answer)

    return txt


def test_submitted_mail_leaves_with_two_signatures_that_verify(started: Started) -> None:
    daemon = started.daemon
    dkim_names = sorted(n for n in started.records if "._domainkey." in n)
    assert len(dkim_names) == 2
    assert "DKIM: cannot sign" not in daemon.log()
    with smtplib.SMTP_SSL(
        "127.0.0.1", daemon.ports["submissions"], context=daemon.ssl_context(), local_hostname="client.test"
    ) as s:
        s.login("admin@example.net", PASSWORD)
        s.sendmail(
            "admin@example.net",
            ["friend@remote.example"],
            b"From: Admin <admin@example.net>\r\nTo: <friend@remote.example>\r\nSubject: signed?\r\n\r\nHello.\r\n",
        )
    wait_until(lambda: started.sink.count() >= 1, what="the message at the sink")
    [record] = [r for r in started.sink.records() if "friend@remote.example" in r.recipients]
    message = record.data
    head = message.split(b"\r\n\r\n", 1)[0]
    fields = re.findall(rb"(?m)^DKIM-Signature:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head)
    # Tag lists without folding white space (RFC 6376 §3.2), as name -> value.
    tags = [dict(t.split("=", 1) for t in re.sub(r"\s", "", f.decode()).split(";") if t) for f in fields]
    assert sorted(t["a"] for t in tags) == ["ed25519-sha256", "rsa-sha256"]
    assert {t["d"] for t in tags} == {"example.net"}
    selectors = sorted(t["s"] for t in tags)
    assert [f"{s}._domainkey.example.net" for s in selectors] == dkim_names
    verifier = dkim.DKIM(message)
    for index in range(2):
        assert verifier.verify(idx=index, dnsfunc=_dns_txt(started)), f"signature {index} does not verify"
    assert "DKIM: message from" not in daemon.log()


@pytest.mark.parametrize(
    "recipient", ["postmaster@example.net", "ABUSE@example.net", "postmaster@mail.example.net", "Postmaster"]
)
def test_postmaster_and_abuse_reach_the_admin(started: Started, recipient: str) -> None:
    daemon = started.daemon
    subject = f"to {recipient}"
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], local_hostname="client.test") as s:
        s.sendmail(
            "someone@remote.example",
            [recipient],
            f"From: <someone@remote.example>\r\nTo: <{recipient}>\r\nSubject: {subject}\r\n\r\nHi.\r\n".encode(),
        )
    inbox = daemon.inbox("admin@example.net", PASSWORD)
    assert any(f"Subject: {subject}".encode() in m for m in inbox)


def test_quickstart_config_names_the_admin_as_postmaster(started: Started) -> None:
    static = tomllib.loads(started.daemon.config_path.read_text())
    assert static["smtp"]["postmaster_account"] == "admin"


def test_account_page_and_autoconfig_over_https(started: Started) -> None:
    """Under twistd with quickstart's config: the account page over HTTPS (Secure session
    cookie), and autoconfig naming quickstart's host name with the daemon's ports."""
    import urllib.request

    from tests.web.apiclient import ApiClient

    daemon = started.daemon
    client = ApiClient.for_daemon(daemon, "/webaccount/", port_name="https")
    client.login("admin@example.net", PASSWORD)
    assert client.call("Account")["addresses"] == ["admin@example.net"]
    assert client.call("ClientSettings")["imap"][0] == {
        "protocol": "imap",
        "host": daemon.config_path.read_text().split('hostname = "', 1)[1].split('"', 1)[0],
        "port": daemon.ports["imaps"],
        "security": "implicit",
    }
    url = f"http://127.0.0.1:{daemon.ports['http']}/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=admin@example.net"
    body = urllib.request.urlopen(url, timeout=10).read()
    assert f"<port>{daemon.ports['submissions']}</port>".encode() in body
