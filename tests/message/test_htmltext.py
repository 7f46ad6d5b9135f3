"""html_text: the visible text of an HTML body, as IMAP SEARCH sees it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsrv.message.htmltext import html_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<div>one</div><div>two</div>", "one two"),
        ("<p>wo<b>r</b>d</p>", "word"),  # inline markup inside a word keeps it whole
        ("<b>wo</b>rd", "word"),
        ("<p>line<br>next</p>", "line next"),
        ("<table><tr><td>a</td><td>b</td></tr></table>", "a b"),
        ("caf&eacute; &amp; cr&#232;me &#xE9;t&eacute;", "café & crème été"),
        ("AT&T &copy 2026", "AT&T © 2026"),  # HTML5 legacy references without ";"
        ("a&nbsp;&nbsp; b\r\n\t c", "a b c"),
        ("<!-- secret --><p>shown</p>", "shown"),
        ("<!DOCTYPE html><html><head><title>T</title></head><body>B</body></html>", "T B"),
        ("<script>var div = '<p>x</p>';</script>after", "after"),
        ("<style>div { color: red }</style><STYLE>p{}</STYLE>text", "text"),
        ("<template><p>hidden</p></template>seen", "seen"),
        ("<?xml version='1.0'?><![CDATA[raw]]>z", "z"),
        ('<a href="http://example.org/div">link</a>', "link"),
        ("a < b and c > d", "a < b and c > d"),  # a lone "<" is text
        ("end <!-- never closed", "end"),  # EOF inside a comment ends it
        ("end <p class='x'", "end"),  # EOF inside a tag drops it
        ("", ""),
    ],
)
def test_visible_text(html: str, text: str) -> None:
    assert html_text(html) == text


def test_tags_never_leak_into_text() -> None:
    html = "<div class='x'><span style='a'>Hello</span> <i>world</i></div>" * 100
    text = html_text(html)
    assert "<" not in text and "div" not in text and "span" not in text
    assert text == " ".join(["Hello world"] * 100)


_TOKENS = [*"<>/!-&;#x ab=\"'\n\xa0", "<p>", "</p>", "<b>", "<script>", "</script>", "<!--", "-->", "&amp;", "&#"]


@given(st.lists(st.sampled_from(_TOKENS), max_size=60))
def test_any_input_gives_collapsed_text(tokens: list[str]) -> None:
    text = html_text("".join(tokens))
    assert text == text.strip() and "  " not in text and "\n" not in text
