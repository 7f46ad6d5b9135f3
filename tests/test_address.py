"""Addresses: NFC localparts, IDNA domains, RFC 5321 paths, and what is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsrv.address import Address, AddressError, Domain, Localpart, parse_path


def test_nfc_and_nfd_are_the_same_address() -> None:
    nfc = Address.parse("\u00e9t\u00e9@example.org")
    nfd = Address.parse("e\u0301te\u0301@example.org")
    assert nfc == nfd and nfc.key() == nfd.key()
    assert nfd.localpart.value == "\u00e9t\u00e9"


def test_idna_domains_compare_by_a_label() -> None:
    u = Domain.parse("B\u00fccher.Example")
    a = Domain.parse("xn--bcher-kva.example.")
    assert u == a and hash(u) == hash(a)
    assert (u.ascii, u.unicode) == ("xn--bcher-kva.example", "b\u00fccher.example")
    addr = Address.parse("info@b\u00fccher.example")
    assert str(addr) == "info@xn--bcher-kva.example" and addr.display() == "info@b\u00fccher.example"


def test_case_folded_key_but_exact_localpart() -> None:
    a = Address.parse("Alice@Example.ORG")
    assert a.localpart.value == "Alice"
    assert a.key() == Address.parse("alice@example.org").key()


def test_quoted_localparts() -> None:
    a = Address.parse('"john doe"@example.org')
    assert a.localpart.value == "john doe" and str(a) == '"john doe"@example.org'
    assert Address.parse('"a\\"b"@example.org').localpart.value == 'a"b'


@pytest.mark.parametrize(
    ("path", "utf8", "expected"),
    [
        ("<>", False, None),
        ("<user@example.org>", False, "user@example.org"),
        ("<@relay.example,@other.example:user@example.org>", False, "user@example.org"),
        ("<\u00fcser@example.org>", True, "\u00fcser@example.org"),
    ],
)
def test_paths(path: str, utf8: bool, expected: str | None) -> None:
    result = parse_path(path, utf8)
    assert (str(result) if result else None) == expected


@pytest.mark.parametrize(
    ("path", "utf8", "reason"),
    [
        ("user@example.org", False, "enclosed in <>"),
        ("<\u00fcser@example.org>", False, "requires SMTPUTF8"),
        ("<user@b\u00fccher.example>", False, "requires SMTPUTF8"),
        ("<a..b@example.org>", False, "empty dot-atom"),
        ("<.a@example.org>", False, "empty dot-atom"),
        ("<a b@example.org>", False, "invalid character"),
        ("<user@[192.0.2.1]>", False, "address literals"),
        ("<user@>", False, "not an address"),
        ("<@example.org>", False, "source route"),
        ("<" + "a" * 65 + "@example.org>", False, "longer than 64"),
        ('<"unterminated@example.org>', False, "quoted"),
        ("<user@exa mple.org>", False, "invalid domain"),
    ],
)
def test_invalid_paths_have_reasons(path: str, utf8: bool, reason: str) -> None:
    with pytest.raises(AddressError, match=reason):
        parse_path(path, utf8)


def test_catchall_separator() -> None:
    a = Address.parse("user+tag@example.org")
    assert str(a.strip_catchall("+")) == "user@example.org"
    assert a.strip_catchall(None) == a
    assert Address.parse("+tag@example.org").strip_catchall("+").localpart.value == "+tag"


@given(st.text(max_size=80))
def test_parsers_raise_only_address_errors(text: str) -> None:
    for fn in (
        lambda: Address.parse(text),
        lambda: parse_path(text, True),
        lambda: parse_path(text, False),
        lambda: Domain.parse(text),
        lambda: Localpart.parse(text),
    ):
        try:
            fn()
        except AddressError:
            pass


@given(
    st.from_regex(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\.[a-z0-9-]{1,10}){0,2}", fullmatch=True),
    st.from_regex(r"[a-z][a-z0-9]{0,10}(\.[a-z][a-z0-9]{1,10}){1,2}", fullmatch=True),
)
def test_round_trip(localpart: str, domain: str) -> None:
    a = Address.parse(f"{localpart}@{domain}")
    assert Address.parse(str(a)) == a
