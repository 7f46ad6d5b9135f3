"""The DKIM header hash (mailsrv/dns/dkimheader.py) is byte for byte dkimpy's, step by step,
on generated header fields, signature values and lists of signed names."""

from __future__ import annotations

import hashlib

import dkim
from dkim.canonicalization import CanonicalizationPolicy, Relaxed
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsrv.dns.dkimheader import hash_headers, relaxed_field, without_b_value

TEXT = st.lists(
    st.sampled_from([b"a", b"Zz", b" ", b"  ", b"\t", b"\r\n", b"\n", b"\r", b"\r\n ", b"\r\n\t", b";", b"=", b"\x0b"]),
    max_size=20,
).map(b"".join)
B_VALUE = st.lists(
    st.sampled_from(
        [b"b", b"=", b";", b" ", b"\t", b"\r\n", b"\n", b"\r", b"A", b"+/", b"h", b"b=", b"; b=", b"x", b"\f"]
    ),
    max_size=30,
).map(b"".join)
NAMES = st.sampled_from([b"From", b"from", b"FROM", b"To", b"Subject", b"X-A", b"x-a"])


@settings(max_examples=500, deadline=None)
@given(name=NAMES, value=TEXT)
def test_relaxed_field_is_dkimpys(name: bytes, value: bytes) -> None:
    assert [relaxed_field(name, value)] == Relaxed.canonicalize_headers([(name, value)])


@settings(max_examples=2000, deadline=None)
@given(value=B_VALUE)
def test_b_value_removal_is_dkimpys(value: bytes) -> None:
    assert without_b_value(value) == dkim.RE_BTAG.sub(rb"\1", value)


def test_b_value_removal_of_a_real_signature() -> None:
    field = (
        b" v=1; a=rsa-sha256; c=relaxed/relaxed; d=a.example; s=sel;\r\n h=from : to;"
        b" bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n b=dGhpcyBpcyBub3Qg\r\n\tYSBzaWduYXR1cmU=\r\n"
    )
    assert without_b_value(field) == dkim.RE_BTAG.sub(rb"\1", field)
    assert without_b_value(field).endswith(b" b=")


@settings(max_examples=500, deadline=None)
@given(
    fields=st.lists(st.tuples(NAMES, TEXT), max_size=8),
    include=st.lists(st.sampled_from([b"from", b"to", b"subject", b"x-a", b"x-missing"]), min_size=1, max_size=8),
    sig_value=B_VALUE,
    relaxed=st.booleans(),
)
def test_header_hash_is_dkimpys(
    fields: list[tuple[bytes, bytes]], include: list[bytes], sig_value: bytes, relaxed: bool
) -> None:
    headers = [[name, value] for name, value in fields]  # dkimpy's parser gives lists
    policy = CanonicalizationPolicy.from_c_value(b"relaxed/simple" if relaxed else b"simple/simple")
    expected = hashlib.sha256()
    expected_signed = dkim.hash_headers(
        expected, policy, policy.canonicalize_headers(headers), include, (b"DKIM-Signature", sig_value), {}
    )
    got = hashlib.sha256()
    signed = hash_headers(got, relaxed, headers, include, (b"DKIM-Signature", sig_value))
    assert got.digest() == expected.digest()
    assert [tuple(f) for f in signed] == [tuple(f) for f in expected_signed]
