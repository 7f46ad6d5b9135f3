"""RSASSA-PKCS1-v1_5 signature checks for DKIM (RFC 6376 §3.3.1, RFC 8017 §8.2.2) through OpenSSL.

dkimpy checks an RSA signature in pure Python (`dkim.crypto.RSASSA_PKCS1_v1_5_verify`: big
integer `pow` and byte-by-byte conversions, ~0.3 ms of CPU for a 2048-bit key, all of it
holding the GIL). `rsa_verify` has the same contract and gives the same answer for every
input, through `cryptography` (OpenSSL): ~25 us. cryptography (50.x) keeps the GIL during the
check too, so the gain is the shorter time, not a released lock:

- dkimpy turns the signature into an integer whatever its length, and `pow` reduces it modulo
  n; OpenSSL wants exactly as many octets as the modulus and a value below it. The signature
  is brought to that form first (a value changed this way verifies the same in both).
- The expected encoding (00 01 FF.. 00 DigestInfo) is compared whole by both; dkimpy raises
  `DigestTooLargeError` when it does not fit the modulus, and so does this.
- A key OpenSSL refuses or cannot use (even modulus, exponent below 3, beyond its size
  limits) is checked by dkimpy's own code, so such a key gets dkimpy's verdict too.
"""

from __future__ import annotations

import functools
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils
from dkim.crypto import DigestTooLargeError, RSASSA_PKCS1_v1_5_verify

# DER DigestInfo lengths (RFC 8017 §9.2 note 1): the encoding needs 11 more octets.
_DIGEST_INFO_LENGTH = {"sha1": 35, "sha256": 51}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}
# OpenSSL refuses larger moduli, and exponents over 64 bits with moduli over 3072 bits.
_MAX_MODULUS_BITS = 16384
_MAX_EXPONENT_BITS = 64


class Digest(Protocol):
    """A hashlib hash object (what dkimpy hands to its verify function)."""

    @property
    def name(self) -> str: ...

    def digest(self) -> bytes: ...


@functools.lru_cache(maxsize=512)
def _public_key(modulus: int, exponent: int) -> rsa.RSAPublicKey | None:
    """The OpenSSL key, or None when OpenSSL would not check with it. Cached: mail comes
    signed with the same few keys, and building one checks it."""
    if modulus.bit_length() > _MAX_MODULUS_BITS or exponent.bit_length() > _MAX_EXPONENT_BITS:
        return None
    try:
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except ValueError:
        return None


def rsa_verify(digest: Digest, signature: bytes, public_key: dict[str, int]) -> bool:
    """Whether `signature` is the RSASSA-PKCS1-v1_5 signature of `digest` under
    `public_key` (dkimpy's parsed key: "modulus", "publicExponent"). Raises
    DigestTooLargeError like dkimpy when the modulus is too short for the encoding."""
    modulus, exponent = public_key["modulus"], public_key["publicExponent"]
    name = digest.name.lower()
    key = _public_key(modulus, exponent) if isinstance(modulus, int) and isinstance(exponent, int) else None
    if key is None or name not in _HASHES:
        return bool(RSASSA_PKCS1_v1_5_verify(digest, signature, public_key))
    length = (modulus.bit_length() + 7) // 8
    if _DIGEST_INFO_LENGTH[name] + 11 > length:
        raise DigestTooLargeError()
    if len(signature) != length or signature >= modulus.to_bytes(length, "big"):
        # dkimpy's reading of it: the integer the octets spell, modulo n.
        signature = (int.from_bytes(signature, "big") % modulus).to_bytes(length, "big")
    try:
        key.verify(signature, digest.digest(), padding.PKCS1v15(), asym_utils.Prehashed(_HASHES[name]()))
    except InvalidSignature:
        return False
    return True
