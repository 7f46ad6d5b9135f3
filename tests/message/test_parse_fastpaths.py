"""The parser's shortcuts for common header values give exactly what the email package gives:
simple address lists, values without encoded-words, the JSON of a part tree."""

from __future__ import annotations

import json
from email.header import decode_header, make_header

from hypothesis import example, given
from hypothesis import strategies as st

from mailsrv.message.parse import _mailboxes, _simple_mailboxes, _split_groups, decode_text, parse_message
from mailsrv.message.part import EnvelopeAddress, _part_to_obj


def _by_the_email_package(text: str) -> list[EnvelopeAddress]:
    out: list[EnvelopeAddress] = []
    for group, members in _split_groups(text):
        assert group is None  # the texts below have no ':'
        out.extend(_mailboxes(members))
    return out


_atom = st.text("abcXYZ019!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=5)
_addr = st.builds(
    lambda local, dom: ".".join(local) + "@" + ".".join(dom),
    st.lists(_atom, min_size=1, max_size=3),
    st.lists(_atom, min_size=1, max_size=3),
)
_space = st.sampled_from(["", " ", "  ", "\t", " \t "])
_item = st.one_of(
    st.builds(lambda a, s1, s2: s1 + a + s2, _addr, _space, _space),
    st.builds(
        lambda words, a, s1, s2, s3: s1 + s2.join(words) + s3 + "<" + a + ">" + s1,
        st.lists(_atom, max_size=3),
        _addr,
        _space,
        st.sampled_from([" ", "  ", "\t"]),
        _space,
    ),
)


@given(st.lists(_item, min_size=1, max_size=4).map(",".join))
@example("Joe  Bloggs <joe@example.org>, <a@b.c>,x@y")
def test_simple_address_lists_as_the_email_package_reads_them(text: str) -> None:
    assert _simple_mailboxes(text) == _by_the_email_package(text)


@given(st.text('ab@.<> ,\t"():;[]\\=?é', max_size=30))
@example("x <a@b>y")
@example("a@b c")
@example("<a@b> x")
@example("a@b,")
@example("A.B <a@b>")
def test_other_address_lists_are_left_to_the_email_package(text: str) -> None:
    simple = _simple_mailboxes(text)
    assert simple is None or simple == _by_the_email_package(text)


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40).filter(lambda v: "=?" not in v))
def test_text_without_encoded_words_decodes_as_the_email_package_does(value: str) -> None:
    text = str(make_header(decode_header(value)))
    expected = " ".join(text.replace("\r", "").split("\n")).strip() if "\n" in text else text.strip()
    assert decode_text(value) == expected


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_part_tree_json_is_the_json_module_s(value: str) -> None:
    raw = (
        f'From: {value} <a@example.org>\r\nSubject: {value}\r\nContent-Type: text/plain; name="{value}"\r\n\r\nbody'
    ).encode("utf-8", "surrogateescape")
    tree = parse_message(raw)
    assert tree.to_json() == json.dumps(_part_to_obj(tree), separators=(",", ":"), ensure_ascii=False)


_HEADS = [b"", b"From: A <a@b.c>\r\nSubject: s\r\n", b"Content-Type: text/html\n"]


@given(st.binary(max_size=300), st.sampled_from(_HEADS))
def test_header_fields_given_by_the_caller_give_the_same_tree(raw: bytes, head: bytes) -> None:
    from mailsrv.message.headerfields import header_fields

    message = head + raw
    assert parse_message(message, header_fields(message)) == parse_message(message)


_param_text = st.text("aZ09-_.=?/+* \t\"';\\<>é", max_size=12)
_param = st.one_of(
    st.builds(lambda n, v: f"{n}={v}", st.text("aZ09-_.*'", min_size=1, max_size=6), _param_text),
    st.builds(lambda n, s1, s2, v: f'{s1}{n}{s2}={s2}"{v}"{s1}', _atom, _space, _space, _param_text),
    _param_text,
)


@given(st.text("textplain/-; ", max_size=12), st.lists(_param, max_size=4))
@example("text/plain", ["charset=utf-8", ' format="flowed"'])
@example("multipart/mixed", ['boundary="----=_Part_0_1.2"', ""])
@example("text/plain", ['name="<a>"'])
def test_parameters_as_the_email_package_reads_them(main: str, params: list[str]) -> None:
    from mailsrv.message.parse import _params_by_email_package, _simple_params

    value = ";".join([main, *params])
    simple = _simple_params(value)
    assert simple is None or simple == _params_by_email_package("content-type", value)
