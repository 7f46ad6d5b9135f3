#!/usr/bin/env python3
"""CPU per DKIM verification, in process: `verify_dkim_sync` on a 10 KB message with one
rsa-sha256 signature (2048 bits, relaxed/relaxed, signed by dkimpy), the key served by
tests/dnsserver.py through our resolver (cached after the first lookup), as bytes and as a
`MessageSource`; and plain dkimpy (`dkim.DKIM(message).verify`) on the same message and key
lookups, for comparison. Prints microseconds of thread CPU per verification
(`time.thread_time`), the median of several rounds. A component figure, usable on a loaded
machine:

    python bench/dkim_verify.py [--calls N] [--rounds R] [--bits B] [--size OCTETS]
"""

from __future__ import annotations

import argparse
import base64
import logging
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

import dkim  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.hazmat.primitives.serialization import (  # noqa: E402
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from twisted.internet import reactor  # noqa: E402

from mailsrv.dns.dkim import _txt_hook, verify_dkim_sync  # noqa: E402
from mailsrv.dns.resolver import Resolver  # noqa: E402
from mailsrv.message.source import MessageSource  # noqa: E402
from tests.dnsserver import DNSServer  # noqa: E402

HEADER = (
    b"Received: from mx.example.net (mx.example.net [192.0.2.1])\r\n\tby mail.example.org with ESMTPS id abc\r\n"
    b"From: Alice <alice@sender.example>\r\nTo: bob@example.org\r\nSubject: Quarterly report\r\n"
    b"Date: Sun, 29 Nov 2026 01:00:00 +0000\r\nMessage-ID: <1234@sender.example>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
)
WORDS = ["alpha", "beta", "gamma", "delta", "the", "quick", "brown", "fox", "jumps", "over"]


def message(size: int) -> bytes:
    rnd = random.Random(1)
    lines: list[bytes] = []
    total = 0
    while total < size:
        line = " ".join(rnd.choice(WORDS) for _ in range(12)).encode()
        lines.append(line)
        total += len(line) + 2
    return HEADER + b"\r\n" + b"\r\n".join(lines) + b"\r\n"


def per_call_us(fn: Callable[[], object], calls: int, rounds: int) -> float:
    for _ in range(min(calls, 20)):
        fn()
    results = []
    for _ in range(rounds):
        start = time.thread_time()
        for _ in range(calls):
            fn()
        results.append((time.thread_time() - start) / calls * 1e6)
    return statistics.median(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bits", type=int, default=2048)
    parser.add_argument("--size", type=int, default=10_000, help="body size in octets")
    args = parser.parse_args()
    key = rsa.generate_private_key(public_exponent=65537, key_size=args.bits)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    plain = message(args.size)
    signed_headers = [b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type"]
    field = dkim.sign(
        plain, b"sel", b"sender.example", pem, canonicalize=(b"relaxed", b"relaxed"), include_headers=signed_headers
    )
    signed = field + plain
    quiet = logging.getLogger("bench.dkimpy")
    quiet.setLevel(logging.CRITICAL)
    with DNSServer() as server:
        server.set("sel._domainkey.sender.example", "TXT", "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode())
        resolver = Resolver(reactor, [server.address], timeout=2)
        source = MessageSource([signed])
        assert [v.result for v in verify_dkim_sync(resolver, signed)] == ["pass"]
        assert [v.result for v in verify_dkim_sync(resolver, source)] == ["pass"]
        hook = _txt_hook(resolver, [])

        def plain_dkimpy() -> None:
            assert dkim.DKIM(signed, logger=quiet, minkey=1024).verify(dnsfunc=hook)

        print(f"message {len(signed)} octets, rsa-sha256 {args.bits} bits, relaxed/relaxed")
        for name, fn in (
            ("verify_dkim_sync(bytes)", lambda: verify_dkim_sync(resolver, signed)),
            ("verify_dkim_sync(MessageSource)", lambda: verify_dkim_sync(resolver, source)),
            ("plain dkimpy", plain_dkimpy),
        ):
            print(f"{name:34} {per_call_us(fn, args.calls, args.rounds):8.0f} us CPU per verification")


if __name__ == "__main__":
    main()
