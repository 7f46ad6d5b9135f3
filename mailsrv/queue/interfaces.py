"""What the outgoing queue promises to the rest of the server, whatever keeps it (SQLite and
files today: mailsrv/queue/store.py; a shared database later, docs in SCALING.md).

Nobody outside mailsrv/queue/ sees a database connection or a file path: message content is
read and dropped by queue id (`read_content`, `drop_content`), listings come in pages, and
every call answers with a Deferred so an engine may go over the network.

Value types are msgspec Structs: the admin operations (mailsrv/ops/queue.py) return them as
they are, and the JSON shape of the control socket and the admin API is theirs.

Paging (keyset, not offsets, so a page never repeats or skips a message while others are
queued or finish): `QueuePageRequest.after` is the `next` anchor of the previous page; the
order is the sort key then the queue id, both in the requested direction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Literal, Protocol

import msgspec
from twisted.internet.defer import Deferred

from mailsrv.address import Address
from mailsrv.dsnparams import NO_MESSAGE_DSN, MessageDSN, RecipientDSN

# "next_attempt": the earliest next attempt among the message's queued recipients (0 when none is queued).
QueueSort = Literal["id", "created", "size", "sender", "account", "next_attempt"]
MAX_PAGE = 1000


class QueueFilter(msgspec.Struct, frozen=True):
    """Which messages; fields combine with AND, no field set matches every message."""

    ids: tuple[int, ...] = ()
    sender: str | None = None  # an address, or "@domain" for a whole domain
    recipient: str | None = None  # likewise, for any of the message's recipients
    account: str | None = None
    held: bool | None = None
    # The message's next attempt (its earliest queued recipient's) before / at or after these times.
    next_before: float | None = None
    next_after: float | None = None
    requiretls: bool | None = None
    # A recipient's transport: the one its next attempt uses (queued) or its last one used.
    transport: str | None = None


class RecipientInfo(msgspec.Struct, frozen=True):
    address: str
    status: str  # queued, delivered, failed, relayed
    attempts: int
    next_attempt: float
    last_error: str
    transport: str = ""  # next attempt's (queued) or last used; mailsrv/config/transports.py
    transport_fixed: bool = False  # set by an administrator: the routes no longer change it


class QueuedMessage(msgspec.Struct, frozen=True):
    id: int
    mail_from: str = msgspec.field(name="from")  # "" for the null reverse-path
    account: str = ""
    size: int = 0
    created: float = 0.0
    held: bool = False
    recipients: tuple[RecipientInfo, ...] = ()
    retired_until: float | None = None  # None: still queued
    next_attempt: float = 0.0  # the earliest queued recipient's; 0 when none is queued
    requiretls: bool = False  # RFC 8689 REQUIRETLS: verified TLS on every hop, or no delivery


class Attempt(msgspec.Struct, frozen=True):
    """One delivery attempt for one recipient: when, to which host, and the reply."""

    recipient: str
    time: float
    host: str  # "host [ip]" of the last host tried, "" if none was reached
    code: int
    reply: str
    transport: str = ""  # the transport of the attempt ("" for an administrator's decision)


class HoldRule(msgspec.Struct, frozen=True):
    """Messages matching every non-empty field are held when queued ("" matches any)."""

    id: int = 0
    sender_domain: str = ""
    sender: str = ""
    recipient_domain: str = ""
    recipient: str = ""
    account: str = ""  # the submitting account

    def matches(self, mail_from: str, recipients: Iterable[str], account: str = "") -> bool:
        if self.account and self.account != account:
            return False
        sender = mail_from.lower()
        if self.sender and sender != self.sender.lower():
            return False
        if self.sender_domain and sender.rpartition("@")[2] != self.sender_domain.lower():
            return False
        rcpts = [r.lower() for r in recipients]
        if self.recipient and self.recipient.lower() not in rcpts:
            return False
        if self.recipient_domain and not any(r.rpartition("@")[2] == self.recipient_domain.lower() for r in rcpts):
            return False
        return True


class QueueAnchor(msgspec.Struct, frozen=True):
    """Where a page ended: the last message's sort key and queue id."""

    key: int | float | str
    id: int


class QueuePageRequest(msgspec.Struct, frozen=True):
    filter: QueueFilter = QueueFilter()
    retired: bool = False  # the retired list instead of the queue
    sort: QueueSort = "id"
    descending: bool = False
    after: QueueAnchor | None = None
    limit: int = 100  # 1..MAX_PAGE


class QueuePage(msgspec.Struct, frozen=True):
    messages: list[QueuedMessage]
    next: QueueAnchor | None = None  # None: this was the last page


EventKind = Literal[
    "delivered", "suppressed", "delayed", "failed", "relayed", "expanded", "canceled", "unrecognized", "incoming"
]


class QueueCounts(msgspec.Struct, frozen=True):
    queued: int  # still to deliver (held ones included)
    held: int
    retired: int


class QueueEvent(msgspec.Struct, frozen=True):
    """One outcome from the queue's outbox (mailsrv/queue/outbox.py), in the order committed.

    Outgoing kinds concern recipient `recipient` of queued message `message_id`; "incoming"
    is a message delivered to `account` (its webhook payload, JSON, is `payload`)."""

    seq: int  # the cursor: only grows
    time: float
    kind: EventKind
    message_id: int  # the queue id; 0 for "incoming" and an "unrecognized" DSN
    account: str
    mail_from: str
    recipient: str
    host: str
    code: int
    reply: str
    dsn: bool = False  # learned from an incoming DSN, not from our own attempt
    suppressing: bool = False  # this failure put the recipient on the suppression list
    fromid: str = ""  # the unique part of MAIL FROM (fromid addresses), "" if none
    header_message_id: str = ""  # the message's Message-ID field, with <>
    subject: str = ""
    extra: dict[str, str] = {}  # the submitter's Extra data
    payload: bytes = b""  # "incoming": the webhook body (JSON)


class Suppression(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of an account's suppression list (mailsrv/queue/suppression.py)."""

    id: int
    account: str
    base_address: str  # the key: see `mailsrv.queue.suppression.base_address`
    original_address: str  # the address that caused it
    manual: bool
    reason: str
    created: float


class MessageMeta(msgspec.Struct, frozen=True, kw_only=True):
    """What a queued message carries for the events about it (webhooks)."""

    fromid: str = ""
    header_message_id: str = ""
    subject: str = ""
    extra: dict[str, str] = {}
    release_at: float = 0.0  # no delivery attempt before this time (webapi FutureRelease); 0: at once
    # Send later: recipients (among those enqueued) that are on this server, delivered into their
    # accounts at the release time through LOCAL_TRANSPORT (mailsrv/ops/scheduled.py).
    local_recipients: tuple[str, ...] = ()
    # Send later from webmail: the submitter's copy goes into its Sent mailbox when the message
    # goes out (its first attempt), not when it is queued.
    sent_copy: bool = False


NO_META = MessageMeta()
# The transport of send later's recipients on this server (MessageMeta.local_recipients), fixed
# at enqueue: the runner's local deliverer, not SMTP. Not a name a configured transport can have.
LOCAL_TRANSPORT = "(local)"


class ScheduledMessage(msgspec.Struct, frozen=True):
    """A queued message of an account not attempted yet and due later (send later)."""

    id: int
    release_at: float  # its first attempt
    recipients: tuple[str, ...]
    subject: str
    header_message_id: str
    requiretls: bool
    size: int


class OutgoingQueue(Protocol):
    """The outgoing queue as ops and the services use it."""

    # Called with the queue id once a message is durably queued (the runner's kick).
    on_enqueued: list[Callable[[int], None]]

    def enqueue(
        self,
        mail_from: Address | None,
        recipients: Sequence[Address],
        data: bytes,
        account: str,
        smtputf8: bool,
        requiretls: bool = False,
        dsn: MessageDSN = NO_MESSAGE_DSN,
        recipient_dsn: Sequence[RecipientDSN] = (),
        meta: MessageMeta = NO_META,
    ) -> Deferred[int]:
        """Durably queues `data` for `recipients`; fires with the queue id once durable.
        `meta` goes into every event about the message."""
        ...

    def read_content(self, message_id: int) -> Deferred[bytes | None]:
        """The message as it will be sent; None once dropped or finished."""
        ...

    def drop_content(self, message_id: int) -> Deferred[None]:
        """Forgets the content of a message whose rows say it is no longer needed."""
        ...

    def page(self, request: QueuePageRequest) -> Deferred[QueuePage]: ...

    def size(self) -> Deferred[int]:
        """How many messages are still to deliver (not retired)."""
        ...

    def history(self, message_id: int) -> Deferred[list[Attempt]]:
        """Every attempt recorded for a message (queued or retired), oldest first."""
        ...

    def set_hold(self, selection: QueueFilter, hold: bool) -> Deferred[int]:
        """Holds or releases the matching messages; fires with how many changed."""
        ...

    def retry(self, selection: QueueFilter) -> Deferred[int]:
        """Makes the queued recipients of matching messages due now; fires with how many."""
        ...

    def drop(self, selection: QueueFilter) -> Deferred[int]:
        """Removes matching messages that are still queued, without a DSN."""
        ...

    def fail(self, selection: QueueFilter, reply: str) -> Deferred[int]:
        """Fails the queued recipients of matching messages with `reply` (recorded as their
        last attempt, "5xx x.x.x text"), as a permanent failure would: the senders get the DSNs
        their NOTIFY asks for, then the messages are retired or removed. Fires with how many
        messages."""
        ...

    def set_next_attempt(self, selection: QueueFilter, when: float) -> Deferred[int]:
        """Sets the next attempt of the queued recipients of matching messages; fires with how
        many recipients."""
        ...

    def set_requiretls(self, selection: QueueFilter, required: bool) -> Deferred[int]:
        """Requires (RFC 8689) verified TLS for matching queued messages, or stops requiring
        it; fires with how many changed."""
        ...

    def set_transport(self, selection: QueueFilter, transport: str | None) -> Deferred[int]:
        """Makes the queued recipients of matching queued messages use `transport` from their
        next attempt on, whatever the routes say; None: the routes choose again. Fires with how
        many recipients."""
        ...

    def purge_retired(self, selection: QueueFilter | None, now: float) -> Deferred[int]:
        """Forgets retired messages: with no selection those whose keep period ended by `now`,
        else every matching retired message."""
        ...

    def counts(self) -> Deferred[QueueCounts]: ...

    def add_hold_rule(self, rule: HoldRule) -> Deferred[HoldRule]: ...

    def remove_hold_rule(self, rule_id: int) -> Deferred[bool]: ...

    def hold_rules(self) -> Deferred[list[HoldRule]]: ...

    def events_after(self, seq: int, limit: int) -> Deferred[list[QueueEvent]]:
        """Outbox events with a cursor above `seq`, oldest first (written with their change)."""
        ...

    def acknowledge_events(self, upto: int) -> Deferred[int]:
        """Forgets outbox events up to `upto`; fires with how many."""
        ...

    def suppressions(self, account: str) -> Deferred[list[Suppression]]:
        """The account's suppression list, oldest first."""
        ...

    def suppression(self, account: str, base_address: str) -> Deferred[Suppression | None]: ...

    def add_suppression(
        self, account: str, base_address: str, original_address: str, manual: bool, reason: str
    ) -> Deferred[tuple[Suppression, bool]]:
        """Adds (durably) unless present; fires with the entry and whether it is new."""
        ...

    def remove_suppression(self, account: str, base_address: str) -> Deferred[bool]: ...

    def find_by_fromid(self, account: str, fromid: str) -> Deferred[int | None]:
        """The queue id (queued or retired) of the message sent with this fromid."""
        ...

    def find_by_message_id(self, account: str, header_message_id: str) -> Deferred[int | None]:
        """The newest queue id (queued or retired) of `account`'s message with this Message-ID."""
        ...

    def scheduled(self, account: str, now: float, limit: int = MAX_PAGE) -> Deferred[list[ScheduledMessage]]:
        """The account's messages that no attempt was made for yet and that are due after
        `now` (send later), soonest first."""
        ...

    def reschedule(self, message_id: int, account: str, when: float) -> Deferred[bool]:
        """Moves the release time of the account's scheduled message to `when` (its retry
        period then counts from `when`); fires with False when the message is not one of
        `scheduled` any more (sent, being sent, dropped)."""
        ...

    def cancel_scheduled(self, message_id: int, account: str) -> Deferred[bool]:
        """Removes the account's scheduled message (a "canceled" event per recipient), durably;
        fires with False when it is not one of `scheduled` any more."""
        ...

    def record_event(self, event: QueueEvent) -> Deferred[int]:
        """Writes an event not caused by the queue itself (an incoming DSN or delivery) to
        the outbox, durably; fires with its cursor. `seq` is ignored; for a known
        `message_id`, the message's own meta (fromid, Message-ID, subject, extra) fills
        the fields left empty."""
        ...

    def close(self) -> None: ...
