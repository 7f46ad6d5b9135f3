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

Not yet produced (see the report of issue 10): outgoing "suppressed", "relayed" and "expanded"
(the queue has no suppression list, and reports DSN relaying only as a DSN), incoming
deliveries and account changes.
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


class OutgoingDelivered(OutgoingEvent, frozen=True, kw_only=True, tag="delivered"):
    """The recipient's server accepted the message."""


class OutgoingDelayed(OutgoingEvent, frozen=True, kw_only=True, tag="delayed"):
    """A temporary failure: the queue tries again later."""


class OutgoingFailed(OutgoingEvent, frozen=True, kw_only=True, tag="failed"):
    """A permanent failure, or the message expired: a DSN goes to the sender."""


class OutgoingCanceled(OutgoingEvent, frozen=True, kw_only=True, tag="canceled"):
    """An administrator dropped the message before it was delivered."""


Event = OutgoingDelivered | OutgoingDelayed | OutgoingFailed | OutgoingCanceled

_KINDS: dict[str, type[OutgoingEvent]] = {
    "delivered": OutgoingDelivered,
    "delayed": OutgoingDelayed,
    "failed": OutgoingFailed,
    "canceled": OutgoingCanceled,
}


def from_queue(row: QueueEvent) -> OutgoingEvent:
    return _KINDS[row.kind](
        cursor=row.seq,
        time=row.time,
        queue_id=row.message_id,
        account=row.account,
        mail_from=row.mail_from,
        recipient=row.recipient,
        remote_host=row.host,
        code=row.code,
        reply=row.reply,
    )


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
