"""Large messages flow from their spool file through delivery (issue 17 item 7): a 50 MB
message is delivered to two accounts' real SQLite stores from a `Spool` while the Python
heap stays within a few MiB (tracemalloc), and what is stored is byte for byte the message
with its trace fields, parsed as the in-memory path parses it. A failure half-way through
the copy leaves neither a message file nor an index row."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from mailsrv.address import Address
from mailsrv.message.parse import parse_message
from mailsrv.message.source import FileRegion, MessageSource
from mailsrv.ops.delivery import Envelope, Recipient, Trace, deliver
from mailsrv.ops.errors import TemporaryFailure
from mailsrv.pools import inline_pools
from mailsrv.spool import Spool
from mailsrv.store import SQLiteStoreRegistry, files
from tests.ops.fakes import make_server

SIZE = 50 * 1024 * 1024
HEAD = (
    b"From: Big Sender <big@example.net>\r\nTo: alice@example.org\r\nSubject: the big one\r\n"
    b"Message-ID: <big@example.net>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n"
    b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
)
TAIL = b"\r\n--b1--\r\n"


def _spooled(tmp_path: Path) -> tuple[Spool, str]:
    """A 50 MB message written to a spool as SMTP would, and its SHA-256."""
    spool = Spool(tmp_path / "spool")
    digest = hashlib.sha256()
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n"
    block = line * 13000  # about 1 MB
    for piece in [HEAD] + [block] * (SIZE // len(block)) + [TAIL]:
        spool.write(piece)
        digest.update(piece)
    return spool, digest.hexdigest()


def _server(tmp_path: Path, clock: Clock) -> Any:
    server = make_server(tmp_path)
    server.stores = SQLiteStoreRegistry(tmp_path, reactor=clock, pools=inline_pools())
    return server


def _run(clock: Clock, coroutine: Any) -> Any:
    results: list[Any] = []
    ensureDeferred(coroutine).addBoth(results.append)
    for _ in range(200):
        if results:
            break
        clock.advance(0.01)
    assert results, "delivery did not finish"
    return results[0]


def _envelope(*accounts: str) -> Envelope:
    envelope = Envelope(mail_from=Address.parse("big@example.net"), trace=Trace("h", "192.0.2.1", "ESMTP"))
    for account in accounts:
        envelope.recipients.append(Recipient(Address.parse(f"{account}@example.org"), accounts=(account,)))
    return envelope


def test_a_50_mb_message_is_delivered_in_bounded_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files.os, "fsync", lambda fd: None)  # durability is not the subject
    clock = Clock()
    server = _server(tmp_path, clock)
    spool, digest = _spooled(tmp_path)
    source = spool.source()
    tracemalloc.start()
    try:
        result = _run(clock, deliver(server, _envelope("alice", "bob"), source, b"X-Extra: 1\r\n"))
        _, peak = tracemalloc.get_traced_memory()
        print(f"peak Python heap delivering {SIZE >> 20} MiB to two accounts: {peak / 2**20:.2f} MiB")
    finally:
        tracemalloc.stop()
        spool.discard()
    assert not isinstance(result, Failure), result
    assert sorted(result.delivered) == ["alice", "bob"]
    assert result.message_id == "<big@example.net>"
    # In memory the delivery held the message several times over (+7x measured before).
    assert peak < 8 * 1024 * 1024, f"peak Python heap {peak / 2**20:.1f} MiB"
    for account in ("alice", "bob"):
        store = server.stores.open(account)
        box = store.mailbox("INBOX")
        [info] = store.messages(box.id)
        path = store.files.path(info.message_id)
        stored = path.read_bytes()
        assert stored.startswith(b"Delivered-To: " + account.encode() + b"@example.org\r\nReceived: ")
        head_len = stored.index(b"X-Extra: 1\r\n") + len(b"X-Extra: 1\r\n")
        assert hashlib.sha256(stored[head_len:]).hexdigest() == digest
        assert info.size == len(stored)
        # The tree parsed from the mapped file is the one the in-memory parser gives.
        assert store.part_tree(info.message_id) == parse_message(stored)
        assert store.part_tree(info.message_id).children[1].media_subtype == "octet-stream"
        del stored
    server.stores.close_all()


def test_a_copy_that_fails_half_way_leaves_nothing(tmp_path: Path) -> None:
    clock = Clock()
    server = _server(tmp_path, clock)
    spool = Spool(tmp_path / "spool")
    spool.write(b"Subject: short\r\n\r\n" + b"x" * 3_000_000)
    whole = spool.source()
    # The region claims more than the file holds: the copy fails after writing 3 MB.
    [region] = whole.segments
    assert isinstance(region, FileRegion)
    broken = MessageSource([FileRegion(region.file, 0, region.length + 1000)])
    result = _run(clock, deliver(server, _envelope("alice"), broken))
    assert isinstance(result, Failure) and isinstance(result.value, TemporaryFailure), result
    store = server.stores.open("alice")
    assert store.messages(store.mailbox("INBOX").id) == []
    ahead = {str(i) for i in store.files.made_ahead()}  # empty files for later messages
    leftovers = [p for p in (tmp_path / "accounts" / "alice" / "msg").rglob("*") if p.is_file() and p.name not in ahead]
    assert leftovers == []
    spool.discard()
    server.stores.close_all()
