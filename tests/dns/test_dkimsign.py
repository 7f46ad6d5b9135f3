"""DKIM signing (mailsrv/dns/dkim.py `sign`: dkimpy's canonicalisation, cryptography's
signature): every signature verifies with dkimpy (our verifier) and, for RSA, with Perl's
Mail::DKIM (an independent implementation, Debian package libmail-dkim-perl; its Debian version
has no ed25519), over messages that exercise canonicalisation (folded fields, white space
runs, trailing blank lines, an empty body, 8-bit header text, fields signed twice or missing)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import dkim
import pytest

from mailsrv.dns.dkim import generate_dkim_key, sign
from tests.dnsserver import DNSServer
from tests.tools import tools_required

MESSAGES = {
    "plain": b"From: Alice <alice@example.org>\r\nTo: bob@b.example\r\nSubject: hello\r\n"
    b"Date: Mon, 7 Dec 2026 03:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n\r\nHello Bob.\r\n",
    "folded and spaced": b"From:   alice@example.org  \r\nTo: bob@b.example,\r\n\tcarol@c.example\r\n"
    b"Subject: a   long\r\n  subject\t line\r\nX-Other: not signed\r\n\r\nline  with   runs  \r\n"
    b"trailing tab\t\r\n\r\n\r\n\r\n",
    "empty body": b"From: alice@example.org\r\nSubject: nothing\r\n\r\n",
    "8-bit header": "From: Ålice <alice@example.org>\r\nSubject: grüße\r\nTo: bob@b.example\r\n\r\nGrüße\r\n".encode(),
    "two To fields": b"From: alice@example.org\r\nTo: one@b.example\r\nTo: two@b.example\r\n\r\nx\r\n",
    "long body": b"From: alice@example.org\r\nTo: bob@b.example\r\n\r\n" + (b"x" * 76 + b"\r\n") * 500,
}

_PERL_VERIFY = r"""
use strict;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS::Resolver;
my ($ip, $port) = @ARGV;
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(nameservers => [$ip], port => $port, recurse => 0));
my $v = Mail::DKIM::Verifier->new;
binmode STDIN;
while (<STDIN>) { $v->PRINT($_); }
$v->CLOSE;
print join(" ", map { $_->result } $v->signatures), "\n";
"""


@pytest.fixture
def dns() -> Iterator[DNSServer]:
    with DNSServer() as server:
        yield server


def _mail_dkim() -> None:
    found = subprocess.run(["perl", "-MMail::DKIM::Verifier", "-e", "1"], capture_output=True).returncode == 0
    if not found:
        reason = "Perl's Mail::DKIM is not installed (Debian package libmail-dkim-perl)"
        if tools_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def _dkimpy_verifies(signed: bytes, txt: str) -> bool:
    return bool(dkim.verify(signed, dnsfunc=lambda name, timeout=5: txt.encode()))


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_signatures_verify_with_dkimpy(kind: str, name: str) -> None:
    pem, txt = generate_dkim_key(kind)  # type: ignore[arg-type]
    message = MESSAGES[name]
    field = sign(message, "example.org", "sel", pem)
    assert field.startswith(b"DKIM-Signature: v=1; a=" + (b"rsa" if kind == "rsa" else b"ed25519") + b"-sha256;")
    assert field.endswith(b"\r\n") and all(len(line) <= 78 for line in field.split(b"\r\n"))
    assert _dkimpy_verifies(field + message, txt)
    # A changed signed field or body breaks it.
    assert not _dkimpy_verifies(field + message.replace(b"From:", b"From: x", 1), txt)
    assert not _dkimpy_verifies(field + message + b"more\r\n", txt)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_rsa_signatures_verify_with_mail_dkim(dns: DNSServer, name: str) -> None:
    _mail_dkim()
    pem, txt = generate_dkim_key("rsa")
    dns.add("sel._domainkey.example.org", "TXT", txt)
    message = MESSAGES[name]
    signed = sign(message, "example.org", "sel", pem) + message
    out = subprocess.run(
        ["perl", "-e", _PERL_VERIFY, dns.address[0], str(dns.address[1])],
        input=signed,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == [b"pass"], out
    tampered = signed.replace(b"\r\n\r\n", b"\r\n\r\nX", 1)
    out = subprocess.run(
        ["perl", "-e", _PERL_VERIFY, dns.address[0], str(dns.address[1])],
        input=tampered,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == [b"fail"], out


def test_signing_takes_well_under_a_millisecond_of_cpu_per_message() -> None:
    """The RSA signature is OpenSSL's: dkimpy's pure-Python RSA took ~7 ms of CPU for a
    2048-bit key, holding the GIL (the loose bound leaves room for a loaded machine)."""
    pem, _ = generate_dkim_key("rsa")
    message = MESSAGES["long body"]
    sign(message, "example.org", "sel", pem)  # the key is loaded and cached
    start = time.process_time()
    for _ in range(20):
        sign(message, "example.org", "sel", pem)
    assert (time.process_time() - start) / 20 < 0.004
