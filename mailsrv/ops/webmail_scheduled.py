"""The webmail's Scheduled view: the account's messages waiting for their send-later time
(mailsrv/ops/scheduled.py), with their time, recipients and subject; the user moves the time
or cancels, which puts the message back into Drafts to edit it (with its options, as a saved
draft keeps them: the send time it had, RequireTLS)."""

from __future__ import annotations

import time

import msgspec

from mailsrv.message.parse import decode_text
from mailsrv.ops import scheduled
from mailsrv.ops.webmail import Webmail, special_mailbox
from mailsrv.ops.webmail_compose import REQUIRETLS_FIELD, SEND_AT_FIELD, send_later_time


class ScheduledItem(msgspec.Struct, frozen=True):
    id: int  # the queue id
    send_at: int  # Unix seconds
    recipients: list[str]
    subject: str
    requiretls: bool
    size: int


async def scheduled_messages(wm: Webmail) -> list[ScheduledItem]:
    """What the account has scheduled, soonest first."""
    found = await scheduled.scheduled(wm.server, wm.account, time.time())
    return [
        ScheduledItem(
            id=m.id,
            send_at=int(m.release_at),
            recipients=list(m.recipients),
            subject=decode_text(m.subject) or "",
            requiretls=m.requiretls,
            size=m.size,
        )
        for m in found
    ]


async def reschedule(wm: Webmail, queue_id: int, send_at: int) -> None:
    """Moves the send time. Raises InvalidInput (the time: as for sending), NotFound (sent
    already)."""
    when = send_later_time(send_at)
    if when is None:
        when_ts = time.time()  # 0: send now
    else:
        when_ts = when.timestamp()
    await scheduled.reschedule(wm.server, wm.account, queue_id, when_ts)


async def cancel(wm: Webmail, queue_id: int) -> int:
    """Stops a scheduled message and returns it to Drafts; the new draft's store id. Raises
    NotFound (sent already, or being sent)."""
    drafts = await special_mailbox(wm, "\\Drafts")
    now = time.time()
    found = await scheduled.find(wm.server, wm.account, queue_id, now)
    options = f"{SEND_AT_FIELD}: {int(found.release_at)}\r\n".encode()
    if found.requiretls:
        options += f"{REQUIRETLS_FIELD}: yes\r\n".encode()
    appended = await scheduled.take_back(wm.server, wm.account, queue_id, drafts.name, now, options)
    summaries = await wm.store.summaries(appended.mailbox_id, [appended.uid])
    return summaries[0].id if summaries else 0
