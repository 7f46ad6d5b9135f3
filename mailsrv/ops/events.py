"""The event spine: typed events of what happened to mail, read from persistent outboxes after
a cursor and acknowledged, for the webhook sender (and anything else that must not miss one).

Today's source is the outgoing queue: every delivery outcome is written to its outbox in the
same transaction as the recipient's new status (mailsrv/queue/outbox.py), so an event exists
exactly when its change was committed, and it survives restarts until acknowledged.

    batch = await read_events(server, ReadEvents(after=cursor))
    ... hand batch.events over (e.g. POST them) ...
    await acknowledge(server, Acknowledge(upto=batch.cursor))

Delivery is at least once: a reader that crashes between handing events over and
acknowledging them reads them again (the cursor, `seq`, identifies duplicates).

Kinds: what happened to a recipient of a queued message ("delivered", "suppressed",
"delayed", "failed", "canceled"; "relayed", "expanded" and again "delivered", "delayed",
"failed" with `dsn` set when an incoming DSN about it arrived; "unrecognized": an incoming
DSN or a reply to a fromid address matching no message), and "incoming": a message
delivered to an account with an incoming webhook (mailsrv/ops/incoming.py writes its
payload). Not produced: account changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from mailsrv.ops.errors import InvalidInput
from mailsrv.ops.operation import Operation
from mailsrv.queue.interfaces import QueueEvent

if TYPE_CHECKING:
    from mailsrv.server import Server

MAX_BATCH = 1000


class OutgoingEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """What happened to one recipient of a queued message."""

    cursor: int  # read after this one next time; acknowledge up to it
    time: float
    queue_id: int
    account: str  # the submitting account
    mail_from: str
    recipient: str
    remote_host: str  # "host [ip]" that answered, "" if none did
    code: int  # the SMTP reply code, 0 if none
    reply: str
    dsn: bool = False  # learned from an incoming DSN
    suppressing: bool = False  # this failure put the recipient on the suppression list
    fromid: str = ""
    message_id: str = ""  # the Message-ID field, with <>
    subject: str = ""
    extra: dict[str, str] = {}


class OutgoingDelivered(OutgoingEvent, frozen=True, kw_only=True, tag="delivered"):
    """The recipient's server accepted the message."""


class OutgoingDelayed(OutgoingEvent, frozen=True, kw_only=True, tag="delayed"):
    """A temporary failure: the queue tries again later."""


class OutgoingFailed(OutgoingEvent, frozen=True, kw_only=True, tag="failed"):
    """A permanent failure, or the message expired: a DSN goes to the sender."""


class OutgoingCanceled(OutgoingEvent, frozen=True, kw_only=True, tag="canceled"):
    """An administrator dropped the message before it was delivered."""


class OutgoingSuppressed(OutgoingEvent, frozen=True, kw_only=True, tag="suppressed"):
    """The recipient is on the account's suppression list: failed without an attempt."""


class OutgoingRelayed(OutgoingEvent, frozen=True, kw_only=True, tag="relayed"):
    """A DSN says the message went on into a system that sends no DSNs."""


class OutgoingExpanded(OutgoingEvent, frozen=True, kw_only=True, tag="expanded"):
    """A DSN says the recipient was a list or alias, delivered to several."""


class OutgoingUnrecognized(OutgoingEvent, frozen=True, kw_only=True, tag="unrecognized"):
    """An incoming DSN (or a message to a fromid address) that matches no queued or retired
    message, or whose action is unknown."""


class IncomingDelivered(OutgoingEvent, frozen=True, kw_only=True, tag="incoming"):
    """A message delivered to `account`; `payload` is the incoming webhook's body (JSON)."""

    payload: bytes = b""


Event = (
    OutgoingDelivered
    | OutgoingDelayed
    | OutgoingFailed
    | OutgoingCanceled
    | OutgoingSuppressed
    | OutgoingRelayed
    | OutgoingExpanded
    | OutgoingUnrecognized
    | IncomingDelivered
)

_KINDS: dict[str, type[OutgoingEvent]] = {
    "delivered": OutgoingDelivered,
    "delayed": OutgoingDelayed,
    "failed": OutgoingFailed,
    "canceled": OutgoingCanceled,
    "suppressed": OutgoingSuppressed,
    "relayed": OutgoingRelayed,
    "expanded": OutgoingExpanded,
    "unrecognized": OutgoingUnrecognized,
}


def from_queue(row: QueueEvent) -> OutgoingEvent:
    common = dict(
        cursor=row.seq,
        time=row.time,
        queue_id=row.message_id,
        account=row.account,
        mail_from=row.mail_from,
        recipient=row.recipient,
        remote_host=row.host,
        code=row.code,
        reply=row.reply,
        dsn=row.dsn,
        suppressing=row.suppressing,
        fromid=row.fromid,
        message_id=row.header_message_id,
        subject=row.subject,
        extra=row.extra,
    )
    if row.kind == "incoming":
        return IncomingDelivered(payload=row.payload, **common)  # type: ignore[arg-type]
    return _KINDS[row.kind](**common)  # type: ignore[arg-type]


class ReadEvents(msgspec.Struct, kw_only=True):
    after: int = 0  # the cursor of the last event handled (0: from the oldest kept)
    limit: int = 100


class EventBatch(msgspec.Struct, kw_only=True):
    events: list[Event]
    cursor: int  # the last event's cursor, or `after` when there was none


class Acknowledge(msgspec.Struct, kw_only=True):
    upto: int


class Acknowledged(msgspec.Struct, kw_only=True):
    count: int


async def read_events(server: Server, req: ReadEvents) -> EventBatch:
    if not 1 <= req.limit <= MAX_BATCH:
        raise InvalidInput(f"limit: 1 to {MAX_BATCH}", field="limit")
    rows = await server.queue.events_after(req.after, req.limit)
    events = [from_queue(r) for r in rows]
    return EventBatch(events=events, cursor=rows[-1].seq if rows else req.after)  # type: ignore[arg-type]


async def acknowledge(server: Server, req: Acknowledge) -> Acknowledged:
    return Acknowledged(count=await server.queue.acknowledge_events(req.upto))


OPERATIONS = (
    Operation("events.read", read_events, ReadEvents, summary="delivery events after a cursor"),
    Operation("events.ack", acknowledge, Acknowledge, summary="forget delivery events up to a cursor"),
)
