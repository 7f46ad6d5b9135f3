"""SPF/DKIM/DMARC on port 25 and DKIM signing on submission, with smtplib and imaplib against
the real daemon, every DNS record served by tests/dnsserver.py."""

from __future__ import annotations

import base64
import imaplib
import re
import smtplib
import uuid
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from mailsrv.dns.dkim import generate_dkim_key, sign
from mailsrv.dns.dkimkeys import create_key
from mailsrv.ops.mailauth import obscure_forged_results
from mailsrv.rules import Ruleset, RulesStore
from tests.daemon import RunningDaemon, write_config
from tests.dnsserver import DNSServer

pytestmark = pytest.mark.xdist_group("mailauth")


class Setup:
    def __init__(self, daemon: RunningDaemon, dns: DNSServer, good_key: bytes, org_txt: str) -> None:
        self.daemon = daemon
        self.dns = dns
        self.good_key = good_key
        self.org_txt = org_txt


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    with DNSServer() as dns:
        good_key, good_txt = generate_dkim_key("ed25519")
        dns.set("good.example", "TXT", "v=spf1 ip4:127.0.0.1 -all")
        dns.set("sel._domainkey.good.example", "TXT", good_txt)
        dns.set("_dmarc.good.example", "TXT", "v=DMARC1; p=reject")
        for domain, policy in (("reject.example", "reject"), ("quarantine.example", "quarantine")):
            dns.set(domain, "TXT", "v=spf1 ip4:192.0.2.1 -all")
            dns.set(f"_dmarc.{domain}", "TXT", f"v=DMARC1; p={policy}")
        static = f'\n[dns]\nnameservers = ["{dns.nameserver}"]\ntimeout = 2\n'
        daemon = write_config(Path(tmp_path_factory.mktemp("mailauth")) / "daemon", extra_static=static)
        org_txt = create_key(daemon.data_dir, "example.org", "s1")
        dynamic = daemon.data_dir / "dynamic.toml"
        text = dynamic.read_text()
        separator = 'localpart_catchall_separator = "+"\n'
        assert separator in text
        dynamic.write_text(text.replace(separator, separator + 'dkim_selector = "s1"\n', 1))
        dns.set("s1._domainkey.example.org", "TXT", org_txt)
        rulesets = [
            # Only a domain that passed SPF or DKIM counts as verified.
            {"verified_domain": "good.example", "headers": [["^subject$", "^ruled "]], "mailbox": "Archive"},
            {"verified_domain": "spoofed.example", "headers": [["^subject$", "^ruled "]], "mailbox": "Archive"},
            {"msg_from": r"@quarantine\.example", "headers": [["^subject$", "^trusted "]], "accept_regardless": True},
        ]
        RulesStore(daemon.data_dir).set_account("alice", [Ruleset.from_dict(r) for r in rulesets])
        daemon.start()
        try:
            yield Setup(daemon, dns, good_key, org_txt)
        finally:
            log = daemon.stop()
        assert "Traceback" not in log, log


def _message(sender: str, subject: str) -> bytes:
    return (
        f"From: <{sender}>\r\nTo: <alice@example.org>\r\nSubject: {subject}\r\n"
        f"Date: Sun, 29 Nov 2026 01:00:00 +0000\r\nMessage-ID: <{uuid.uuid4().hex}@test>\r\n\r\nHello.\r\n"
    ).encode()


def _send_inbound(daemon: RunningDaemon, sender: str, message: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], local_hostname="client.test") as s:
        s.sendmail(sender, ["alice@example.org"], message)


def _find(daemon: RunningDaemon, mailbox: str, subject: str, user: str = "alice") -> bytes | None:
    address, password = daemon.accounts[user]
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.ports["imaps"], ssl_context=daemon.ssl_context())
    try:
        imap.login(address, password)
        imap.select(mailbox, readonly=True)
        _, found = imap.search(None, "SUBJECT", f'"{subject}"')
        numbers = found[0].split()
        if not numbers:
            return None
        _, fetched = imap.fetch(numbers[0].decode(), "(BODY.PEEK[])")
        parts = [p[1] for p in fetched if isinstance(p, tuple)]
        return parts[0] if parts else None
    finally:
        imap.logout()


def _unfold(message: bytes) -> str:
    return re.sub(r"\r\n[ \t]+", " ", message.decode("utf-8", "replace"))


def test_signed_mail_from_spf_allowed_ip_passes_everything(setup: Setup) -> None:
    subject = f"good {uuid.uuid4().hex}"
    plain = _message("news@good.example", subject)
    signed = sign(plain, "good.example", "sel", setup.good_key) + plain
    _send_inbound(setup.daemon, "news@good.example", signed)
    stored = _find(setup.daemon, "INBOX", subject)
    assert stored is not None
    fields = [line for line in _unfold(stored).split("\r\n") if line.startswith("Authentication-Results:")]
    assert len(fields) == 1, fields
    assert re.search(r"spf=pass .*dkim=pass .*dmarc=pass", fields[0]), fields[0]
    assert "header.d=good.example" in fields[0]
    assert "mail.example.org" in fields[0]  # our authserv-id


def test_rsa_signature_by_another_signer_passes_over_smtp(setup: Setup) -> None:
    """A 10 KB message signed by dkimpy (its own RSA code, rsa-sha256, 2048 bits) with the key
    published in DNS: dkim=pass in the stored Authentication-Results; the same message with
    its body changed in transit: dkim=fail."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    setup.dns.set("rsa2048._domainkey.good.example", "TXT", "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode())
    results = []
    for change in (False, True):
        subject = f"rsa {uuid.uuid4().hex}"
        plain = _message("news@good.example", subject).replace(
            b"Hello.\r\n", b"".join(b"Line %d of the report,  with some text.\r\n" % i for i in range(250))
        )
        field = dkim.sign(
            plain,
            b"rsa2048",
            b"good.example",
            pem,
            canonicalize=(b"relaxed", b"simple"),
            include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
        )
        signed = field + plain
        if change:
            signed = signed.replace(b"Line 100 ", b"Line 101 ")
        _send_inbound(setup.daemon, "news@good.example", signed)
        stored = _find(setup.daemon, "INBOX", subject)
        assert stored is not None
        [fields] = [line for line in _unfold(stored).split("\r\n") if line.startswith("Authentication-Results:")]
        results.append(fields)
    assert re.search(r"dkim=pass header\.d=good\.example header\.s=rsa2048 header\.a=rsa-sha256", results[0]), results[
        0
    ]
    assert re.search(r"dkim=fail .*header\.s=rsa2048", results[1]), results[1]


def test_forged_from_of_reject_domain_is_refused(setup: Setup) -> None:
    subject = f"forged {uuid.uuid4().hex}"
    with pytest.raises(smtplib.SMTPDataError) as info:
        _send_inbound(setup.daemon, "someone@elsewhere.test", _message("ceo@reject.example", subject))
    assert info.value.smtp_code == 550
    assert info.value.smtp_error.startswith(b"5.7.1")
    assert _find(setup.daemon, "INBOX", subject) is None
    assert _find(setup.daemon, "Junk", subject) is None


def test_quarantine_failure_lands_in_junk(setup: Setup) -> None:
    subject = f"quarantined {uuid.uuid4().hex}"
    _send_inbound(setup.daemon, "x@quarantine.example", _message("x@quarantine.example", subject))
    assert _find(setup.daemon, "INBOX", subject) is None
    stored = _find(setup.daemon, "Junk", subject)
    assert stored is not None
    assert "dmarc=fail" in _unfold(stored)


def test_rulesets_see_verified_domains(setup: Setup) -> None:
    subject = f"ruled {uuid.uuid4().hex}"
    plain = _message("news@good.example", subject)
    _send_inbound(setup.daemon, "news@good.example", sign(plain, "good.example", "sel", setup.good_key) + plain)
    assert _find(setup.daemon, "Archive", subject) is not None
    # No SPF record, no signature: spoofed.example is not verified, the rule does not apply.
    subject = f"ruled {uuid.uuid4().hex}"
    _send_inbound(setup.daemon, "a@spoofed.example", _message("a@spoofed.example", subject))
    assert _find(setup.daemon, "INBOX", subject) is not None


def test_accept_regardless_overrides_quarantine(setup: Setup) -> None:
    subject = f"trusted {uuid.uuid4().hex}"
    _send_inbound(setup.daemon, "x@quarantine.example", _message("x@quarantine.example", subject))
    assert _find(setup.daemon, "INBOX", subject) is not None


def test_dns_failure_delivers_with_temperror(setup: Setup) -> None:
    setup.dns.set("flaky.example", "A", "192.0.2.9")
    setup.dns.servfail.add("flaky.example")
    setup.dns.servfail.add("_dmarc.flaky.example")
    subject = f"flaky {uuid.uuid4().hex}"
    _send_inbound(setup.daemon, "a@flaky.example", _message("a@flaky.example", subject))
    stored = _find(setup.daemon, "INBOX", subject)
    assert stored is not None
    assert "spf=temperror" in _unfold(stored)


def test_submission_is_dkim_signed_with_the_domain_key(setup: Setup) -> None:
    daemon = setup.daemon
    subject = f"submitted {uuid.uuid4().hex}"
    message = (
        f"From: Alice <alice@example.org>\r\nTo: <bob@example.org>\r\nSubject: {subject}\r\n\r\nSigned, Alice.\r\n"
    ).encode()
    with smtplib.SMTP("127.0.0.1", daemon.ports["submission"]) as s:
        s.starttls(context=daemon.ssl_context())
        s.login("alice@example.org", "alicepass")
        s.sendmail("alice@example.org", ["bob@example.org"], message)
    stored = _find(daemon, "INBOX", subject, user="bob")
    assert stored is not None
    assert b"\r\nDKIM-Signature:" in stored or stored.startswith(b"DKIM-Signature:")
    # Our trace fields (Delivered-To, Received) sit above the signature and are not signed.
    start = stored.index(b"DKIM-Signature:")
    txt = setup.org_txt.encode()

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name.rstrip(b".") == b"s1._domainkey.example.org"
        return txt

    assert dkim.verify(stored[start:], dnsfunc=dnsfunc)


def test_forged_results_with_our_authserv_id_are_renamed_over_the_daemon(setup: Setup) -> None:
    subject = f"forged results {uuid.uuid4().hex}"
    forged = b"Authentication-Results: mail.example.org; dkim=pass header.d=bank.example\r\n"
    _send_inbound(setup.daemon, "a@spoofed.example", forged + _message("a@spoofed.example", subject))
    stored = _find(setup.daemon, "INBOX", subject)
    assert stored is not None
    text = _unfold(stored)
    ours = [line for line in text.split("\r\n") if line.lower().startswith("authentication-results:")]
    assert len(ours) == 1 and "dkim=none" in ours[0], ours
    assert "\r\nX-Forged-Authentication-Results: mail.example.org; dkim=pass" in text


def test_obscure_forged_results() -> None:
    message = (
        b"Authentication-Results: MAIL.example.org; spf=pass\r\n"
        b"Authentication-Results:\r\n\tmail.example.org 1; dkim=pass\r\n"
        b"Authentication-Results: other.example; dkim=pass\r\n"
        b"Subject: x\r\n\r\nAuthentication-Results: mail.example.org; in the body\r\n"
    )
    out = obscure_forged_results(message, "mail.example.org")
    assert out.count(b"X-Forged-Authentication-Results:") == 2
    assert b"\r\nAuthentication-Results: other.example; dkim=pass" in out
    assert out.endswith(b"\r\n\r\nAuthentication-Results: mail.example.org; in the body\r\n")
    assert obscure_forged_results(b"Subject: x\r\n\r\n", "mail.example.org") == b"Subject: x\r\n\r\n"
