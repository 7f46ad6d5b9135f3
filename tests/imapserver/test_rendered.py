"""The listener's cache of IMAP renderings (ENVELOPE, BODYSTRUCTURE): computed once per
account, message and key; bounded."""

from __future__ import annotations

from mailsrv.imapserver.rendered import RenderedCache


def test_computed_once_per_account_message_and_key() -> None:
    cache = RenderedCache()
    calls: list[str] = []

    def compute(value: bytes) -> bytes:
        calls.append(value.decode())
        return value

    assert cache.get("alice", 1, "env", lambda: compute(b"a")) == b"a"
    assert cache.get("alice", 1, "env", lambda: compute(b"b")) == b"a"
    assert cache.get("bob", 1, "env", lambda: compute(b"c")) == b"c"  # ids are per account
    assert cache.get("alice", 1, "body", lambda: compute(b"d")) == b"d"
    assert calls == ["a", "c", "d"]


def test_bounded() -> None:
    cache = RenderedCache()
    cache.ENTRIES = 3
    for i in range(5):
        cache.get("a", i, "k", lambda: b"x")
    calls: list[int] = []
    cache.get("a", 0, "k", lambda: calls.append(0) or b"y")  # the oldest was dropped
    cache.get("a", 4, "k", lambda: calls.append(4) or b"y")  # the newest was kept
    assert calls == [0]
