"""Two mailsrv daemons on two loopback addresses, one per domain, and a DNS server the test
controls: mail submitted at a.example (127.0.0.1) travels through A's outgoing queue to
b.example's MX (127.0.0.2), which checks it the way the big providers do.

- b.example publishes an MTA-STS policy in `enforce` mode (served here over HTTPS by a
  test CA's certificate), so A must reach B with verified TLS; B's certificate comes from
  that CA and A trusts it through `[smtp] tls_ca_file`. B's SMTP port is not 25: A reaches it
  through `[smtp] remote_port`, the policy host through `[smtp] mta_sts_port`.
- a.example signs with DKIM (ed25519, selector s1), authorises 127.0.0.1 by SPF and asks
  DMARC p=reject: B must record spf=pass dkim=pass dmarc=pass.
- c.example is also hosted on A, but its DNS says only 192.0.2.1 sends its mail and it has
  no DKIM key at A: a message with From: c.example is, for B, a forged From. DMARC fails with
  p=reject, so B refuses it at SMTP time (550 5.7.1) and A returns a DSN to its sender.
- B sends its own mail (DSNs) to a.example's MX on A's SMTP port (`[smtp] remote_port`).
"""

from __future__ import annotations

import http.server
import imaplib
import re
import smtplib
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pytest

from mailsrv.dns.dkimkeys import create_key
from tests.certs import TestCA
from tests.daemon import RunningDaemon, write_config
from tests.dnsserver import DNSServer
from tests.ports import free_port

pytestmark = pytest.mark.xdist_group("two_domains")

POLICY = "version: STSv1\r\nmode: enforce\r\nmx: mail.b.example\r\nmax_age: 86400\r\n"


class PolicyServer:
    """https://mta-sts.b.example/.well-known/mta-sts.txt on 127.0.0.2, counting fetches."""

    def __init__(self, ca: TestCA, port: int) -> None:
        cert, key = ca.directory / "mta-sts.pem", ca.directory / "mta-sts.key"
        ca.issue(["mta-sts.b.example"], cert, key)
        self.fetches = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/.well-known/mta-sts.txt":
                    self.send_error(404)
                    return
                server.fetches += 1
                body = POLICY.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.2", port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Domains:
    a: RunningDaemon
    b: RunningDaemon
    ca: TestCA
    policy: PolicyServer


def _add_dkim_selector(daemon: RunningDaemon, selector: str) -> None:
    dynamic = daemon.data_dir / "dynamic.toml"
    separator = 'localpart_catchall_separator = "+"\n'
    text = dynamic.read_text()
    assert separator in text
    dynamic.write_text(text.replace(separator, separator + f'dkim_selector = "{selector}"\n', 1))


@pytest.fixture(scope="module")
def domains(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Domains]:
    base = Path(tmp_path_factory.mktemp("two_domains"))
    with DNSServer() as dns:
        dns_section = f'\n[dns]\nnameservers = ["{dns.nameserver}"]\ntimeout = 2\n'
        ca = TestCA(base / "ca")
        b = write_config(
            base / "b",
            domain="b.example",
            accounts={"bob": ("bob@b.example", "bobpass")},
            extra_static=dns_section,
            address="127.0.0.2",
        )
        ca.issue(["mail.b.example", "127.0.0.2"], b.cert_path, b.directory / "key.pem")
        policy = PolicyServer(ca, free_port())
        a = write_config(
            base / "a",
            domain="a.example",
            accounts={"alice": ("alice@a.example", "alicepass"), "carol": ("carol@c.example", "carolpass")},
            extra_static=dns_section
            + f'\n[smtp]\nremote_port = {b.ports["smtp"]}\ntls_ca_file = "{ca.path}"\n'
            + f"mta_sts_port = {policy.httpd.server_address[1]}\n",
            extra_dynamic='\n[domains."c.example"]\n',
        )
        # B's queue reaches A (its success DSNs) on A's SMTP port.
        with b.config_path.open("a") as f:
            f.write(f"\n[smtp]\nremote_port = {a.ports['smtp']}\n")
        a_dkim_txt = create_key(a.data_dir, "a.example", "s1", "ed25519")
        _add_dkim_selector(a, "s1")

        dns.set("mail.a.example", "A", "127.0.0.1")
        dns.set("a.example", "MX", "10 mail.a.example.")
        dns.set("a.example", "TXT", "v=spf1 ip4:127.0.0.1 -all")
        dns.set("s1._domainkey.a.example", "TXT", a_dkim_txt)
        dns.set("_dmarc.a.example", "TXT", "v=DMARC1; p=reject")
        dns.set("c.example", "TXT", "v=spf1 ip4:192.0.2.1 -all")
        dns.set("_dmarc.c.example", "TXT", "v=DMARC1; p=reject")
        dns.set("b.example", "MX", "10 mail.b.example.")
        dns.set("mail.b.example", "A", "127.0.0.2")
        dns.set("_mta-sts.b.example", "TXT", "v=STSv1; id=20261129")
        dns.set("mta-sts.b.example", "A", "127.0.0.2")
        # d.example: same MX host, but no MTA-STS policy to authenticate it.
        dns.set("d.example", "MX", "10 mail.b.example.")

        b.start()
        a.start()
        try:
            yield Domains(a, b, ca, policy)
        finally:
            policy.close()
            logs = a.stop() + b.stop()
        assert "Traceback" not in logs, logs


def _submit(
    domains: Domains,
    login: str,
    password: str,
    sender: str,
    subject: str,
    recipient: str = "bob@b.example",
    mail_options: tuple[str, ...] = (),
    rcpt_options: tuple[str, ...] = (),
) -> str:
    message_id = f"<{uuid.uuid4().hex}@test>"
    message = (
        f"From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: {subject}\r\n"
        f"Date: Sun, 29 Nov 2026 03:00:00 +0000\r\nMessage-ID: {message_id}\r\n\r\nHello from A.\r\n"
    )
    with smtplib.SMTP("127.0.0.1", domains.a.ports["submission"], timeout=30) as s:
        s.starttls(context=domains.a.ssl_context())
        s.login(login, password)
        s.sendmail(
            sender, [recipient], message.encode(), mail_options=list(mail_options), rcpt_options=list(rcpt_options)
        )
    return message_id


def _fetch(daemon: RunningDaemon, address: str, password: str, context: ssl.SSLContext, criteria: str) -> list[bytes]:
    imap = imaplib.IMAP4_SSL(daemon.address, daemon.ports["imaps"], ssl_context=context)
    try:
        imap.login(address, password)
        imap.select("INBOX", readonly=True)
        _, found = imap.search(None, criteria)
        messages = []
        for number in found[0].split():
            _, fetched = imap.fetch(number.decode(), "(BODY.PEEK[])")
            messages += [p[1] for p in fetched if isinstance(p, tuple)]
        return messages
    finally:
        imap.logout()


def _wait_for(fetch: object, timeout: float = 60.0) -> list[bytes]:
    assert callable(fetch)
    deadline = time.monotonic() + timeout
    while True:
        found: list[bytes] = fetch()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out waiting for the message"
        time.sleep(0.2)


def _b_context(domains: Domains) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(domains.ca.path))


def _unfold(message: bytes) -> str:
    return re.sub(r"\r\n[ \t]+", " ", message.decode("utf-8", "replace"))


def test_signed_mail_arrives_with_spf_dkim_dmarc_pass_over_verified_tls(domains: Domains) -> None:
    message_id = _submit(domains, "alice@a.example", "alicepass", "alice@a.example", "signed")
    [received] = _wait_for(
        lambda: _fetch(domains.b, "bob@b.example", "bobpass", _b_context(domains), f'HEADER Message-ID "{message_id}"')
    )
    text = _unfold(received)
    results = [line for line in text.split("\r\n") if line.lower().startswith("authentication-results:")]
    assert len(results) == 1, text
    assert "mail.b.example;" in results[0]
    assert re.search(r"\bspf=pass\b[^;]*smtp\.mailfrom=a\.example", results[0]), results[0]
    assert re.search(r"\bdkim=pass\b[^;]*header\.d=a\.example", results[0]), results[0]
    assert re.search(r"\bdmarc=pass\b[^;]*header\.from=a\.example", results[0]), results[0]
    assert "DKIM-Signature:" in text and "d=a.example" in text and "a=ed25519-sha256" in text
    # B's trace field says the hop from A was encrypted; MTA-STS enforce made A verify it.
    received_fields = [line for line in text.split("\r\n") if line.startswith("Received:")]
    assert "mail.a.example" in received_fields[0] and re.search(r"ESMTPS|TLS", received_fields[0]), received_fields
    assert domains.policy.fetches >= 1
    # A logs the delivery when B's 250 arrives, which may be a moment after B made the message readable.
    delivered = re.compile(
        r"queue \d+: to=<bob@b\.example>, relay=mail\.b\.example\[127\.0\.0\.2\], .* status=delivered \(250 "
    )
    _wait_for(lambda: [b"logged"] if delivered.search(domains.a.log()) else [], timeout=30)


def test_forged_from_is_refused_at_smtp_time_and_returned_to_the_sender(domains: Domains) -> None:
    message_id = _submit(domains, "carol@c.example", "carolpass", "carol@c.example", "forged")
    [dsn_bytes] = _wait_for(
        lambda: _fetch(domains.a, "carol@c.example", "carolpass", domains.a.ssl_context(), "ALL"),
    )
    dsn = message_from_bytes(dsn_bytes)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    parts: list[Message] = list(dsn.walk())
    status = next(p for p in parts if p.get_content_type() == "message/delivery-status")
    status_text = str(status.get_payload(1) if status.is_multipart() else status.get_payload())
    assert "Final-Recipient: rfc822; bob@b.example" in status_text.replace(";bob", "; bob"), status_text
    assert "Action: failed" in status_text and "Status: 5.7.1" in status_text, status_text
    assert "550" in dsn_bytes.decode("utf-8", "replace")
    # B refused it: bob never got it.
    assert _fetch(domains.b, "bob@b.example", "bobpass", _b_context(domains), f'HEADER Message-ID "{message_id}"') == []
    assert re.search(r"NOQUEUE: reject: DATA from \S+: 550 5\.7\.1 .*DMARC.*; from=<carol@c\.example>", domains.b.log())
    assert re.search(
        r"queue \d+: to=<bob@b\.example>, relay=mail\.b\.example\[127\.0\.0\.2\], .* status=failed \(550 ",
        domains.a.log(),
    )
    assert "failed DSN to carol@c.example" in domains.a.log()


def test_requiretls_travels_to_an_authenticated_mx_and_fails_without_one(domains: Domains) -> None:
    """RFC 8689: a REQUIRETLS message goes only to an MX host that MTA-STS authenticates, over
    verified TLS, to a peer offering REQUIRETLS (B does); to d.example, whose MX nothing
    authenticates, it is not sent at all and the sender gets a DSN with 5.7.30."""
    message_id = _submit(
        domains, "alice@a.example", "alicepass", "alice@a.example", "rtls", mail_options=("REQUIRETLS",)
    )
    _wait_for(
        lambda: _fetch(domains.b, "bob@b.example", "bobpass", _b_context(domains), f'HEADER Message-ID "{message_id}"')
    )
    assert re.search(
        r"queue \d+: to=<bob@b\.example>, relay=mail\.b\.example\[127\.0\.0\.2\], .* status=delivered \(250 ",
        domains.a.log(),
    )

    _submit(domains, "alice@a.example", "alicepass", "alice@a.example", "rtls-d", "x@d.example", ("REQUIRETLS",))
    [dsn] = _wait_for(
        lambda: _fetch(domains.a, "alice@a.example", "alicepass", domains.a.ssl_context(), 'SUBJECT "Delivery failure"')
    )
    text = dsn.decode("utf-8", "replace")
    assert "Final-Recipient: rfc822; x@d.example" in text.replace(";x@", "; x@"), text
    assert "Status: 5.7.30" in text and "REQUIRETLS" in text, text


def test_dsn_request_travels_to_b_which_reports_the_delivery(domains: Domains) -> None:
    """RFC 3461: B offers DSN, so A passes NOTIFY/ORCPT/RET/ENVID on and sends no success DSN
    itself (§5.2.2.2); B delivers to bob and sends the "delivered" DSN back to alice."""
    message_id = _submit(
        domains,
        "alice@a.example",
        "alicepass",
        "alice@a.example",
        "dsn-success",
        mail_options=("RET=HDRS", "ENVID=e2e+2B1"),
        rcpt_options=("NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Bob@b.example"),
    )
    _wait_for(
        lambda: _fetch(domains.b, "bob@b.example", "bobpass", _b_context(domains), f'HEADER Message-ID "{message_id}"')
    )
    [report] = _wait_for(
        lambda: _fetch(domains.a, "alice@a.example", "alicepass", domains.a.ssl_context(), 'SUBJECT "Delivery report"')
    )
    text = _unfold(report)
    assert "Reporting-MTA: dns; mail.b.example\r\nOriginal-Envelope-Id: e2e+1\r\n" in text, text
    assert "Original-Recipient: rfc822;Bob@b.example\r\nFinal-Recipient: rfc822; bob@b.example\r\n" in text
    assert "Action: delivered\r\nStatus: 2.0.0" in text and "Hello from A." not in text  # RET=HDRS
    assert "delivered DSN to alice@a.example for 1 recipient(s)" in domains.b.log()
    assert "relayed DSN" not in domains.a.log()
