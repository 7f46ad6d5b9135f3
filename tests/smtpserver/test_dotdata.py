"""The bulk DATA reader equals reading line by line (RFC 5321 §4.5.2), however the input is
split into reads."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailsrv.smtpserver.dotdata import find_end, unstuff


def _reference(stream: bytes) -> bytes | None:
    """Line by line: the stored message, or None when the end line never comes."""
    out = b""
    lines = [part + b"\n" for part in stream.split(b"\n")]
    lines[-1] = lines[-1][:-1]  # after the last LF: an incomplete line (or nothing)
    for line in lines:
        if not line.endswith(b"\n"):
            return None
        if line.rstrip(b"\r\n") == b".":
            return out
        if line.startswith(b"."):
            line = line[1:]
        out += line.rstrip(b"\r\n") + b"\r\n"
    return None


def _bulk(reads: list[bytes]) -> bytes | None:
    buf = bytearray()
    out = b""
    at_start = True
    for data in reads:
        buf += data
        end = find_end(buf, at_start)
        if end is not None:
            return out + unstuff(bytes(buf[: end[0]]), at_start)
        cut = buf.rfind(b"\n") + 1
        if cut:
            out += unstuff(bytes(buf[:cut]), at_start)
            at_start = True
            del buf[:cut]
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
    assert _bulk([b"..x\nb\r\r\n.\n"]) == b".x\r\nb\r\n"
    assert _bulk([b"a\r", b"\n.", b"\r\n"]) == b"a\r\n"
