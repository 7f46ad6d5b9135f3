"""RFC 3461 DSN parameters: xtext (§4) and the RET/ENVID/NOTIFY/ORCPT grammar."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsrv.dsnparams import (
    DSNParameterError,
    MessageDSN,
    RecipientDSN,
    mail_parameters,
    parse_envid,
    parse_notify,
    parse_orcpt,
    parse_ret,
    rcpt_parameters,
    xtext_decode,
    xtext_encode,
)


def test_xtext() -> None:
    assert xtext_decode("abc+2Bdef+3D") == "abc+def="
    assert xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d"
    assert xtext_decode("a+20b") == "a b"
    for bad in ("a+2b", "a+2", "a=b", "a b", "a+0D+0Ab", "a+7F", "caf\u00e9"):
        with pytest.raises(DSNParameterError):
            xtext_decode(bad)


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_xtext_round_trip(value: str) -> None:
    encoded = xtext_encode(value)
    assert encoded.isascii() and " " not in encoded and "=" not in encoded
    assert xtext_decode(encoded) == value


@given(st.text(max_size=30))
def test_xtext_decode_never_crashes_or_lets_control_characters_through(text: str) -> None:
    try:
        decoded = xtext_decode(text)
    except DSNParameterError:
        return
    assert all(" " <= c <= "~" for c in decoded)


def test_ret_and_envid() -> None:
    assert parse_ret("full") == "FULL" and parse_ret("HDRS") == "HDRS"
    for bad in (None, "", "BODY"):
        with pytest.raises(DSNParameterError):
            parse_ret(bad)
    assert parse_envid("QQ314159+2B1") == "QQ314159+1"
    assert len(parse_envid("x" * 100)) == 100
    for bad in (None, "", "x" * 101, "a=b"):
        with pytest.raises(DSNParameterError):
            parse_envid(bad)


def test_notify() -> None:
    assert parse_notify("never") == ("NEVER",)
    assert parse_notify("DELAY,success") == ("SUCCESS", "DELAY")
    for bad in (None, "", "NEVER,SUCCESS", "SUCCESS,", "FAILURE,FAILURE", "SOMETIMES"):
        with pytest.raises(DSNParameterError):
            parse_notify(bad)


def test_notify_decides_which_dsns_go_out() -> None:
    default = RecipientDSN()
    assert default.wants("failed") and default.wants("delayed") and not default.wants("relayed")
    never = RecipientDSN(("NEVER",))
    assert not any(never.wants(a) for a in ("failed", "delayed", "delivered", "relayed"))
    success = RecipientDSN(("SUCCESS",))
    assert success.wants("delivered") and success.wants("relayed") and not success.wants("failed")
    assert RecipientDSN.stored("SUCCESS,FAILURE", "") == RecipientDSN(("SUCCESS", "FAILURE"))
    assert RecipientDSN.stored("", "") == default


def test_orcpt() -> None:
    assert parse_orcpt("rfc822;bob+2Bx@b.example") == "rfc822;bob+x@b.example"
    for bad in (None, "", "bob@b.example", "rfc822;", ";bob@b.example", "rfc 822;x", "rfc822;a b", "x;" + "a" * 500):
        with pytest.raises(DSNParameterError):
            parse_orcpt(bad)


def test_parameters_going_out_are_xtext_encoded() -> None:
    assert mail_parameters(MessageDSN()) == []
    assert mail_parameters(MessageDSN("FULL", "id 1+2")) == ["RET=FULL", "ENVID=id+201+2B2"]
    assert rcpt_parameters(RecipientDSN()) == []
    assert rcpt_parameters(RecipientDSN(("NEVER",), "rfc822;a=b@c.example")) == [
        "NOTIFY=NEVER",
        "ORCPT=rfc822;a+3Db@c.example",
    ]


@given(st.sampled_from([parse_ret, parse_envid, parse_notify, parse_orcpt]), st.one_of(st.none(), st.text(max_size=40)))
def test_parsers_refuse_only_with_their_error(parse: object, value: str | None) -> None:
    assert callable(parse)
    try:
        result = parse(value)
    except DSNParameterError:
        return
    text = "".join(result) if isinstance(result, tuple) else str(result)
    assert all(" " <= c <= "~" for c in text)
