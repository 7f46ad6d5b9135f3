"""A `Server` for ops unit tests: the real dynamic configuration (domains, accounts, aliases
from a dynamic.toml written here), in-memory stores and queue, no reactor, no sockets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed

from mailsrv.address import Address, Domain
from mailsrv.config.dynamic import DynamicConfigStore
from mailsrv.config.types import LimitsConfig, SMTPConfig
from mailsrv.message.headerfields import header_fields as parse_header_fields
from mailsrv.store.interfaces import MailboxNotFound

DYNAMIC = """\
[domains."example.org"]
[domains."example.net"]
[accounts.alice]
domain = "example.org"
addresses = ["alice@example.org"]
[accounts.bob]
domain = "example.org"
addresses = ["bob@example.org"]
[accounts.carol]
domain = "example.net"
addresses = ["carol@example.net"]
[aliases."team@example.org"]
members = ["alice@example.org", "bob@example.org"]
[aliases."public@example.org"]
post_public = true
members = ["alice@example.org", "bob@example.org", "ghost@example.org"]
[aliases."outsiders@example.org"]
post_public = true
members = ["ghost@example.org"]
[aliases."sales@example.org"]
allow_msg_from = true
members = ["alice@example.org"]
"""


class FakeStore:
    def __init__(self, limit: int | None = None, error: Exception | None = None) -> None:
        self.limit = limit
        self.error = error
        self.missing_mailboxes: set[str] = set()
        self.stored: list[tuple[str, bytes]] = []
        self.delivery_ids: list[str] = []

    def quota_limit(self) -> int | None:
        return self.limit

    def usage(self) -> int:
        return sum(len(data) for _, data in self.stored)

    def usage_async(self) -> Deferred[int]:
        return succeed(self.usage())

    def append(
        self,
        mailbox: str,
        data: bytes,
        *,
        delivery: bool = False,
        delivery_id: str | None = None,
        header_fields: Sequence[tuple[str, str]] | None = None,
    ) -> Deferred[None]:
        assert delivery, "deliveries are logged as such (store.append(..., delivery=True))"
        if header_fields is not None:
            # Fields a caller hands over must be exactly what the store would parse.
            assert list(header_fields) == parse_header_fields(data), (header_fields, data[:500])
        if self.error is not None:
            return fail(self.error)
        if mailbox in self.missing_mailboxes:
            return fail(MailboxNotFound(f"no mailbox {mailbox}"))
        if delivery_id is not None:
            if delivery_id in self.delivery_ids:
                return succeed(None)  # the real store returns the first append's result
            self.delivery_ids.append(delivery_id)
        self.stored.append((mailbox, data))
        return succeed(None)


@dataclass
class Queued:
    mail_from: Address | None
    recipients: list[Address]
    data: bytes
    account: str


@dataclass
class FakeQueue:
    queued: list[Queued] = field(default_factory=list)

    def enqueue(
        self,
        mail_from: Address | None,
        recipients: Sequence[Address],
        data: bytes,
        account: str,
        smtputf8: bool,
        *rest: Any,
    ) -> Deferred[int]:
        self.queued.append(Queued(mail_from, list(recipients), data, account))
        return succeed(len(self.queued))


class FakeRules:
    def __init__(self) -> None:
        self.rulesets: dict[str, tuple[Any, ...]] = {}

    def for_account(self, account: str) -> tuple[Any, ...]:
        return self.rulesets.get(account, ())


class FakeThreadPoolReactor:
    """`deferToThreadPool` with a pool that runs the function at once, in this thread."""

    def getThreadPool(self) -> Any:
        return SimpleNamespace(callInThreadWithCallback=_call_now)

    def callFromThread(self, f: Any, *args: Any, **kwargs: Any) -> None:
        f(*args, **kwargs)


def _call_now(on_result: Any, f: Any, *args: Any, **kwargs: Any) -> None:
    try:
        result = f(*args, **kwargs)
    except BaseException as e:
        from twisted.python.failure import Failure

        on_result(False, Failure(e))
    else:
        on_result(True, result)


def make_server(tmp_path: Path, dynamic: str = DYNAMIC, **smtp: Any) -> Any:
    (tmp_path / "dynamic.toml").write_text(dynamic)
    stores: dict[str, FakeStore] = {}

    def open_store(name: str) -> FakeStore:
        return stores.setdefault(name, FakeStore())

    return SimpleNamespace(
        reactor=FakeThreadPoolReactor(),
        dynamic=DynamicConfigStore(tmp_path / "dynamic.toml"),
        stores=SimpleNamespace(open=open_store, by_name=stores),
        rules=FakeRules(),
        queue=FakeQueue(),
        accounts=None,
        mail_auth=None,
        delivery_deciders=[],
        webhooks=None,
        pools=None,
        config=SimpleNamespace(
            hostname=Domain.parse("mail.example.org"),
            ldap=None,
            smtp=SMTPConfig(**smtp),
            limits=LimitsConfig(),
            data_dir=tmp_path,
            localserve=False,
        ),
    )


def result_of(d: Any) -> Any:
    """The result of a coroutine or Deferred that completes at once (fakes never wait);
    a failure is returned as its exception."""
    results: list[Any] = []
    ensureDeferred(d).addCallbacks(results.append, lambda f: results.append(f.value))
    assert results, "did not complete synchronously"
    return results[0]
