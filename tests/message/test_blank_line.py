"""message.parse.blank_line and header_end: the same offsets as the regex they replace, on random
input mixing CR, LF and text, windows crossed included."""

from __future__ import annotations

import mmap
import random
import re

from mailsrv.message.parse import blank_line, header_end

_BLANK = re.compile(rb"\r?\n\r?\n")


def _reference_header_end(raw: bytes, start: int, end: int) -> int:
    if raw[start : start + 2] == b"\r\n" and start + 2 <= end:
        return start + 2
    if raw[start : start + 1] == b"\n" and start + 1 <= end:
        return start + 1
    m = _BLANK.search(raw, start, end)
    return end if m is None else m.end()


def test_matches_the_regex_on_random_input() -> None:
    rng = random.Random(11)
    pieces = [b"\r", b"\n", b"\r\n", b"x", b"Subject: hi", b"\t", b" "]
    for _ in range(20000):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 14)))
        start = rng.randrange(0, len(data) + 1)
        end = rng.randrange(start, len(data) + 1)
        m = _BLANK.search(data, start, end)
        assert blank_line(data, start, end) == (None if m is None else m.span()), (data, start, end)
        assert header_end(data, start, end) == _reference_header_end(data, start, end)


def test_long_headers_cross_the_search_window() -> None:
    rng = random.Random(12)
    for _ in range(300):
        # Long lines so the empty line falls anywhere around the 4 KB, 8 KB, ... window ends.
        line = b"X-Long: " + b"a" * rng.randrange(0, 5000) + rng.choice([b"\r\n", b"\n", b"\r"])
        data = line * rng.randrange(1, 6) + rng.choice([b"\r\n", b"\n", b"\r\r\n", b""]) + b"body\n\nmore\r\n\r\n"
        m = _BLANK.search(data)
        assert blank_line(data, 0, len(data)) == (None if m is None else m.span())
        assert header_end(data, 0, len(data)) == _reference_header_end(data, 0, len(data))


def test_mmap_and_bytearray() -> None:
    data = b"A: b\r\nC: d\r\n\r\nbody\r\n"
    assert blank_line(bytearray(data), 0, len(data)) == (10, 14)
    with mmap.mmap(-1, len(data)) as mapped:
        mapped.write(data)
        assert header_end(mapped, 0, len(data)) == 14
