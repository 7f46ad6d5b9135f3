"""`deliver` with stores that fail: never a 250 when a copy was not stored."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed

from mailsrv.address import Address, Domain
from mailsrv.smtpserver.delivery import Envelope, Recipient, SMTPReply, deliver
from mailsrv.store.interfaces import StoreError


class FakeStore:
    def __init__(self, error: Exception | None = None, limit: int | None = None) -> None:
        self.error = error
        self.limit = limit
        self.stored: list[bytes] = []

    def quota_limit(self) -> int | None:
        return self.limit

    def usage(self) -> int:
        return sum(map(len, self.stored))

    def append(self, mailbox: str, data: bytes) -> Deferred[None]:
        if self.error is not None:
            return fail(self.error)
        self.stored.append(data)
        return succeed(None)


def _server(stores: dict[str, FakeStore]) -> Any:
    return SimpleNamespace(
        dynamic=SimpleNamespace(lookup=lambda a: None),
        stores=SimpleNamespace(open=lambda name: stores[name]),
        rules=None,
        queue=None,
        config=SimpleNamespace(hostname=Domain.parse("mail.example.org")),
    )


def _run(server: Any, envelope: Envelope) -> Any:
    d = ensureDeferred(deliver(server, envelope, b"Subject: x\r\n\r\nbody\r\n"))
    results: list[Any] = []
    d.addBoth(results.append)
    return results[0]


def _envelope(*accounts: str) -> Envelope:
    rcpts = [Recipient(Address.parse(f"{a}@example.org"), accounts=(a,)) for a in accounts]
    return Envelope(mail_from=Address.parse("x@example.net"), recipients=rcpts, helo="h", remote_ip="192.0.2.1")


def test_store_failure_answers_451_even_when_another_copy_was_stored() -> None:
    stores = {"a": FakeStore(), "b": FakeStore(StoreError("disk full"))}
    outcome = _run(_server(stores), _envelope("a", "b"))
    assert isinstance(outcome.value, SMTPReply) and (outcome.value.code, outcome.value.enhanced) == (451, "4.3.0")


def test_over_quota_direct_recipient_refuses_before_storing_anything() -> None:
    stores = {"a": FakeStore(), "b": FakeStore(limit=10)}
    outcome = _run(_server(stores), _envelope("a", "b"))
    assert (outcome.value.code, outcome.value.enhanced) == (452, "4.2.2")
    assert stores["a"].stored == []


@pytest.mark.parametrize("names", [("a",), ("a", "a")])
def test_stored_once_with_trace_headers(names: tuple[str, ...]) -> None:
    stores = {"a": FakeStore()}
    result = _run(_server(stores), _envelope(*names))
    assert result.delivered == ["a"]
    [copy] = stores["a"].stored
    assert copy.startswith(b"Delivered-To: a@example.org\r\nReceived: from h ([192.0.2.1])\r\n")
