"""DKIM body hashes of a message read in chunks (mailsrv/dns/dkimbody.py) agree with dkimpy's
over the whole body, for any body, any chunking and any l=; and verifying a `MessageSource`
(a spooled message, issue 17 item 7) gives the verdicts verifying its bytes gives."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from dkim import rfc822_parse
from dkim.canonicalization import Relaxed, Simple
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor

from mailsrv.dns import dkimbody
from mailsrv.dns.dkim import generate_dkim_key, sign, verify_dkim_sync
from mailsrv.dns.dkimbody import BodyHasher
from mailsrv.dns.resolver import Resolver
from mailsrv.message.source import MessageSource
from tests.dnsserver import DNSServer

PIECES = [b"a", b" ", b"\t", b"\r", b"\n", b"\r\n", b"b  c", b"\r\n\r\n", b" \r\n"]


@settings(max_examples=400, deadline=None)
@given(
    body=st.lists(st.sampled_from(PIECES), max_size=30).map(b"".join),
    relaxed=st.booleans(),
    limit=st.one_of(st.none(), st.integers(0, 40)),
    cuts=st.lists(st.integers(1, 5), min_size=1, max_size=10),
    carry=st.sampled_from([3, 64 * 1024]),
)
def test_body_hash_matches_dkimpy(
    body: bytes, relaxed: bool, limit: int | None, cuts: list[int], carry: int
) -> None:
    _, parsed = rfc822_parse(b"X: y\r\n\r\n" + body)
    canonical = (Relaxed if relaxed else Simple).canonicalize_body(parsed)
    if limit is not None:
        canonical = canonical[:limit]
    saved = dkimbody._MAX_CARRY
    dkimbody._MAX_CARRY = carry  # small: long partial lines are hashed early
    try:
        hasher = BodyHasher(relaxed, limit=limit)
        pos, i = 0, 0
        while pos < len(body):
            n = cuts[i % len(cuts)]
            hasher.update(body[pos : pos + n])
            pos, i = pos + n, i + 1
        assert hasher.digest() == hashlib.sha256(canonical).digest()
    finally:
        dkimbody._MAX_CARRY = saved


@pytest.fixture
def resolver() -> Iterator[tuple[DNSServer, Resolver]]:
    with DNSServer() as server:
        yield server, Resolver(reactor, [server.address], timeout=0.5)


def _source(data: bytes, head: int) -> tuple[MessageSource, Any]:
    """`data` as a spooled message would be: the first `head` octets in memory, the rest in a file."""
    f = tempfile.TemporaryFile()
    f.write(data[head:])
    f.flush()
    return MessageSource.of_file(f, len(data) - head).with_head(data[:head]), f


def test_a_source_verifies_like_its_bytes(resolver: tuple[DNSServer, Resolver]) -> None:
    server, res = resolver
    pem, txt = generate_dkim_key("ed25519")
    server.set("sel._domainkey.a.example", "TXT", txt)
    body = b"".join(b"line %d with  some   spaces \t\r\n" % i for i in range(200_000)) + b"\r\n\r\n"
    message = b"From: <alice@a.example>\r\nSubject: big\r\n\r\n" + body
    signed = sign(message, "a.example", "sel", pem) + message
    tampered = signed.replace(b"line 150000 ", b"line 150001 ")
    for data, verdict in ((signed, "pass"), (tampered, "fail")):
        for head in (0, 30, len(data) // 2):  # the header split across memory and file, or not
            source, f = _source(data, head)
            try:
                [from_source] = verify_dkim_sync(res, source)
            finally:
                f.close()
            [from_bytes] = verify_dkim_sync(res, data)
            assert from_source.result == from_bytes.result == verdict, (from_source, from_bytes)
