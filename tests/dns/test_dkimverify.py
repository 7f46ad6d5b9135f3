"""DKIM verdicts of `verify_dkim_sync` (header-only dkimpy, our body hashing, RSA through OpenSSL)
are the ones plain dkimpy gives on the whole message, for a corpus of signed messages: valid,
tampered, wrong or revoked keys, odd key records, 1024/2048/4096-bit RSA, ed25519, l=, every
c= combination, several signatures; key records served by tests/dnsserver.py. And
`rsa_verify` answers like dkimpy's pure-Python RSA for any signature and key."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import random
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from dkim.canonicalization import Relaxed
from dkim.crypto import DigestTooLargeError, RSASSA_PKCS1_v1_5_verify
from twisted.internet import reactor

from mailsrv.dns.dkim import (
    DKIMResult,
    DKIMVerdict,
    _signature_headers,
    _tags,
    _txt_hook,
    generate_dkim_key,
    sign,
    verify_dkim_sync,
)
from mailsrv.dns.dkimrsa import rsa_verify
from mailsrv.dns.resolver import Resolver
from mailsrv.message.source import MessageSource
from tests.dnsserver import DNSServer
from tests.tools import require_program

_LOG = logging.getLogger("tests.dkimverify")
_LOG.setLevel(logging.CRITICAL)


def _reference(resolver: Resolver, message: bytes) -> list[DKIMVerdict]:
    """The verdicts plain dkimpy gives on the whole message, mapped as mailsrv maps them."""
    out: list[DKIMVerdict] = []
    missing: list[str] = []
    hook = _txt_hook(resolver, missing)
    # Finding the signatures and reading a=, d=, s= is mailsrv's own code either way.
    for idx, value in enumerate(_signature_headers(message)[:5]):
        tags = _tags(value)
        domain, selector, algorithm = tags.get("d", "").lower(), tags.get("s", ""), tags.get("a", "").lower()
        if algorithm not in ("rsa-sha256", "ed25519-sha256"):
            out.append(DKIMVerdict("permerror", domain, selector, algorithm))
            continue
        missing.clear()
        result: DKIMResult
        try:
            ok = dkim.DKIM(message, logger=_LOG, minkey=1024, timeout=5).verify(idx=idx, dnsfunc=hook)
        except dkim.DnsTimeoutError:
            result = "temperror"
        except dkim.DKIMException as e:
            result = "fail" if str(e).startswith("body hash mismatch") else "permerror"
        except Exception:
            result = "permerror"
        else:
            if not ok and "temporary" in missing:
                result = "temperror"
            elif not ok and missing:
                result = "permerror"
            else:
                result = "pass" if ok else "fail"
        out.append(DKIMVerdict(result, domain, selector, algorithm))
    return out


def _results(verdicts: list[DKIMVerdict]) -> list[tuple[str, str, str]]:
    return [(v.result, v.domain, v.selector) for v in verdicts]


@pytest.fixture(scope="module")
def dns() -> Iterator[tuple[DNSServer, Resolver]]:
    with DNSServer() as server:
        yield server, Resolver(reactor, [server.address], timeout=0.5)


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[bytes, str]]:
    """name -> (PKCS#8 PEM, TXT record)."""
    out: dict[str, tuple[bytes, str]] = {}
    for bits in (1024, 2048, 4096):
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        out[f"rsa{bits}"] = (pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode())
    out["ed25519"] = generate_dkim_key("ed25519")
    return out


BODIES = [
    b"Hello.\r\n",
    b"",
    b"\r\n\r\n\r\n",
    b"  \t \r\n",
    b"Two  spaces\tand a tab \t \r\nnext line\r\n\r\n\r\n",
    b"LF only\nline two  \n\n",
    b"bare CR\r inside\r\r\nand CR before CRLF\r\r\n",
    b"no final line break",
    b"ends in white space \t",
    b"".join(b"line %d of a longer body with  some   spacing \r\n" % i for i in range(300)),
]
HEADERS = (
    b"X-Folded: first  of\r\n\ttwo\r\n"
    b"Received: from mx.example.net by mail.example.org; Sun, 29 Nov 2026 01:00:00 +0000\r\n"
    b"From: Alice <alice@a.example>\r\nTo: bob@example.org\r\nSubject:  A   subject \r\n"
    b"Date: Sun, 29 Nov 2026 01:00:00 +0000\r\nMessage-ID: <1@a.example>\r\n"
    b"X-Folded: one\r\n  two\r\n\tthree\r\n"
)
# X-Folded occurs twice and is signed three times; X-Missing is signed but absent.
SIGNED = [b"from", b"to", b"subject", b"date", b"message-id", b"x-folded", b"x-folded", b"x-folded", b"x-missing"]


def _dkimpy_sign(message: bytes, selector: str, pem: bytes, **options: Any) -> bytes:
    field: bytes = dkim.sign(message, selector.encode(), b"a.example", pem, include_headers=SIGNED, **options)
    return field


def _tampered(signed: bytes) -> list[bytes]:
    """Changes a verifier must notice or must ignore, depending on c= and l=."""
    head, _, body = signed.partition(b"\r\n\r\n")
    return [
        signed,
        head + b"\r\n\r\n" + body.replace(b"line", b"lime", 1).replace(b"Hello", b"Jello"),
        head + b"\r\n\r\n" + body + b"appended after the signed length\r\n",
        head + b"\r\n\r\n" + body.replace(b" ", b"  "),
        head + b"\r\n\r\n" + body + b"\r\n\r\n",
        head.replace(b"Subject:  A   subject", b"Subject: A subject") + b"\r\n\r\n" + body,
        head.replace(b"Subject:", b"subject :", 1) + b"\r\n\r\n" + body,
        head.replace(b"Subject:  A", b"Subject:  B") + b"\r\n\r\n" + body,
        b"From: Mallory <m@evil.example>\r\n" + signed,
        head.replace(b"X-Folded: one\r\n  two", b"X-Folded: one two") + b"\r\n\r\n" + body,
        head.replace(b"X-Folded: first  of", b"X-Folded: first of") + b"\r\n\r\n" + body,
        head.replace(b"X-Folded: first  of", b"X-FOLDED:first  of ") + b"\r\n\r\n" + body,
        head + b"\r\nX-Missing: added\r\n\r\n" + body,
        head + b"\r\nX-Folded: a third\r\n\r\n" + body,
        head + b"\r\nX-Other: not signed\r\n\r\n" + body,
        signed.replace(b"Hello", b"Hello", 1)[:-3] if len(body) > 3 else signed,
    ]


def _check(resolver: Resolver, message: bytes) -> list[DKIMVerdict]:
    """Our verdicts for `message` as bytes and as a spooled source; equal to dkimpy's."""
    ours = verify_dkim_sync(resolver, message)
    expected = _reference(resolver, message)
    assert _results(ours) == _results(expected), (message[:2000], ours, expected)
    with tempfile.TemporaryFile() as f:
        head = min(len(message), 40)
        f.write(message[head:])
        f.flush()
        source = MessageSource.of_file(f, len(message) - head).with_head(message[:head])
        assert _results(verify_dkim_sync(resolver, source)) == _results(expected)
    return ours


def test_rsa_corpus_matches_dkimpy(dns: tuple[DNSServer, Resolver], keys: dict[str, tuple[bytes, str]]) -> None:
    server, resolver = dns
    for name, (_, txt) in keys.items():
        server.set(f"{name}._domainkey.a.example", "TXT", txt)
    seen: dict[str, int] = {}
    rnd = random.Random(7)
    canons = [(h, b) for h in (b"simple", b"relaxed") for b in (b"simple", b"relaxed")]
    for i, body in enumerate(BODIES):
        message = HEADERS + b"\r\n" + body
        name = ("rsa1024", "rsa2048", "rsa4096")[i % 3] if i < 3 else rnd.choice(["rsa1024", "rsa2048"])
        canonicalize = canons[i % 4]
        signed = _dkimpy_sign(message, name, keys[name][0], canonicalize=canonicalize, length=i % 3 == 1) + message
        for variant in _tampered(signed):
            for v in _check(resolver, variant):
                seen[v.result] = seen.get(v.result, 0) + 1
    assert seen.get("pass", 0) >= 10 and seen.get("fail", 0) >= 10, seen


def test_key_records_match_dkimpy(dns: tuple[DNSServer, Resolver], keys: dict[str, tuple[bytes, str]]) -> None:
    """Odd, wrong and revoked key records: the same verdict as dkimpy for each."""
    server, resolver = dns
    pem, txt = keys["rsa2048"]
    p = txt.partition("p=")[2]
    other_p = keys["rsa1024"][1].partition("p=")[2]
    spki = serialization.load_der_public_key(base64.b64decode(p))
    assert isinstance(spki, rsa.RSAPublicKey)
    numbers = spki.public_numbers()
    pkcs1 = spki.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    records = {
        "plain": f"p={p}",
        "testing": f"v=DKIM1; t=y; k=rsa; p={p}",
        "hsha256": f"v=DKIM1; h=sha256; p={p}",
        "hsha1": f"v=DKIM1; h=sha1; p={p}",
        "semail": f"v=DKIM1; s=email; p={p}",
        "stlsrpt": f"v=DKIM1; s=tlsrpt; p={p}",
        "sother": f"v=DKIM1; s=other; p={p}",
        "revoked": "v=DKIM1; k=rsa; p=",
        "wrongkey": f"v=DKIM1; p={other_p}",
        "ked25519": f"v=DKIM1; k=ed25519; p={p}",
        "kother": f"v=DKIM1; k=dsa; p={p}",
        "badversion": f"v=DKIM2; p={p}",
        "garbage": "v=DKIM1; p=bm90IGEga2V5",
        "notbase64": "v=DKIM1; p=%%%",
        "pkcs1": "v=DKIM1; p=" + base64.b64encode(pkcs1).decode(),
        "truncated": f"v=DKIM1; p={p[:-40]}",
        "notags": "hello",
        "twice": f"v=DKIM1; p={p}; p={other_p}",
        "modulusplusone": "v=DKIM1; p="
        + base64.b64encode(
            rsa.RSAPublicNumbers(numbers.e, numbers.n + 2)
            .public_key()
            .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        ).decode(),
    }
    message = HEADERS + b"\r\n" + BODIES[4]
    for selector, record in records.items():
        server.set(f"{selector}._domainkey.a.example", "TXT", record)
        signed = _dkimpy_sign(message, selector, pem, canonicalize=(b"relaxed", b"simple")) + message
        [verdict] = _check(resolver, signed)
        if selector in ("plain", "testing", "semail", "pkcs1"):
            assert verdict.result == "pass", (selector, verdict)
    # No record at all.
    signed = _dkimpy_sign(message, "absent", pem) + message
    assert _check(resolver, signed)[0].result == "permerror"
    # Keys below the 1024 bits we accept: valid signatures, refused (RFC 8301 §3.2).
    for bits, exponent in ((512, 65537), (768, 3)):
        small = _openssl_key(bits, exponent)
        small_pem = small.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        spki = small.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        server.set(f"small{bits}._domainkey.a.example", "TXT", "p=" + base64.b64encode(spki).decode())
        signed = _dkimpy_sign(message, f"small{bits}", small_pem) + message
        assert _check(resolver, signed)[0].result == "permerror"


def test_ed25519_corpus_matches_dkimpy(dns: tuple[DNSServer, Resolver], keys: dict[str, tuple[bytes, str]]) -> None:
    server, resolver = dns
    pem, txt = keys["ed25519"]
    server.set("ed25519._domainkey.a.example", "TXT", txt)
    results = set()
    for body in BODIES:
        message = HEADERS + b"\r\n" + body
        for variant in _tampered(sign(message, "a.example", "ed25519", pem) + message):
            results.update(v.result for v in _check(resolver, variant))
    assert {"pass", "fail"} <= results, results


def test_signature_fields_match_dkimpy(dns: tuple[DNSServer, Resolver], keys: dict[str, tuple[bytes, str]]) -> None:
    """Expired x=, t= in the future, sha1, odd c= and l= values, a changed b=, several
    signatures with different verdicts."""
    server, resolver = dns
    pem, txt = keys["rsa2048"]
    server.set("rsa2048._domainkey.a.example", "TXT", txt)
    server.set("ed25519._domainkey.a.example", "TXT", keys["ed25519"][1])
    message = HEADERS + b"\r\n" + BODIES[9]
    signed = _dkimpy_sign(message, "rsa2048", pem, canonicalize=(b"relaxed", b"relaxed"), length=True)
    past, future = int(time.time()) - 10 * 86400, int(time.time()) + 5 * 86400
    edits = [
        (b"c=relaxed/relaxed", b"c=relaxed/other"),
        (b"c=relaxed/relaxed", b"c=relaxed"),
        (b"c=relaxed/relaxed", b"c=simple/relaxed"),
        (b"c=relaxed/relaxed", b"c=a/b/c"),
        (b"c=relaxed/relaxed", b"C=relaxed/relaxed"),
        (b"c=relaxed/relaxed", b"c=relaxed/relaxed; c=simple/simple"),
        (b"; l=", b"; L="),
        (b"; l=", b"; l=5; x=1"),
        (b"; l=", b"; x=%d; l=" % past),
        (b"; l=", b"; x=%d; l=" % future),
        (b"; l=", b"; t=%d; l=" % future),
        (b"; l=", b"; l=0; q="),
        (b"; l=", b"; l=; q="),
        (b"; l=", b"; l=-3; q="),
        (b"a=rsa-sha256", b"a=rsa-sha1"),
        (b"a=rsa-sha256", b"a=rsa-sha512"),
        (b"a=rsa-sha256", b"a=ed25519-sha256"),
        (b"s=rsa2048", b"s=ed25519"),
        (b"b=", b"b=AAAA"),
        (b"bh=", b"bh=AAAA"),
        (b"v=1", b"v=2"),
        (b"d=a.example", b"d=a.example; i=@other.example"),
    ]
    for old, new in edits:
        assert old in signed, old
        _check(resolver, signed.replace(old, new, 1) + message)
    # Tag names are case-sensitive (RFC 6376 §3.2): "C=" is not c=, so the body is "simple",
    # also for a spooled message (its body hashed before dkimpy reads the tags).
    for name, expected in ((b"c", "pass"), (b"C", "fail")):
        field = _sign_with_c_tag(message, name + b"=simple/relaxed", pem)
        assert [v.result for v in _check(resolver, field + message)] == [expected]
    # Several signatures: a good one, a tampered one, an ed25519 one, one with no key.
    ed = sign(message, "a.example", "ed25519", keys["ed25519"][0])
    bad = _dkimpy_sign(message.replace(b"line 7 ", b"line 8 "), "rsa2048", pem)
    nokey = _dkimpy_sign(message, "absent", pem)
    verdicts = _check(resolver, nokey + bad + ed + signed + message)
    assert [v.result for v in verdicts] == ["permerror", "fail", "pass", "pass"]


def _sign_with_c_tag(message: bytes, c_tag: bytes, pem: bytes) -> bytes:
    """A DKIM-Signature field whose c= tag is `c_tag` as written: header "simple", body
    "relaxed" (dkimpy's signer writes the tag only one way)."""
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    headers, body = dkim.rfc822_parse(message)
    body_hash = base64.b64encode(hashlib.sha256(Relaxed.canonicalize_body(body)).digest())
    unsigned = b"v=1; a=rsa-sha256; %s; d=a.example; s=rsa2048; h=from : subject; bh=%s; b=" % (c_tag, body_hash)
    digest = hashlib.sha256()
    simple = dkim.CanonicalizationPolicy.from_c_value(b"simple/simple")
    dkim.hash_headers(digest, simple, headers, [b"from", b"subject"], (b"DKIM-Signature", b" " + unsigned), {})
    signature = key.sign(digest.digest(), padding.PKCS1v15(), asym_utils.Prehashed(hashes.SHA256()))
    return b"DKIM-Signature: " + unsigned + base64.b64encode(signature) + b"\r\n"


def test_rsa_sha1_signature_is_refused_while_dkimpy_passes_it(
    dns: tuple[DNSServer, Resolver], keys: dict[str, tuple[bytes, str]]
) -> None:
    """RFC 8301 §3.1: the one verdict that differs from dkimpy's, on purpose."""
    server, resolver = dns
    pem, txt = keys["rsa2048"]
    server.set("rsa2048._domainkey.a.example", "TXT", txt)
    message = HEADERS + b"\r\n" + BODIES[0]
    signed = _dkimpy_sign(message, "rsa2048", pem, signature_algorithm=b"rsa-sha1") + message
    assert dkim.verify(signed, logger=_LOG, dnsfunc=_txt_hook(resolver, []))
    [v] = verify_dkim_sync(resolver, signed)
    assert (v.result, v.reason) == ("permerror", "unsupported algorithm")


# rsa_verify against dkimpy's pure-Python RSA, signature by signature.


def _openssl_key(bits: int, exponent: int) -> rsa.RSAPrivateKey:
    """Keys cryptography will not generate (512 bits, e=3), from the openssl program."""
    openssl = require_program("openssl", "openssl")
    options = ["-pkeyopt", f"rsa_keygen_bits:{bits}", "-pkeyopt", f"rsa_keygen_pubexp:{exponent}"]
    pem = subprocess.run([openssl, "genpkey", "-algorithm", "RSA", *options], check=True, capture_output=True).stdout
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _signatures(key: rsa.RSAPrivateKey, digest: Any) -> list[bytes]:
    """The right signature and forms of it, and wrong ones."""
    n = key.public_key().public_numbers().n
    length = (n.bit_length() + 7) // 8
    algorithm = hashes.SHA256() if digest.name == "sha256" else hashes.SHA1()
    good = key.sign(digest.digest(), padding.PKCS1v15(), asym_utils.Prehashed(algorithm))
    value = int.from_bytes(good, "big")
    return [
        good,
        b"\0" + good,
        good.lstrip(b"\0"),
        (value + n).to_bytes(length + 1, "big"),
        (value + 5 * n).to_bytes(length + 2, "big"),
        (value ^ 1).to_bytes(length, "big"),
        n.to_bytes(length, "big"),
        b"",
        b"\0" * length,
        b"\1",
        os.urandom(length),
        os.urandom(length // 2),
        os.urandom(length * 2),
    ]


def _compare(digest: Any, signature: bytes, public: dict[str, int]) -> None:
    try:
        expected: object = RSASSA_PKCS1_v1_5_verify(digest, signature, public)
    except Exception as e:
        expected = type(e)
    try:
        got: object = rsa_verify(digest, signature, public)
    except Exception as e:
        got = type(e)
    assert got == expected, (signature.hex(), public)


@pytest.mark.parametrize("hash_name", ["sha256", "sha1"])
def test_rsa_verify_answers_like_dkimpy(hash_name: str) -> None:
    keys = [rsa.generate_private_key(65537, bits) for bits in (1024, 2048)] + [_openssl_key(512, 3)]
    for key in keys:
        numbers = key.public_key().public_numbers()
        public = {"modulus": numbers.n, "publicExponent": numbers.e}
        for text in (b"", b"a message", os.urandom(64)):
            digest = hashlib.new(hash_name, text)
            for signature in _signatures(key, digest):
                _compare(digest, signature, public)
            # Another key of the same size; the key's exponent or modulus changed.
            good = _signatures(key, digest)[0]
            for changed in (
                {"modulus": numbers.n, "publicExponent": 3},
                {"modulus": numbers.n, "publicExponent": 1},
                {"modulus": numbers.n, "publicExponent": 2},
                {"modulus": numbers.n, "publicExponent": numbers.n + 2},
                {"modulus": numbers.n + 1, "publicExponent": numbers.e},
                {"modulus": numbers.n + 2, "publicExponent": numbers.e},
                {"modulus": 1 << 20000 | 1, "publicExponent": numbers.e},
                {"modulus": 3233, "publicExponent": 17},
                {"modulus": numbers.n, "publicExponent": 1 << 70 | 1},
            ):
                _compare(digest, good, changed)


def test_rsa_verify_signature_with_leading_zero_octets() -> None:
    """About one signature in 256 starts with a zero octet; some signers drop it, and dkimpy
    still accepts the shorter form. So does rsa_verify."""
    key = rsa.generate_private_key(65537, 1024)
    numbers = key.public_key().public_numbers()
    public = {"modulus": numbers.n, "publicExponent": numbers.e}
    for i in range(5000):
        digest = hashlib.sha256(b"%d" % i)
        good = key.sign(digest.digest(), padding.PKCS1v15(), asym_utils.Prehashed(hashes.SHA256()))
        if good[0] == 0:
            break
    else:
        pytest.fail("no signature with a leading zero octet")
    assert RSASSA_PKCS1_v1_5_verify(digest, good[1:], public)
    assert rsa_verify(digest, good[1:], public)


def test_rsa_verify_digest_too_large() -> None:
    key = _openssl_key(512, 65537)
    numbers = key.public_key().public_numbers()
    public = {"modulus": numbers.n >> 100 | 1, "publicExponent": numbers.e}  # 412 bits: too short for SHA-256
    with pytest.raises(DigestTooLargeError):
        RSASSA_PKCS1_v1_5_verify(hashlib.sha256(b"x"), b"\1" * 52, public)
    with pytest.raises(DigestTooLargeError):
        rsa_verify(hashlib.sha256(b"x"), b"\1" * 52, public)


def _signature_headers_by_lines(message: bytes) -> list[bytes]:
    """The plain way: the whole header split into lines, continuation lines joined."""
    end = message.find(b"\r\n\r\n")
    if end < 0:
        end = message.find(b"\n\n")
    head = message[: len(message) if end < 0 else end]
    fields: list[bytes] = []
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b" " + line.strip()
        else:
            fields.append(line)
    return [f.split(b":", 1)[1] for f in fields if f.lower().startswith(b"dkim-signature:")]


def test_signature_fields_found_like_splitting_the_header_into_lines() -> None:
    pieces = [b"DKIM-Signature:", b"dkim-signature:", b"X: y", b" a=b; ", b"\tc", b"\r\n", b"\n", b"\r", b" ", b"v"]
    rnd = random.Random(3)
    for _ in range(20000):
        data = b"".join(rnd.choice(pieces) for _ in range(rnd.randrange(0, 14)))
        assert _signature_headers(data) == _signature_headers_by_lines(data), data
