"""Derived secrets: RFC 2195 CRAM-MD5 example, resumable MD5, RFC 5802/7677 SCRAM keys."""

from __future__ import annotations

import base64
import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from mailsrv.auth.md5state import md5_resume, md5_state_after_block
from mailsrv.auth.passwords import (
    PasswordHasher,
    cram_md5_digest,
    cram_md5_states,
    derive_scram_secret,
    prepare_password,
)
from mailsrv.auth.saslprep import SASLprepError, saslprep


def test_rfc2195_example() -> None:
    # RFC 2195 §2: user "tim", password "tanstaaftanstaaf".
    challenge = b"<1896.697170952@postoffice.reston.mci.net>"
    digest = cram_md5_digest(cram_md5_states("tanstaaftanstaaf"), challenge)
    assert digest.hex() == "b913a602c7eda7a495b4e6e7334d3890"
    response = b"tim " + digest.hex().encode()
    assert base64.b64encode(response) == b"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"


@given(st.binary(min_size=64, max_size=64), st.binary(max_size=300))
def test_md5_resume_matches_hashlib(block: bytes, rest: bytes) -> None:
    assert md5_resume(md5_state_after_block(block), 64, rest) == hashlib.md5(block + rest).digest()


@given(st.text(max_size=100).filter(lambda p: p == prepare_password(p)), st.binary(max_size=200))
def test_cram_md5_equals_hmac(password: str, challenge: bytes) -> None:
    expected = hmac.digest(password.encode(), challenge, "md5")
    assert cram_md5_digest(cram_md5_states(password), challenge) == expected


def test_scram_rfc5802_vector() -> None:
    # RFC 5802 §5: user "user", password "pencil", salt QSXCR+Q6sek8bf92, i=4096.
    s = derive_scram_secret("pencil", "sha1", base64.b64decode("QSXCR+Q6sek8bf92"), 4096)
    salted = hashlib.pbkdf2_hmac("sha1", b"pencil", s.salt, 4096)
    assert s.server_key == hmac.digest(salted, b"Server Key", "sha1")
    auth = (
        b"n=user,r=fyko+d2lbbFgONRv9qkxdawL,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
        b"s=QSXCR+Q6sek8bf92,i=4096,c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j"
    )
    assert base64.b64encode(hmac.digest(s.server_key, auth, "sha1")) == b"rmF9pqV8S7suAoZWja4dJRkFsKQ="


def test_scram_rfc7677_vector() -> None:
    s = derive_scram_secret("pencil", "sha256", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096)
    auth = (
        b"n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    )
    assert base64.b64encode(hmac.digest(s.server_key, auth, "sha256")) == (
        b"6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    )


def test_saslprep_rfc4013_examples() -> None:
    assert saslprep("I\u00adX") == "IX"
    assert saslprep("user") == "user"
    assert saslprep("USER") == "USER"
    assert saslprep("\u00aa") == "a"
    assert saslprep("\u2168") == "IX"
    for bad in ["\u0007", "\u0627\u0031"]:
        try:
            saslprep(bad)
        except SASLprepError:
            continue
        raise AssertionError(bad)


def test_argon2_hash() -> None:
    hasher = PasswordHasher.for_tests()
    h = hasher.hash("s3cret")
    assert h.startswith("$argon2id$")
    assert hasher.verify("s3cret", h)
    assert not hasher.verify("s3cret!", h)
    assert not hasher.verify("s3cret", "garbage")
