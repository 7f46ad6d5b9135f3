"""The bulk DATA reader equals reading CRLF lines one by one (RFC 5321 §4.5.2), however the
input is split into reads, and data with a bare LF or CR is refused (issue 17 item 4)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailsrv.smtpserver.dotdata import find_end, has_bare_line_end, unstuff

REFUSED = b"refused"


def _reference(stream: bytes) -> bytes | None:
    """CRLF line by line: the stored message, REFUSED when a bare LF or CR comes before the
    end line, or None when the end line never comes."""
    out = b""
    rest = stream
    while True:
        i = rest.find(b"\r\n")
        line = rest if i < 0 else rest[:i]
        if b"\r" in line or b"\n" in line:
            return REFUSED
        if i < 0:
            return None
        rest = rest[i + 2 :]
        if line == b".":
            return out
        if line.startswith(b"."):
            line = line[1:]
        out += line + b"\r\n"


def _bulk(reads: list[bytes]) -> bytes | None:
    """What mailsrv/smtpserver/session.py's _take_data does with the same reads."""
    buf = bytearray()
    out = b""
    at_start = True
    for data in reads:
        buf += data
        end = find_end(buf, at_start)
        chunk = bytes(buf[: end[0]] if end else buf[: buf.rfind(b"\n") + 1])
        if has_bare_line_end(chunk):
            return REFUSED
        if end is not None:
            return out + unstuff(chunk, at_start)
        if chunk:
            out += unstuff(chunk, at_start)
            at_start = True
            del buf[: len(chunk)]
    return None


pieces = st.lists(st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"a", b"..", b"\x00", b"\xff"]), max_size=60)


@given(pieces, st.lists(st.integers(min_value=0, max_value=80), max_size=5))
def test_bulk_equals_line_by_line(parts: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(parts) + b"\r\n.\r\n"
    points = sorted({min(c, len(stream)) for c in cuts})
    reads = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert _bulk(reads) == _reference(stream)


def test_examples() -> None:
    assert _bulk([b".\r\n"]) == b""
    assert _bulk([b"..x\r\nb\r\n.\r\n"]) == b".x\r\nb\r\n"
    assert _bulk([b"a\r", b"\n.", b"\r\n"]) == b"a\r\n"


def test_only_crlf_dot_crlf_ends_the_data() -> None:
    for end in (b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r\n.\r\r\n", b"\r\n.\r.\r\n", b"\r\n\r.\r\n"):
        assert find_end(b"a" + end + b"MAIL FROM:<x@y>\r\n", True) is None, end
        assert _bulk([b"a" + end + b"b\r\n.\r\n"]) == REFUSED, end
    assert find_end(b"a\r\n.\r\nnext", True) == (3, 6)
