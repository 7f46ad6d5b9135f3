"""Unit and property tests of the byte-level command assembly."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailsrv.imapserver.commandreader import (
    CommandAssembler,
    CommandReady,
    CommandRefused,
    ContinuationNeeded,
    Event,
    LineReady,
)
from tests.imapserver.harness import Client, make_server


def events(a: CommandAssembler) -> list[Event]:
    out: list[Event] = []
    while (e := a.next_event()) is not None:
        out.append(e)
    return out


def assembler(max_line: int = 100, literal: int = 1000) -> CommandAssembler:
    return CommandAssembler(max_line, lambda first: literal if b"APPEND" in first.upper() else max_line)


def test_literals_spliced() -> None:
    a = assembler()
    a.feed(b"a LOGIN {3}\r\n")
    assert events(a) == [ContinuationNeeded(3)]
    a.feed(b"bob {2+}\r\npw\r\nb NOOP\r\n")
    assert events(a) == [CommandReady(b"a LOGIN {3}\r\nbob {2+}\r\npw"), CommandReady(b"b NOOP")]


def test_byte_by_byte() -> None:
    a = assembler()
    data = b"a LOGIN {3+}\r\nbob ~{2}\r\npw\r\n"
    got: list[Event] = []
    for i in range(len(data)):
        a.feed(data[i : i + 1])
        got += events(a)
    assert got == [ContinuationNeeded(2), CommandReady(b"a LOGIN {3+}\r\nbob ~{2}\r\npw")]


def test_refusals() -> None:
    a = assembler()
    a.feed(b"a APPEND x {5000}\r\n")
    assert events(a) == [CommandRefused("a", "NO", "TOOBIG", "message too large")]
    a.feed(b"b APPEND x {5000+}\r\n" + b"z" * 5000 + b" {3+}\r\nabc\r\nc NOOP\r\n")
    assert events(a) == [CommandRefused("b", "NO", "TOOBIG", "message too large"), CommandReady(b"c NOOP")]
    a.feed(b"d " + b"y" * 500 + b"\r\ne NOOP\r\n")
    assert events(a) == [CommandRefused("d", "BAD", "TOOBIG", "line too long"), CommandReady(b"e NOOP")]
    # A too-long line arriving in pieces, ending with a non-synchronising literal.
    a.feed(b"f " + b"y" * 300)
    assert events(a) == []
    a.feed(b"y" * 300 + b" {4+}\r\nabcd\r\ng NOOP\r\n")
    assert events(a) == [CommandRefused("f", "BAD", "TOOBIG", "line too long"), CommandReady(b"g NOOP")]


def test_next_line() -> None:
    a = assembler()
    a.feed(b"DONE\r\nx")
    assert a.next_line() == LineReady(b"DONE")
    assert a.next_line() is None
    a.feed(b"y" * 200)
    assert a.next_line() is None
    a.feed(b"\r\nDONE\r\n")
    assert a.next_line() == CommandRefused(None, "BAD", "TOOBIG", "line too long")
    assert a.next_line() == LineReady(b"DONE")


_STREAM = (
    b"a CAPABILITY\r\nb LOGIN {5+}\r\nalice {13}\r\ncorrect horse\r\nc NOOP\r\n"
    b'd LIST "" *\r\ne CREATE {4+}\r\nWork\r\nf STATUS Work (MESSAGES)\r\ng FROB\r\nh LOGOUT\r\n'
)
_DIR = Path(tempfile.mkdtemp(prefix="imapsplit"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=1, max_value=len(_STREAM) - 1), max_size=20))
def test_any_split_gives_same_answers(cuts: list[int]) -> None:
    with tempfile.TemporaryDirectory(dir=_DIR) as d1, tempfile.TemporaryDirectory(dir=_DIR) as d2:
        whole = Client(make_server(Path(d1)))
        expected = whole.send(_STREAM)
        split = Client(make_server(Path(d2)))
        out = b""
        prev = 0
        for cut in [*sorted(set(cuts)), len(_STREAM)]:
            out += split.send(_STREAM[prev:cut])
            prev = cut
        assert out == expected
        assert b"h OK" in out
