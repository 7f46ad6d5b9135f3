"""DKIM (RFC 6376) verification and signing through dkimpy, key lookups through our resolver.

Invariants:
- Verification and signing are CPU work (RSA, hashing the body): `verify_dkim_sync` and
  `sign` block and belong in a pool thread; `verify_dkim` is the reactor-side wrapper.
- Verdicts are dkimpy's (tests/dns/test_dkimverify.py compares them on a corpus), but the two
  costly steps are ours: the body hash (mailsrv/dns/dkimbody.py, C-level passes instead of
  dkimpy's copies of the body), the header hash (mailsrv/dns/dkimheader.py, only the signed
  fields) and the RSA check (mailsrv/dns/dkimrsa.py, OpenSSL instead of Python integers).
  Together ~1 ms -> ~0.2 ms of CPU for a 10 KB message with one rsa-sha256 2048-bit
  signature, all of it still holding the GIL (cryptography does not release it).
- Every DKIM-Signature of a message is checked (at most `MAX_SIGNATURES`, so a message with
  thousands of signatures cannot cost thousands of DNS lookups); each gets its own verdict.
- Algorithms: rsa-sha256 (RSA keys of 1024 bits or more) and ed25519-sha256 (RFC 8463).
  rsa-sha1 is refused as RFC 8301 §3.1 requires.
- Private keys are PKCS#8 PEM for both kinds (what `generate_dkim_key` returns and what we
  store); dkimpy wants the raw 32-byte seed for ed25519, converted here.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import dkim
import nacl.exceptions
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils
from dkim.canonicalization import CanonicalizationPolicy, InvalidCanonicalizationPolicyError
from dkim.crypto import HASH_ALGORITHMS, DigestTooLargeError
from dkim.util import InvalidTagValueList, parse_tag_value

from mailsrv.dns.dkimbody import BodyHasher
from mailsrv.dns.dkimheader import hash_headers
from mailsrv.dns.dkimrsa import rsa_verify
from mailsrv.dns.resolver import DNSNotFound, DNSTemporaryError, Resolver
from mailsrv.message.parse import header_end
from mailsrv.message.source import MessageSource

DKIMResult = Literal["pass", "fail", "neutral", "temperror", "permerror", "policy"]
KeyKind = Literal["ed25519", "rsa"]

MAX_SIGNATURES = 5

# dkimpy logs every failed signature at ERROR; our verdicts carry the reason instead.
_DKIMPY_LOG = logging.getLogger("mailsrv.dns.dkimpy")
_DKIMPY_LOG.setLevel(logging.CRITICAL)
RSA_KEY_BITS = 2048

# Headers signed when present (RFC 6376 §5.4.1 recommendations); From is signed once more
# than it occurs ("over-signed") so nobody can add a second From below the signature.
SIGNED_HEADERS = (
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Reply-To",
)


@dataclass(frozen=True)
class DKIMVerdict:
    result: DKIMResult
    domain: str  # d= (lowercase), "" when unparsable
    selector: str
    algorithm: str
    reason: str = ""


def _txt_hook(resolver: Resolver, missing: list[str]) -> Callable[..., bytes | None]:
    """dkimpy's `dnsfunc(name, timeout=...)`: the first TXT record as bytes, or None (and
    the name appended to `missing`, since dkimpy reports a missing key as a plain failure)."""

    def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        try:
            records = resolver.txt_sync(text)
        except DNSNotFound:
            missing.append(text)
            return None
        except DNSTemporaryError as e:
            missing.append("temporary")  # dkimpy turns the exception into a plain failure
            raise dkim.DnsTimeoutError(str(e)) from None
        if not records:
            missing.append(text)
            return None
        return records[0]

    return dnsfunc


_TAG = re.compile(rb"(?:^|;)\s*([a-z]+)\s*=\s*([^;]*)", re.I)


def _tags(header_value: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in _TAG.finditer(header_value):
        # bytes.split() splits at the octets regex \s matches: all white space goes.
        out.setdefault(
            m.group(1).decode("ascii", "replace").lower(), b"".join(m.group(2).split()).decode("ascii", "replace")
        )
    return out


def _header_length(message: bytes) -> int:
    """Where the header block ends, as dkimpy sees it (before the first empty line)."""
    end = message.find(b"\r\n\r\n")
    if end < 0:
        end = message.find(b"\n\n")
    return len(message) if end < 0 else end


def has_signature(message: bytes) -> bool:
    """Whether `verify_dkim_sync` would find a signature to check in `message` (or its header
    block): a line starting with the field name, as `_signature_headers` looks for. Without
    one it returns no verdicts, so its work can be skipped."""
    head = message[: _header_length(message)].lower()
    return head.startswith(b"dkim-signature:") or b"\ndkim-signature:" in head


def _signature_headers(message: bytes) -> list[bytes]:
    """The values of the DKIM-Signature header fields (unfolded: each continuation line
    stripped and joined with a space), top first. Lines end at LF, a CR before it included.
    Only the fields found are split into lines, not the whole header."""
    head = message[: _header_length(message)]
    lower = head.lower()
    out: list[bytes] = []
    start = 0 if lower.startswith(_FIELD) else _line_after(lower.find(b"\n" + _FIELD))
    while start >= 0:
        end = head.find(b"\n", start)  # of the field's first line
        field = head[start:] if end < 0 else head[start : end - 1 if head[end - 1 : end] == b"\r" else end]
        while end >= 0 and head[end + 1 : end + 2] in (b" ", b"\t"):
            following = head.find(b"\n", end + 1)
            field += b" " + (head[end + 1 :] if following < 0 else head[end + 1 : following]).strip()
            end = following
        out.append(field[len(_FIELD) :])
        start = -1 if end < 0 else _line_after(lower.find(b"\n" + _FIELD, end))
    return out


_FIELD = b"dkim-signature:"


def _line_after(newline: int) -> int:
    return newline + 1 if newline >= 0 else -1


# dkimpy's reading of a key record: (key, size in bits, k=, whether s= is tlsrpt).
_KeyRecord = tuple[Any, int | None, bytes | None, bool]


class _HeaderOnlyDKIM(dkim.DKIM):  # type: ignore[misc]
    """dkimpy given the header block only. The body hash is ours (mailsrv/dns/dkimbody.py):
    over the body bytes held in `body_bytes`, or computed before while the body streamed from
    its file (`body_hash`). RSA signatures are checked through OpenSSL (mailsrv/dns/dkimrsa.py),
    ed25519 ones with dkimpy's key object (libsodium). dkimpy does the rest: parsing the
    signature and the key record, the key policies.

    `verify_sig_process` takes dkimpy's place (dkimpy 1.1's DomainSigner.verify_sig_process)
    with the same steps in the same order and the same exceptions, so that every verdict is
    the one dkimpy gives (tests/dns/test_dkimverify.py compares them)."""

    body_bytes: bytes | None = None
    body_hash: bytes | None = None  # None with no `body_bytes`: c= or l= was unreadable

    def verify_sig(
        self, sig: dict[bytes, bytes], include_headers: list[bytes], sig_header: tuple[bytes, bytes], dnsfunc: Any
    ) -> bool:
        """dkimpy's, with the key record's reading cached (`_key_record`)."""
        name = sig[b"s"] + b"._domainkey." + sig[b"d"] + b"."
        try:
            record = dnsfunc(name, timeout=self.timeout)
            key: _KeyRecord = _key_record(name, record) if isinstance(record, bytes) else dkim.evaluate_pk(name, record)
            self.pk, self.keysize, self.ktag, self.seqtlsrpt = key
        except (dkim.KeyFormatError, binascii.Error, dkim.DnsTimeoutError):
            return False  # what dkimpy answers for these (the caller tells them apart)
        return self.verify_sig_process(sig, include_headers, sig_header, dnsfunc)

    def verify_sig_process(
        self, sig: dict[bytes, bytes], include_headers: list[bytes], sig_header: tuple[bytes, bytes], dnsfunc: Any
    ) -> bool:
        # dkimpy's checks of the key record's s= (RFC 8460 §3: tlsrpt keys are not for mail).
        if self.tlsrpt == "strict" and not self.seqtlsrpt:
            raise dkim.ValidationError("Message is tlsrpt and Service Type is not tlsrpt")
        if not self.tlsrpt and self.seqtlsrpt:
            raise dkim.ValidationError("Message is not tlsrpt and Service Type is tlsrpt")
        try:
            policy = CanonicalizationPolicy.from_c_value(sig.get(b"c", b"simple/simple"))
        except InvalidCanonicalizationPolicyError as e:
            raise dkim.MessageFormatError(f"invalid c= value: {e.args[0]}") from None
        new_hash = HASH_ALGORITHMS[sig[b"a"]]
        if b"bh" in sig:
            body_hash = self._body_hash(sig, policy, new_hash().name)
            try:
                expected = base64.b64decode(re.sub(rb"\s+", b"", sig[b"bh"]))
            except (TypeError, ValueError) as e:
                raise dkim.MessageFormatError(str(e)) from None
            if body_hash != expected:
                raise dkim.ValidationError("body hash mismatch")
        if self.ktag not in (b"rsa", b"ed25519"):
            # A key type dkimpy may add: its own check (and error), body hash done above.
            without_bh = {k: v for k, v in sig.items() if k != b"bh"}
            return bool(super().verify_sig_process(without_bh, include_headers, sig_header, dnsfunc))
        # RFC 6376 §5.4.2 and dkimpy: an additional From field is covered as well.
        if b"from" in include_headers:
            include_headers.append(b"from")
        digest = new_hash()
        relaxed = policy.header_algorithm.name == b"relaxed"
        self.signed_headers = hash_headers(digest, relaxed, self.headers, include_headers, sig_header)
        signature = base64.b64decode(re.sub(rb"\s+", b"", sig[b"b"]))
        if self.ktag == b"ed25519":
            # RFC 8463 §3: the signature is over the SHA-256 digest of the header hash input.
            try:
                self.pk.verify(digest.digest(), signature)
            except nacl.exceptions.BadSignatureError:
                return False
            return True
        try:
            valid = rsa_verify(digest, signature, self.pk)
        except (TypeError, DigestTooLargeError) as e:
            raise dkim.KeyFormatError(f"digest too large for modulus: {e}") from None
        if valid and self.keysize < self.minkey:
            raise dkim.KeyFormatError(f"public key too small: {self.keysize}")
        return valid

    def _body_hash(self, sig: dict[bytes, bytes], policy: CanonicalizationPolicy, algorithm: str) -> bytes:
        if self.body_bytes is None:
            if self.body_hash is None:
                raise dkim.MessageFormatError("invalid c= or l= value")
            return self.body_hash
        relaxed = policy.body_algorithm.name == b"relaxed"
        hasher = BodyHasher(relaxed, algorithm, int(sig[b"l"]) if b"l" in sig else None)
        hasher.update(self.body_bytes)
        return hasher.digest()


@functools.lru_cache(maxsize=256)
def _key_record(name: bytes, record: bytes) -> _KeyRecord:
    """dkimpy's reading of a key record (RSA keys in ASN.1 parsed by Python code, ~50 us):
    a few keys sign most mail. A record dkimpy refuses raises, and is not cached."""
    return cast(_KeyRecord, dkim.evaluate_pk(name, record))


def _body_hashers(signatures: list[bytes]) -> list[BodyHasher | None]:
    """A body hasher for each signature (its c=, l= read as dkimpy reads them), None for one
    whose tags dkimpy will refuse (it reports that once it has the key)."""
    out: list[BodyHasher | None] = []
    for value in signatures:
        try:
            tags = parse_tag_value(value)
            policy = CanonicalizationPolicy.from_c_value(tags.get(b"c", b"simple/simple"))
        except (InvalidTagValueList, InvalidCanonicalizationPolicyError):
            out.append(None)
            continue
        length = tags.get(b"l")
        if length is not None and not length.isdigit():
            out.append(None)
            continue
        relaxed = policy.body_algorithm.name == b"relaxed"
        out.append(BodyHasher(relaxed, "sha256", int(length) if length is not None else None))
    return out


def verify_dkim_sync(resolver: Resolver, message: bytes | MessageSource) -> list[DKIMVerdict]:
    """One verdict per DKIM-Signature (none: empty list). Blocks; call from a thread. A
    `MessageSource` is read in chunks: its body is hashed as it streams, never held whole."""
    verdicts: list[DKIMVerdict] = []
    missing: list[str] = []
    hook = _txt_hook(resolver, missing)
    if isinstance(message, MessageSource):
        header = message.header_block()
    else:
        # Where dkimpy's parser (`dkim.rfc822_parse`) ends the header: at the first empty line.
        split = header_end(message, 0, len(message))
        header, body = message[:split], message[split:]
    values = _signature_headers(header)[:MAX_SIGNATURES]
    hashers: list[BodyHasher | None] = []
    if isinstance(message, MessageSource) and values:
        hashers = _body_hashers(values)
        if any(hashers):
            for chunk in message.chunks(len(header)):
                for hasher in hashers:
                    if hasher is not None:
                        hasher.update(chunk)
    for idx, value in enumerate(values):
        tags = _tags(value)
        domain, selector, algorithm = tags.get("d", "").lower(), tags.get("s", ""), tags.get("a", "").lower()
        if algorithm not in ("rsa-sha256", "ed25519-sha256"):
            # RFC 8301 §3.1: rsa-sha1 signatures are treated as failed to verify.
            verdicts.append(DKIMVerdict("permerror", domain, selector, algorithm, "unsupported algorithm"))
            continue
        missing.clear()
        try:
            d = _HeaderOnlyDKIM(header, logger=_DKIMPY_LOG, minkey=1024, timeout=5)
            if isinstance(message, MessageSource):
                hasher = hashers[idx]
                d.body_hash = hasher.digest() if hasher is not None else None
            else:
                d.body_bytes = body
            ok = d.verify(idx=idx, dnsfunc=hook)
        except dkim.DnsTimeoutError as e:
            verdicts.append(DKIMVerdict("temperror", domain, selector, algorithm, str(e)))
            continue
        except dkim.DKIMException as e:
            # dkimpy raises for a body hash mismatch: that is a signature that fails
            # (RFC 6376 §6.1.3), not a malformed one.
            result: DKIMResult = "fail" if str(e).startswith("body hash mismatch") else "permerror"
            verdicts.append(DKIMVerdict(result, domain, selector, algorithm, str(e)))
            continue
        except Exception as e:  # dkimpy on hostile input: a recorded result, never a crash
            verdicts.append(DKIMVerdict("permerror", domain, selector, algorithm, f"{type(e).__name__}: {e}"))
            continue
        if not ok and "temporary" in missing:
            verdicts.append(DKIMVerdict("temperror", domain, selector, algorithm, "key lookup failed temporarily"))
        elif not ok and missing:
            # RFC 6376 §6.1.2: no key record is PERMFAIL (key unavailable).
            verdicts.append(DKIMVerdict("permerror", domain, selector, algorithm, "no key record"))
        elif ok:
            verdicts.append(DKIMVerdict("pass", domain, selector, algorithm))
        else:
            verdicts.append(DKIMVerdict("fail", domain, selector, algorithm, "signature did not verify"))
    return verdicts


async def verify_dkim(resolver: Resolver, message: bytes | MessageSource) -> list[DKIMVerdict]:
    return await resolver.in_thread(verify_dkim_sync, resolver, message)


def generate_dkim_key(kind: KeyKind) -> tuple[bytes, str]:
    """A new key pair: (PKCS#8 private key PEM, the TXT record value to publish at
    `<selector>._domainkey.<domain>`)."""
    if kind == "ed25519":
        key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey = ed25519.Ed25519PrivateKey.generate()
        # RFC 8463 §4.2: p= is the raw 32-byte public key.
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    elif kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        raise ValueError(f"unknown DKIM key kind {kind!r}")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem, f"v=DKIM1; k={kind}; p={base64.b64encode(public).decode()}"


_SigningKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


@functools.lru_cache(maxsize=256)
def _signing_key(private_pem: bytes) -> tuple[_SigningKey, bytes]:
    """(key, algorithm) for a PEM private key. Cached: loading an RSA key checks it (tens of
    ms of CPU), and every submitted message is signed with the same few keys."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key, b"ed25519-sha256"
    if isinstance(key, rsa.RSAPrivateKey):
        return key, b"rsa-sha256"
    raise ValueError("DKIM keys are ed25519 or RSA")


_RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")


def sign(message: bytes, domain: str, selector: str, private_pem: bytes, now: float | None = None) -> bytes:
    """The complete `DKIM-Signature: ...\\r\\n` header field to prepend to `message`
    (relaxed/relaxed canonicalisation). Raises ValueError for a bad key or message.

    The message is parsed, canonicalised and its header fields chosen (RFC 6376 §3.4, §3.7,
    §5.4.2) with dkimpy's code; the signature itself comes from `cryptography` (OpenSSL):
    dkimpy's own RSA is pure Python and cost ~7 ms of CPU per 2048-bit signature, holding the
    GIL, against ~1 ms here. ed25519-sha256 signs the SHA-256 digest (RFC 8463 §3)."""
    key, algorithm = _signing_key(private_pem)
    try:
        headers, body = dkim.rfc822_parse(message)
    except dkim.DKIMException as e:
        raise ValueError(f"DKIM signing failed: {e}") from None
    present = {name.lower() for name, _ in headers}
    include = [h.lower().encode() for h in SIGNED_HEADERS if h.lower().encode() in present]
    if b"from" not in include:
        raise ValueError("a message without From cannot be DKIM-signed (RFC 6376 §5.4)")
    include.append(b"from")  # over-signing
    body_hash = base64.b64encode(hashlib.sha256(_RELAXED.canonicalize_body(body)).digest())
    tags = [
        (b"v", b"1"),
        (b"a", algorithm),
        (b"c", b"relaxed/relaxed"),
        (b"d", domain.encode()),
        (b"i", b"@" + domain.encode()),
        (b"q", b"dns/txt"),
        (b"s", selector.encode()),
        (b"t", str(int(time.time() if now is None else now)).encode()),
        (b"h", b" : ".join(include)),
        (b"bh", body_hash),
        (b"b", b""),
    ]
    # The field as it will be sent, b= still empty: what the signature covers (§3.5, §3.7).
    unsigned = dkim.fold(b"; ".join(b"=".join(t) for t in tags), namelen=len(b"DKIM-Signature"), linesep=b"\r\n")
    digest = hashlib.sha256()
    signed_headers = _RELAXED.canonicalize_headers(headers)
    dkim.hash_headers(digest, _RELAXED, signed_headers, include, (b"DKIM-Signature", b" " + unsigned), {})
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(digest.digest(), padding.PKCS1v15(), asym_utils.Prehashed(hashes.SHA256()))
    else:
        signature = key.sign(digest.digest())
    encoded = base64.b64encode(signature)
    # b= on lines of its own (folding white space inside b= is ignored when verifying, §3.5).
    folded = b"\r\n\t".join(encoded[i : i + 70] for i in range(0, len(encoded), 70))
    field: bytes = b"DKIM-Signature: " + unsigned + b"\r\n\t" + folded + b"\r\n"
    return field
