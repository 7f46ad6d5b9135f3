"""mailsrv.junk.tokens: what a message is counted as, and its bounds on hostile input."""

from __future__ import annotations

import resource
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from mailsrv.junk.tokens import MAX_TOKENS, message_tokens, words


def test_words_lowercased_and_normalised() -> None:
    assert list(words("Hello, WORLD! Don't pay $100 for e-mail")) == [
        "hello",
        "world",
        "don't",
        "pay",
        "$100",
        "for",
        "e-mail",
    ]
    # NFKC: fullwidth letters are the same word as ASCII ones.
    assert list(words("ＦＲＥＥ")) == ["free"]


def test_long_word_is_one_folded_token() -> None:
    assert list(words("a" * 5000)) == ["long:aaaaaaaa"]


def test_headers_are_prefixed_and_body_has_pairs() -> None:
    raw = (
        b"From: Cheap Pills <x@spam.example>\r\nSubject: Great offer\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"\r\nbuy now please\r\n"
    )
    tokens = message_tokens(raw, (1, 2))
    assert {"subject:great", "subject:offer", "fromname:cheap", "fromdomain:spam.example"} <= tokens
    assert {"buy", "now", "please", "buy now", "now please"} <= tokens
    assert "charset:utf-8" in tokens
    assert "buy now please" not in tokens
    assert "buy now please" in message_tokens(raw, (1, 3))


def test_html_visible_text_only() -> None:
    raw = (
        b"Content-Type: text/html\r\n\r\n<html><head><style>.secret{}</style></head>"
        b"<body><p>Visible <b>wo</b>rds</p><script>hidden()</script><a href='http://evil.example/x'>here</a></body>"
    )
    tokens = message_tokens(raw, (1,))
    assert {"visible", "words", "here"} <= tokens
    assert not {"secret", "hidden", "script", "style"} & tokens


def test_alternative_prefers_plain() -> None:
    raw = (
        b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nplainword\r\n"
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>htmlword</p>\r\n--b--\r\n"
    )
    tokens = message_tokens(raw, (1,))
    assert "plainword" in tokens and "htmlword" not in tokens


def _bounded(raw: bytes, seconds: float) -> set[str]:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.process_time()
    tokens = message_tokens(raw, (1, 2, 3))
    assert time.process_time() - start < seconds
    # Peak memory grows by far less than a few times the message (KiB on Linux).
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024
    return tokens


def test_five_megabyte_message_bounded() -> None:
    line = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt\r\n"
    raw = b"Subject: big\r\n\r\n" + line * (5 * 1024 * 1024 // len(line))
    tokens = _bounded(raw, 5.0)
    assert len(tokens) <= MAX_TOKENS


def test_one_megabyte_word_bounded() -> None:
    raw = b"Subject: word\r\n\r\n" + b"x" * (1024 * 1024) + b"\r\n"
    tokens = _bounded(raw, 2.0)
    assert "long:xxxxxxxx" in tokens


@given(st.binary(max_size=3000))
@settings(max_examples=200, deadline=None)
def test_any_bytes_tokenise(raw: bytes) -> None:
    tokens = message_tokens(raw)
    assert len(tokens) <= MAX_TOKENS
    assert all(isinstance(t, str) and t for t in tokens)
