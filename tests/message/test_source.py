"""`MessageSource`: bytes in memory followed by file regions, read in chunks."""

from __future__ import annotations

import tempfile

import pytest

from mailsrv.message import source as source_module
from mailsrv.message.source import FileRegion, MessageSource


def _file(data: bytes) -> tempfile._TemporaryFileWrapper[bytes]:
    f = tempfile.NamedTemporaryFile()
    f.write(data)
    f.flush()
    return f


def test_segments_read_in_order_from_any_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_module, "CHUNK", 3)
    f = _file(b"0123456789")
    src = MessageSource([b"ab", FileRegion(f.file, 2, 5), b"", b"XY"])  # "ab" "23456" "XY"
    assert src.size == len(src) == 9
    assert src.read() == b"ab23456XY"
    for start in range(10):
        for length in (None, 0, 1, 4, 20):
            want = b"ab23456XY"[start:] if length is None else b"ab23456XY"[start : start + length]
            assert src.read(start, length) == want
            assert all(len(c) <= 3 for c in src.chunks(start, length, 3))
    assert src.tail(3).read() == b"3456XY"
    assert src.with_head(b"H: 1\r\n").read() == b"H: 1\r\nab23456XY"


def test_header_block() -> None:
    f = _file(b"Subject: x\r\nTo: y\r\n\r\nbody\r\n")
    src = MessageSource.of_file(f.file, 27).with_head(b"Received: z\r\n")
    assert src.header_block() == b"Received: z\r\nSubject: x\r\nTo: y\r\n\r\n"
    assert src.body().read() == b"body\r\n"
    assert MessageSource([b"no body at all"]).header_block() == b"no body at all"
    assert MessageSource([b"A: b\r\n", b"\r\n"]).header_block() == b"A: b\r\n\r\n"
    assert MessageSource([b"A: " + b"x" * 100]).header_block(limit=20) == b"A: " + b"x" * 17


def test_a_file_shorter_than_its_region_is_an_error() -> None:
    f = _file(b"short")
    with pytest.raises(OSError):
        MessageSource([FileRegion(f.file, 0, 10)]).read()
