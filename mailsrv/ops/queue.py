"""Administration of the outgoing queue: paged listing of queued and retired messages with
filters and sort, one message's attempt history, hold/release/retry/drop/purge, hold rules and
an account's retired-keep period. Over `mailsrv.queue.interfaces.OutgoingQueue`; the control
socket, the CLI (`mailsrv queue ...`) and the admin web API run these by name (`OPERATIONS`).

Invariants:
- Filters (ids, sender, recipient, account, held, next attempt before/after, requiretls, transport)
  combine with AND; no filter matches every message, except for `drop`, which needs a filter
  or `all` (an admin decision that should not happen by a typo). `drop` removes silently, or
  with `dsn` fails the recipients so that the senders get a DSN and the message is retired
  with that outcome in its history.
- `purge` only forgets retired messages (history, never mail or an owed DSN): with no filter
  those whose keep period has passed, with a filter every matching retired message at once.
- `release` and `retry` wake the queue runner, so the attempt starts now.
- `transport` names a configured transport (or "routes"); the recipients keep it until an
  administrator changes it again, whatever the routes say.
- Pages are keyset pages (see queue/interfaces.py): a message appears once across the pages of
  one listing even while others are queued or finish.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import msgspec

from mailsrv.config.load import parse_duration
from mailsrv.config.transports import ROUTES
from mailsrv.ops.errors import InvalidInput, NotFound
from mailsrv.ops.operation import Done, Operation
from mailsrv.queue.interfaces import (
    MAX_PAGE,
    Attempt,
    HoldRule,
    OutgoingQueue,
    QueueAnchor,
    QueuedMessage,
    QueueFilter,
    QueuePage,
    QueuePageRequest,
    QueueSort,
)

if TYPE_CHECKING:
    from mailsrv.server import Server

# The admin API answers with these queue types; adapters take them from here, not from the queue.
__all__ = ["HoldRule", "QueuePage"]


class Selection(msgspec.Struct, kw_only=True):
    """Which messages: every given field must match (none given: all)."""

    ids: list[int] = []
    sender: str | None = None  # an address, or "@domain"
    recipient: str | None = None  # an address, or "@domain"
    account: str | None = None
    held: bool | None = None
    next_before: float | None = None  # next attempt earlier than this (Unix time)
    next_after: float | None = None  # next attempt at or after this
    requiretls: bool | None = None
    transport: str | None = None  # a recipient's transport (the next attempt's, or the last used)

    def to_filter(self) -> QueueFilter:
        return QueueFilter(
            ids=tuple(self.ids),
            sender=self.sender or None,
            recipient=self.recipient or None,
            account=self.account or None,
            held=self.held,
            next_before=self.next_before,
            next_after=self.next_after,
            requiretls=self.requiretls,
            transport=self.transport or None,
        )


class ListMessages(Selection, kw_only=True):
    sort: QueueSort = "id"
    descending: bool = False
    after: QueueAnchor | None = None  # the previous page's `next`
    limit: int = 100


class Drop(Selection, kw_only=True):
    all: bool = False  # needed when no filter is given
    dsn: bool = False  # fail the recipients (the sender gets a DSN) instead of removing silently
    reason: str = ""  # for the DSN and the history: "dropped by an administrator" when empty


class SetNextAttempt(Selection, kw_only=True):
    when: float  # Unix time


class SetRequireTLS(Selection, kw_only=True):
    required: bool


class SetTransport(Selection, kw_only=True):
    """`to`: a configured transport (`direct` or a `[transports.NAME]`), or "routes": the
    configured routes choose again, at once and at every attempt."""

    to: str


class TransportInfo(msgspec.Struct, kw_only=True):
    """A configured transport as the admin sees it (never its password)."""

    name: str
    kind: str  # direct, submissions, submission, smtp
    host: str = ""  # the smarthost; "" for direct
    port: int = 0
    login: bool = False  # logs in to the smarthost
    tls_verify: bool = False  # verifies the smarthost's certificate
    source_ip: str = ""  # direct: the address it connects from ("" the system's choice)


class ListTransports(msgspec.Struct, kw_only=True):
    pass


class MessageId(msgspec.Struct, kw_only=True):
    id: int


class History(msgspec.Struct, kw_only=True):
    message: QueuedMessage
    attempts: list[Attempt]


class Count(msgspec.Struct, kw_only=True):
    count: int


class Keep(msgspec.Struct, kw_only=True):
    account: str
    keep: str | None = None  # a duration ("7d", "12h", "30m", "0"); None: only show it


class KeepPeriod(msgspec.Struct, kw_only=True):
    account: str
    retired_keep: int  # seconds; 0: removed when finished


class NewHoldRule(msgspec.Struct, kw_only=True):
    """Every non-empty field must match; all empty: every message is held."""

    sender_domain: str = ""
    sender: str = ""
    recipient_domain: str = ""
    recipient: str = ""
    account: str = ""  # the submitting account


class HoldRuleId(msgspec.Struct, kw_only=True):
    id: int


class ListHoldRules(msgspec.Struct, kw_only=True):
    pass


def _queue(server: Server) -> OutgoingQueue:
    return server.queue


def _page_request(req: ListMessages, retired: bool) -> QueuePageRequest:
    if not 1 <= req.limit <= MAX_PAGE:
        raise InvalidInput(f"limit: 1 to {MAX_PAGE}", field="limit")
    return QueuePageRequest(req.to_filter(), retired, req.sort, req.descending, req.after, req.limit)


async def list_queue(server: Server, req: ListMessages) -> QueuePage:
    """Messages still to deliver (or with a DSN still to hand over), one page."""
    return await _queue(server).page(_page_request(req, retired=False))


async def queue_size(server: Server) -> int:
    """Messages still to deliver (the metrics gauge)."""
    return await _queue(server).size()


async def list_retired(server: Server, req: ListMessages) -> QueuePage:
    """Finished messages kept with their outcome for their account's keep period, one page."""
    return await _queue(server).page(_page_request(req, retired=True))


async def history(server: Server, req: MessageId) -> History:
    queue = _queue(server)
    selection = QueueFilter(ids=(req.id,))
    for retired in (False, True):
        found = await queue.page(QueuePageRequest(selection, retired, limit=1))
        if found.messages:
            return History(message=found.messages[0], attempts=await queue.history(req.id))
    raise NotFound(f"no queued or retired message {req.id}")


def _wake_runner(queue: OutgoingQueue) -> None:
    # The runner listens on on_enqueued (mailsrv/queue/service.py); its kick ignores the id.
    for callback in list(queue.on_enqueued):
        callback(0)


async def hold(server: Server, req: Selection) -> Count:
    return Count(count=await _queue(server).set_hold(req.to_filter(), True))


async def release(server: Server, req: Selection) -> Count:
    queue = _queue(server)
    count = await queue.set_hold(req.to_filter(), False)
    if count:
        _wake_runner(queue)
    return Count(count=count)


async def retry(server: Server, req: Selection) -> Count:
    """Counts recipients (made due now), not messages."""
    queue = _queue(server)
    count = await queue.retry(req.to_filter())
    if count:
        _wake_runner(queue)
    return Count(count=count)


async def drop(server: Server, req: Drop) -> Count:
    selection = req.to_filter()
    if selection == QueueFilter() and not req.all:
        raise InvalidInput("drop needs a filter (ids, --sender, --recipient, --account, --held) or --all")
    if req.dsn:
        reason = " ".join(req.reason.split())[:300] or "dropped by an administrator"
        return Count(count=await _queue(server).fail(selection, f"550 5.3.0 {reason}"))
    return Count(count=await _queue(server).drop(selection))


async def set_next_attempt(server: Server, req: SetNextAttempt) -> Count:
    """Counts recipients. A time in the past makes them due now (the runner is woken)."""
    queue = _queue(server)
    count = await queue.set_next_attempt(req.to_filter(), req.when)
    if count and req.when <= time.time():
        _wake_runner(queue)
    return Count(count=count)


async def set_requiretls(server: Server, req: SetRequireTLS) -> Count:
    return Count(count=await _queue(server).set_requiretls(req.to_filter(), req.required))


async def set_transport(server: Server, req: SetTransport) -> Count:
    """Counts recipients: the queued ones of matching messages take `to` from their next
    attempt on (an administrator's choice the routes no longer change), or go back to the routes."""
    names = server.config.transports.names()
    if req.to != ROUTES and req.to not in names:
        raise InvalidInput(f"no transport {req.to!r}: expected one of {', '.join(names)} or {ROUTES}", field="to")
    return Count(count=await _queue(server).set_transport(req.to_filter(), None if req.to == ROUTES else req.to))


def transports(server: Server, req: ListTransports) -> list[TransportInfo]:
    """The configured transports, `direct` first (mailsrv.toml's `[transports]`)."""
    return [
        TransportInfo(
            name=t.name,
            kind=t.kind,
            host=t.host,
            port=t.port,
            login=t.username is not None,
            tls_verify=t.smarthost and t.tls_verify,
            source_ip=t.source_ip or "",
        )
        for t in server.config.transports.transports.values()
    ]


async def purge(server: Server, req: Selection) -> Count:
    selection = req.to_filter()
    return Count(
        count=await _queue(server).purge_retired(None if selection == QueueFilter() else selection, time.time())
    )


def keep(server: Server, req: Keep) -> KeepPeriod:
    """Shows or sets how long the account's finished messages stay retired (in a thread: the
    dynamic config is rewritten)."""
    account = server.dynamic.account_by_name(req.account)
    if account is None:
        raise NotFound(f"no such account: {req.account}")
    if req.keep is not None:
        seconds = parse_duration(req.keep)
        if seconds is None:
            raise InvalidInput(
                f'keep must be a duration such as "7d", "12h" or "30m", or 0; got {req.keep!r}', field="keep"
            )
        account = server.dynamic.set_account_retired_keep(req.account, seconds)
    return KeepPeriod(account=account.name, retired_keep=account.retired_keep)


async def add_hold_rule(server: Server, req: NewHoldRule) -> HoldRule:
    if req.account and server.dynamic.account_by_name(req.account) is None:
        raise NotFound(f"no such account: {req.account}")
    return await _queue(server).add_hold_rule(
        HoldRule(0, req.sender_domain, req.sender, req.recipient_domain, req.recipient, req.account)
    )


async def remove_hold_rule(server: Server, req: HoldRuleId) -> Done:
    if not await _queue(server).remove_hold_rule(req.id):
        raise NotFound(f"no such hold rule: {req.id}")
    return Done()


async def hold_rules(server: Server, req: ListHoldRules) -> list[HoldRule]:
    return await _queue(server).hold_rules()


OPERATIONS = (
    Operation("queue.list", list_queue, ListMessages, summary="queued messages, one page"),
    Operation("queue.retired", list_retired, ListMessages, summary="retired messages, one page"),
    Operation("queue.history", history, MessageId, summary="one message with every delivery attempt"),
    Operation("queue.hold", hold, Selection, summary="keep matching messages queued until released"),
    Operation("queue.release", release, Selection, summary="deliver held messages again"),
    Operation("queue.retry", retry, Selection, summary="make queued recipients due now"),
    Operation("queue.drop", drop, Drop, summary="remove queued messages, silently or with a DSN"),
    Operation("queue.next", set_next_attempt, SetNextAttempt, summary="set the next attempt of queued recipients"),
    Operation("queue.requiretls", set_requiretls, SetRequireTLS, summary="require verified TLS (RFC 8689) or not"),
    Operation("queue.transport", set_transport, SetTransport, summary="deliver through another transport"),
    Operation("queue.transports", transports, ListTransports, summary="the configured transports"),
    Operation("queue.purge", purge, Selection, summary="forget retired messages"),
    Operation("queue.keep", keep, Keep, in_thread=True, summary="show or set an account's retired-keep period"),
    Operation("queue.holdrules.add", add_hold_rule, NewHoldRule, summary="add a hold rule"),
    Operation("queue.holdrules.rm", remove_hold_rule, HoldRuleId, summary="remove a hold rule"),
    Operation("queue.holdrules.list", hold_rules, ListHoldRules, summary="the hold rules"),
)
