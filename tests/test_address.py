"""Addresses: NFC localparts, IDNA domains, RFC 5321 paths, and what is refused."""

from __future__ import annotations

import unicodedata

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


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty domain"),
        (".", "empty domain"),
        ("a..example", "empty label"),
        ("example..", "empty label"),
        (".example", "empty label"),
        (" example.org", "invalid domain"),
        ("example.org ", "invalid domain"),
        ("192.0.2.1", "all-numeric"),
        ("example.123", "all-numeric"),
        ("-bad.example", "hyphen"),
        ("a" * 64 + ".example", "too long"),
        (("a" * 60 + ".") * 5 + "example", "longer than 253"),
        ("xn--zz.example", "invalid domain"),
    ],
)
def test_invalid_domains_have_reasons(text: str, reason: str) -> None:
    with pytest.raises(AddressError, match=reason):
        Domain.parse(text)


def test_domain_trailing_dot_and_mapping() -> None:
    assert Domain.parse("Example.ORG.") == Domain.parse("example.org")
    # UTS #46 maps full-width forms and the ideographic full stop.
    assert Domain.parse("\uff45xample\u3002org").ascii == "example.org"


def test_smtputf8_off_refuses_non_ascii_but_on_accepts() -> None:
    for text in ("\u00fcser@example.org", '"\u00fc ser"@example.org', "user@b\u00fccher.example"):
        with pytest.raises(AddressError, match="requires SMTPUTF8"):
            Address.parse(text, utf8=False)
        assert not Address.parse(text, utf8=True).is_ascii()
    # An A-label domain is plain ASCII: no SMTPUTF8 needed.
    assert Address.parse("user@xn--bcher-kva.example", utf8=False).display() == "user@b\u00fccher.example"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('"a\ud800"@example.org', "invalid character"),  # lone surrogate: not encodable
        ('"a\x85"@example.org', "invalid character"),  # C1 control
        ('"a\x00"@example.org', "control character"),
        ('"a"b"@example.org', "unescaped quote"),
        ('"a\\"@example.org', "dangling backslash"),
        ("a\u00a0b@example.org", "invalid character"),  # NBSP only inside quotes
        ("a\u200bb@example.org", "invalid character"),  # zero-width space
        ("@example.org", "not an address"),
        ("user@", "not an address"),
        ("user", "not an address"),
        ('"' + "a" * 65 + '"@example.org', "longer than 64"),
    ],
)
def test_invalid_localparts_have_reasons(text: str, reason: str) -> None:
    with pytest.raises(AddressError, match=reason):
        Address.parse(text)


def test_quoted_localparts_that_need_no_quotes_lose_them() -> None:
    a = Address.parse('"john"@example.org')
    assert str(a) == "john@example.org" and a == Address.parse("john@example.org")
    nbsp = Address.parse('"a\u00a0b"@example.org')
    assert str(nbsp) == '"a\u00a0b"@example.org'
    assert Address.parse('""@example.org').localpart.value == ""
    assert str(Address.parse('"a@b"@example.org')) == '"a@b"@example.org'


def test_source_route_hops_are_checked() -> None:
    assert str(parse_path("<@a.example:u@example.org>", False)) == "u@example.org"
    with pytest.raises(AddressError, match="malformed source route"):
        parse_path("<@a.example,b.example:u@example.org>", False)
    with pytest.raises(AddressError, match="invalid domain"):
        parse_path("<@a b:u@example.org>", False)


# Characters that exercise every branch of the parsers: quoting, escapes, dots, @, brackets,
# NFD sequences, spaces, controls, surrogates, IDNA-mapped forms.
_TRICKY = st.sampled_from(list('aZ9."\\@<>[]:,+- \t\x00\x85\u00e9\u0301\u00a0\u200b\ud800\u00dfK\uff41\u3002xn'))
_ANY_TEXT = st.one_of(st.text(max_size=60), st.text(alphabet=_TRICKY, max_size=40))


@given(_ANY_TEXT, st.booleans())
def test_anything_that_parses_round_trips(text: str, utf8: bool) -> None:
    try:
        a = Address.parse(text, utf8=utf8)
    except AddressError:
        pass
    else:
        assert Address.parse(str(a), utf8=utf8) == a
        assert Address.parse(a.display(), utf8=True) == a
        assert a.localpart.value == unicodedata.normalize("NFC", a.localpart.value)
    try:
        d = Domain.parse(text)
    except AddressError:
        pass
    else:
        assert Domain.parse(d.ascii) == d and Domain.parse(d.unicode) == d and d.ascii.isascii()
    try:
        p = parse_path(text, utf8)
    except AddressError:
        pass
    else:
        assert p is None or Address.parse(str(p), utf8=utf8) == p


def test_address_length_limit() -> None:
    domain = ".".join(["a" * 60] * 3) + ".example"  # 190 octets
    ok = "b" * 63 + "@" + domain
    assert len(ok) == 254 and str(Address.parse(ok)) == ok
    with pytest.raises(AddressError, match="longer than 254 octets"):
        Address.parse("b" + ok)
