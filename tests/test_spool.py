"""mailsrv/spool.py: a message under `Spool.IN_MEMORY` octets never touches the disk; a larger
one moves to a private file with what came before, and reads back whole."""

from __future__ import annotations

from pathlib import Path

from mailsrv.spool import Spool


def test_small_messages_stay_in_memory(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    for _ in range(10):
        spool.write(b"x" * 1000)
    assert spool.read() == b"x" * 10_000 and spool.size == 10_000
    assert not (tmp_path / "spool").exists()  # no directory, no file
    spool.discard()
    assert spool.read() == b"" and spool.size == 0


def test_large_messages_spill_to_a_file_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    chunks = [bytes([65 + i % 26]) * 7000 for i in range(20)]  # 140,000 octets
    for chunk in chunks:
        spool.write(chunk)
    assert spool._file is not None and spool._buffer == b""
    assert spool.read() == b"".join(chunks)
    spool.write(b"tail")
    assert spool.read() == b"".join(chunks) + b"tail" and spool.size == 140_004
    assert list((tmp_path / "spool").iterdir()) == []  # the file is unlinked from the start
    spool.discard()
    assert spool.read() == b""
